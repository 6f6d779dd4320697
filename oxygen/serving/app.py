"""Ray Serve: the HTTP API and the batched recommender, composed by `build_app`.

    serve run deployments/serve.yaml           # import_path: oxygen.serving.app:build_app
    python -m apps.serve --bundle runs/demo/bundle

`ModelSide` holds a bundle (model, codebook, every scenario's pool trie) and the `@serve.batch`
batcher: requests of different scenarios arriving together are decoded in one batched pass, in a
worker thread, so the replica's event loop keeps parsing the requests that form the next batch.
`Oxygen` is the FastAPI ingress (`@serve.ingress`). By default (`layout: fused`) one deployment,
`Recommender`, is both: an HTTP request makes one hop (proxy -> replica). `layout: split` deploys
an `Ingress` front over a separate `Recommender` (ModelSide) reached through a DeploymentHandle.
The front batches too: requests arriving together go to the back in one call (`recommend_many`,
at most `forward_in_flight` calls at a time), so the hop costs one handle call per batch, not per
request. A batch whose back replica dies under it is sent again to a live one (fused, the proxy
answers such in-flight requests with a 500).

Every answer carries where its time went (`timing_ms`), and the front records each stage in the
Ray Serve metric `oxygen_stage_ms` (a histogram, tag `stage`; Prometheus via Ray's metrics export).
Input is validated by pydantic; every 4xx has one error body (oxygen.serving.errors); a degraded
store never becomes a 5xx.
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import os
import sys
import time
from typing import Any, Callable, Literal

import ray
import torch
from fastapi import FastAPI, Header
from pydantic import BaseModel, Field
from ray import serve
from ray.exceptions import RayActorError
from ray.serve.handle import DeploymentHandle
from ray.serve.metrics import Counter, Histogram

from oxygen.instructions.backends.knowledge import KnowledgeBackend
from oxygen.model.bundle import Bundle
from oxygen.serving.batcher import Batcher
from oxygen.serving.core import RecommenderCore, RequestError, query_rewriter, text_query_encoder
from oxygen.serving.errors import as_http, documented, install_error_handlers, unauthorized
from oxygen.serving.schemas import EventsRequest, EventsResponse, Health, RecommendRequest, RecommendResponse, ScenarioInfo
from oxygen.serving.stores import Stores

STAGE_BOUNDARIES_MS = [0.5, 1, 2, 5, 10, 20, 35, 50, 75, 100, 150, 250, 500, 1000, 2500]
READ_ONLY = frozenset({"recommend", "recommend_many", "scenarios", "version"})  # model-side calls safe to send twice


class AppArgs(BaseModel):
    """Arguments of `build_app` (the `args:` of deployments/serve.yaml)."""

    bundle: str = Field(description="bundle folder written by training")
    redis_url: str | None = None  # None: $REDIS_URL or the embedded server
    max_batch_size: int = Field(default=32, ge=1, le=1024)
    batch_wait_timeout_s: float = Field(default=0.01, ge=0, le=1)
    encode_queries: bool = True
    rewrite_queries: Literal["knowledge", "none"] = "knowledge"  # the online query-rewrite branch
    recommender_replicas: int | None = Field(default=None, ge=1, le=64)  # None: serve.yaml / autoscaling / 1
    autoscaling: dict[str, Any] | None = None  # Serve autoscaling_config of the recommender (min/max replicas, ...)
    max_ongoing_requests: int = Field(default=32, ge=1, le=4096)  # per replica; batches form from these
    layout: Literal["fused", "split"] = "fused"  # fused: HTTP in the recommender; split: a front + a back
    api_key_env: str = "OXYGEN_API_KEY"  # POST /v1/events needs X-API-Key equal to this variable when it is set
    require_api_key: bool = False  # refuse to start without the key (set when serving beyond loopback)
    exclude_purchased_days: int = Field(default=0, ge=0, le=3650)  # the purchase rule's default (0: off)
    torch_threads: int = Field(default=1, ge=1, le=256)  # per replica: one thread decodes small batches fastest
    device: Literal["auto", "cpu", "cuda"] = "auto"  # oxygen.device: the model, decoding and the query encoder
    # (a replica sees a GPU only when its ray_actor_options ask for num_gpus; deployments/serve-gpu.yaml)
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on CUDA, fp32 on the CPU
    batcher: Literal["greedy", "serve"] = "greedy"  # greedy: serving/batcher.py; serve: @serve.batch
    embed_ahead: bool = True  # a search request's query is rewritten and embedded in a thread as it arrives,
    # while the model decodes the batch before it, so its own batch finds the vector cached
    forward_in_flight: int = Field(default=2, ge=1, le=64)  # split: the front's batches on their way to the back at once
    gil_switch_interval_ms: float = Field(default=1.0, gt=0, le=100)  # per replica process: how long a Python
    # thread holds the GIL before a waiting one gets it (Python's default is 5 ms); shorter lets the event
    # loop parse the next requests between the decode thread's torch ops (measured: serving.md, run M's probes)


def events_api_key(a: AppArgs) -> str | None:
    """The key POST /v1/events requires (from the environment variable `a.api_key_env`; None: no
    key); a RuntimeError when `a.require_api_key` and the variable is unset."""
    key = os.environ.get(a.api_key_env) or None
    if a.require_api_key and not key:
        raise RuntimeError(f"POST /v1/events writes user data and this service listens beyond loopback: "
                           f"set {a.api_key_env} (a secret, not in the repo) before starting it")
    return key


def make_core(a: AppArgs) -> RecommenderCore:
    """The recommender core of one replica: bundle, stores, query encoder and rewriter."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(a.torch_threads)
    sys.setswitchinterval(a.gil_switch_interval_ms / 1000)
    rewriter = query_rewriter(KnowledgeBackend()) if a.rewrite_queries == "knowledge" else None
    core = RecommenderCore(Bundle.load(a.bundle, a.device), Stores.connect(a.redis_url),
                           text_query_encoder(device=a.device) if a.encode_queries else None, rewriter,
                           a.exclude_purchased_days)
    core.decoder.precision = a.precision
    return core


