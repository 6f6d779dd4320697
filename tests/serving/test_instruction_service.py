"""The instruction-generation service: a real Ray Serve deployment holding a real vLLM engine on the
tiny LM trained here; prompts sent one per request from a handle come back batched, in order, equal
to the offline `hf` backend's greedy texts, and `ServiceBackend` is a plain `Backend`. Ray Serve
LLM's OpenAI-compatible app serves the same folder on CPU and answers the same."""

from __future__ import annotations

import socket

import httpx
import pytest

ray = pytest.importorskip("ray")

from oxygen.instructions.backends.base import Backend, BackendError  # noqa: E402
from oxygen.instructions.backends.hf import HFBackend  # noqa: E402
from oxygen.instructions.backends.vllm import VLLMSettings  # noqa: E402
from oxygen.serving.instruction_service import (  # noqa: E402
    ServiceArgs,
    ServiceBackend,
    build_openai_instruction_app,
    generate_via,
    instruction_handle,
    start_instruction_service,
)
from tests.instructions.tiny_lm import tiny_lm, toy_pairs  # noqa: E402

pytestmark = pytest.mark.slow  # Ray + Serve + a vLLM engine in a replica: about 1-2 minutes on 2 cores


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    from ray import serve
    folder = tiny_lm(tmp_path_factory)
    env = {"HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1", "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "60"}
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env})
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        args = ServiceArgs(model_dir=str(folder), engine=VLLMSettings(max_new_tokens=48), max_batch_size=16,
                           batch_wait_timeout_s=0.2)
        handle = start_instruction_service(args)
        yield folder, handle, args, port
    finally:
        serve.shutdown()
        ray.shutdown()


def test_the_service_batches_prompts_and_matches_offline_greedy(service):
    folder, handle, _, _ = service
    prompts = [p for p, _ in toy_pairs(12, 4)]
    got = generate_via(handle, prompts, timeout_s=300)
    assert got == HFBackend(folder, max_new_tokens=48).generate(prompts)
    info = instruction_handle().info.remote().result(timeout_s=60)
    assert info["name"] == "vllm" and max(info["batches"]) > 1  # requests were decoded together
    assert generate_via(handle, prompts[:2], max_new_tokens=3, timeout_s=60) == \
        HFBackend(folder).generate(prompts[:2], max_new_tokens=3)


def test_service_backend_is_a_backend(service):
    folder, handle, _, _ = service
    backend = ServiceBackend(handle)
    assert isinstance(backend, Backend) and backend.version == HFBackend(folder).version
    assert len(backend.generate(["Date: winter. City: Harbin. Hobby: gaming."])) == 1
    with pytest.raises(BackendError, match="instruction service failed"):
        generate_via(handle, ["x"], max_new_tokens=10_000, timeout_s=60)  # longer than the context


def test_ray_serve_llm_openai_app_runs_on_cpu(service):
    from ray import serve
    folder, _, args, port = service
    serve.run(build_openai_instruction_app(args, model_id="tiny"), name="openai", route_prefix="/")
    prompts = [p for p, _ in toy_pairs(3, 9)]
    got = []
    for p in prompts:
        r = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=120,
                       json={"model": "tiny", "messages": [{"role": "user", "content": p}],
                             "temperature": 0, "max_tokens": 48})
        assert r.status_code == 200, r.text
        got.append(r.json()["choices"][0]["message"]["content"])
    assert got == HFBackend(folder, max_new_tokens=48).generate(prompts)