async def call_back(backend: DeploymentHandle, method: str, args: tuple, on_resend: Callable[[], Any]) -> Any:
    """`method(*args)` of the split layout's back through its handle. A read-only call whose back
    replica died under it is sent once more (Serve's router has marked that replica dead by then,
    so it goes to a live one) and `on_resend()` is called; `ingest` is not sent again (it could
    append the events twice), so its error propagates."""
    try:
        return await getattr(backend, method).remote(*args)
    except RayActorError:
        if method not in READ_ONLY:
            raise
        on_resend()
        return await getattr(backend, method).remote(*args)


api = FastAPI(title="Oxygen recommender", version="1",
              description="Instruction-following generative recommendation for every scenario. Every 4xx "
                          "(and a 503) answers with an ErrorResponse: where, what, a type, and how to fix it.")
install_error_handlers(api)


class ModelSide:
    """The model side of the service: one bundle, the batcher, events, scenarios, version. Held in
    process by the fused `Oxygen` replica, or deployed alone (`Recommender`) behind a split front
    (whose batches then arrive formed: no wait for company here)."""

    def __init__(self, args: dict):
        a = AppArgs(**args)
        self.core = make_core(a)
        wait_s = 0.0 if a.layout == "split" else a.batch_wait_timeout_s
        if a.batcher == "serve":
            self.serve_batch.set_max_batch_size(a.max_batch_size)
            self.serve_batch.set_batch_wait_timeout_s(wait_s)
            self.submit = self.serve_batch
        else:
            self.submit = Batcher(self._decode_batch, a.max_batch_size, wait_s).submit
        self.embed_ahead = a.embed_ahead

    async def recommend(self, req: RecommendRequest) -> RecommendResponse | RequestError:
        """One request through the batcher, its search query embedded first unless it was before (in
        a thread, while the batch before it decodes); `timing_ms.served` is its time on the model
        side, `timing_ms.embed_ahead` the part before it joined a batch."""
        return (await self._many([req]))[0]

    async def recommend_many(self, reqs: list[RecommendRequest]) -> list[RecommendResponse | RequestError]:
        """Requests that arrived together (a split front's batch): their search queries embedded
        first, together in one pass, then all queued at once, so they decode in one batch (a search
        request queued later would wait for the batch before it, and the whole call with it)."""
        return await self._many(reqs)

    async def _many(self, reqs: list[RecommendRequest]) -> list[RecommendResponse | RequestError]:
        """Embed the requests' new queries ahead (one thread call; none when all were embedded
        before), then queue them all in one turn of the loop."""
        t0 = time.perf_counter()
        queries = [r.query for r in reqs if r.query]
        if self.embed_ahead and queries and not self.core.embedded(queries):
            try:
                await asyncio.to_thread(self.core.embed_ahead, queries)
            except Exception:  # noqa: BLE001 - the batch embeds them again and reports any error itself
                pass
        t1 = time.perf_counter()
        outs = await asyncio.gather(*(self.submit((r, t1)) for r in reqs))
        served = round((time.perf_counter() - t0) * 1000, 3)
        for out in outs:
            if isinstance(out, RecommendResponse):
                out.timing_ms["served"] = served
                if t1 > t0 and queries:
                    out.timing_ms["embed_ahead"] = round((t1 - t0) * 1000, 3)
        return list(outs)

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.01)
    async def serve_batch(self, items: list[tuple[RecommendRequest, float]]) -> list[RecommendResponse | RequestError]:
        """Serve's batcher (`batcher: serve`): the same decoding pass, in a worker thread."""
        return await asyncio.to_thread(self._decode_batch, items)

    def _decode_batch(self, items: list[tuple[RecommendRequest, float]]) -> list[RecommendResponse | RequestError]:
        """One decoding pass for the whole batch (in the batcher's worker thread)."""
        start = time.perf_counter()
        out = self.core.recommend_batch([r for r, _ in items])
        for (_, arrived), o in zip(items, out):
            if isinstance(o, RecommendResponse):
                o.timing_ms["batch_wait"] = round((start - arrived) * 1000, 3)
        return out

    def ingest(self, req: EventsRequest) -> EventsResponse | RequestError:
        """Append user events to the near-line stream."""
        return self.core.ingest(req)

    def scenarios(self) -> list[ScenarioInfo]:
        """Scenario ids, pool sizes and trigger requirements."""
        return self.core.scenario_info()

    def version(self) -> str:
        """The loaded model version."""
        return self.core.bundle.version


Recommender = serve.deployment(ModelSide, name="Recommender")  # the split layout's back


@serve.deployment
@serve.ingress(api)
class Oxygen:
    """HTTP (/v1/recommend, /v1/events, /v1/scenarios, /healthz, /readyz) over the model side: its
    own `ModelSide` (fused), or the `Recommender` deployment's handle (split)."""

    def __init__(self, args: dict, backend: DeploymentHandle | None = None):
        a = AppArgs(**args)
        sys.setswitchinterval(a.gil_switch_interval_ms / 1000)  # the split front too (fused: make_core sets it)
        self.api_key = events_api_key(a)
        self.backend = backend
        self.model = ModelSide(args) if backend is None else None
        self.forward = (Batcher(self._forward, a.max_batch_size, a.batch_wait_timeout_s, a.forward_in_flight)
                        if backend is not None else None)  # split: the front's batches to the back
        self.resent = Counter("oxygen_resent_total", description="split layout: read-only calls sent again "
                              "after the back replica died under them")
        self.stage_ms = Histogram("oxygen_stage_ms", description="time per request stage, ms",
                                  boundaries=STAGE_BOUNDARIES_MS, tag_keys=("stage",))

    async def _call(self, method: str, *args: Any) -> Any:
        """`method` of the model side: in process, or through the handle (`call_back`)."""
        if self.backend is not None:
            return await call_back(self.backend, method, args, self.resent.inc)
        out = getattr(self.model, method)(*args)
        return await out if inspect.isawaitable(out) else out

    async def _forward(self, items: list[tuple[RecommendRequest, float]]) -> list[RecommendResponse | RequestError]:
        """Split: one batch of the front's requests to the back in one call; `timing_ms.front_wait`
        is each one's time queued at the front."""
        sent = time.perf_counter()
        outs = await self._call("recommend_many", [r for r, _ in items])
        for (_, arrived), out in zip(items, outs):
            if isinstance(out, RecommendResponse):
                out.timing_ms["front_wait"] = round((sent - arrived) * 1000, 3)
        return outs

    # --- HTTP ---
    @api.post("/v1/recommend", response_model=RecommendResponse, responses=documented(400, 404, 409, 422))
    async def post_recommend(self, req: RecommendRequest) -> RecommendResponse:
        """Recommend k items for one user in one scenario."""
        t0 = time.perf_counter()
        out = await (self.forward.submit((req, t0)) if self.forward is not None else self.model.recommend(req))
        if isinstance(out, RequestError):
            raise as_http(out)
        total = (time.perf_counter() - t0) * 1000
        if self.forward is not None:
            out.timing_ms["handle"] = round(total - out.timing_ms.get("served", 0.0)
                                            - out.timing_ms.get("front_wait", 0.0), 3)
        out.timing_ms["route"] = round(total, 3)
        for stage, ms in out.timing_ms.items():
            self.stage_ms.observe(ms, tags={"stage": stage})
        return out

    @api.post("/v1/events", response_model=EventsResponse, responses=documented(400, 401, 404, 422, 503))
    async def post_events(self, req: EventsRequest, x_api_key: str | None = Header(default=None)) -> EventsResponse:
        """Append user events (search / click / cart / purchase) to the near-line stream; high-value
        ones regenerate the user's instruction at the end of their window. Needs `X-API-Key`
        when the service has a key."""
        if self.api_key and not hmac.compare_digest((x_api_key or "").encode(), self.api_key.encode()):
            raise unauthorized("X-API-Key")
        out = await self._call("ingest", req)
        if isinstance(out, RequestError):
            raise as_http(out)
        return out

    @api.get("/v1/scenarios", response_model=list[ScenarioInfo])
    async def get_scenarios(self) -> list[ScenarioInfo]:
        """Every scenario the loaded model serves."""
        return await self._call("scenarios")

    @api.get("/healthz", response_model=Health)
    async def healthz(self) -> Health:
        """Liveness: the HTTP process answers."""
        return Health(status="ok")

    @api.get("/readyz", response_model=Health)
    async def readyz(self) -> Health:
        """Readiness: the model is loaded (in this replica, or the back's)."""
        return Health(status="ready", model_version=await self._call("version"))


def _scaling(a: AppArgs) -> dict:
    """Deployment options of the model side: a fixed replica count or an autoscaling config, and a
    GPU per replica for device cuda (or auto on a Ray cluster with a GPU): a replica sees a GPU only
    when it asks for one. A deployment config's own ray_actor_options replace these."""
    opts: dict[str, Any] = {"max_ongoing_requests": a.max_ongoing_requests}
    if a.device == "cuda" or (a.device == "auto" and ray.is_initialized() and ray.cluster_resources().get("GPU", 0) >= 1):
        opts["ray_actor_options"] = {"num_cpus": 1, "num_gpus": 1}
    if a.autoscaling is not None:
        opts["autoscaling_config"] = a.autoscaling
    elif a.recommender_replicas:
        opts["num_replicas"] = a.recommender_replicas
    return opts


def build_app(args: dict) -> serve.Application:
    """The application graph for `serve run` / `serve deploy` (args validated by AppArgs): one
    `Recommender` deployment serving HTTP itself (fused), or an `Ingress` front over it (split)."""
    a = AppArgs(**args)
    if a.layout == "fused":
        return Oxygen.options(name="Recommender", **_scaling(a)).bind(a.model_dump())
    front = Oxygen.options(name="Ingress", max_ongoing_requests=a.max_ongoing_requests)
    return front.bind(a.model_dump(), Recommender.options(**_scaling(a)).bind(a.model_dump()))
