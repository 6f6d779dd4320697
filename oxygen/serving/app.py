"""Ray Serve deployments: a FastAPI ingress and the batched recommender, composed by `build_app`.

    serve run deployments/serve.yaml           # import_path: oxygen.serving.app:build_app
    python -m apps.serve --bundle runs/demo/bundle

The `Recommender` deployment loads a bundle in `__init__` (model, codebook, every scenario's pool
trie) and answers through one `@serve.batch` method, so requests of different scenarios arriving
together are decoded in one batched pass. The `Ingress` validates HTTP input (pydantic -> 422),
turns refusals into 4xx with the service's message, and never lets a degraded store become a 5xx.
"""


import hmac
import os
from typing import Literal

from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel, Field
from ray import serve
from ray.serve.handle import DeploymentHandle

from oxygen.instructions.backends.knowledge import KnowledgeBackend
from oxygen.model.bundle import Bundle
from oxygen.serving.core import RecommenderCore, RequestError, query_rewriter, text_query_encoder
from oxygen.serving.schemas import EventsRequest, EventsResponse, Health, RecommendRequest, RecommendResponse, ScenarioInfo
from oxygen.serving.stores import Stores


class AppArgs(BaseModel):
    """Arguments of `build_app` (the `args:` of deployments/serve.yaml)."""

    bundle: str = Field(description="bundle folder written by training")
    redis_url: str | None = None  # None: $REDIS_URL or the embedded server
    max_batch_size: int = Field(default=32, ge=1, le=1024)
    batch_wait_timeout_s: float = Field(default=0.01, ge=0, le=1)
    encode_queries: bool = True
    rewrite_queries: Literal["knowledge", "none"] = "knowledge"  # the online query-rewrite branch
    recommender_replicas: int | None = Field(default=None, ge=1, le=64)  # None: serve.yaml / default
    api_key_env: str = "OXYGEN_API_KEY"  # POST /v1/events needs X-API-Key equal to this variable when it is set
    require_api_key: bool = False  # refuse to start without the key (set when serving beyond loopback)
    exclude_purchased_days: int = Field(default=0, ge=0, le=3650)  # the purchase rule's default (0: off)


def events_api_key(a: AppArgs) -> str | None:
    """The key POST /v1/events requires (from the environment variable `a.api_key_env`; None: no
    key); a RuntimeError when `a.require_api_key` and the variable is unset."""
    key = os.environ.get(a.api_key_env) or None
    if a.require_api_key and not key:
        raise RuntimeError(f"POST /v1/events writes user data and this service listens beyond loopback: "
                           f"set {a.api_key_env} (a secret, not in the repo) before starting it")
    return key


@serve.deployment
class Recommender:
    """Holds one bundle; decodes batches of requests of any scenario mix."""

    def __init__(self, args: dict):
        a = AppArgs(**args)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        rewriter = query_rewriter(KnowledgeBackend()) if a.rewrite_queries == "knowledge" else None
        self.core = RecommenderCore(Bundle.load(a.bundle), Stores.connect(a.redis_url),
                                    text_query_encoder() if a.encode_queries else None, rewriter,
                                a.exclude_purchased_days)
        self.recommend.set_max_batch_size(a.max_batch_size)
        self.recommend.set_batch_wait_timeout_s(a.batch_wait_timeout_s)

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.01)
    async def recommend(self, reqs: list[RecommendRequest]) -> list[RecommendResponse | RequestError]:
        """Batched entry point: one decoding pass for the whole batch."""
        return self.core.recommend_batch(reqs)

    def ingest(self, req: EventsRequest) -> EventsResponse | RequestError:
        """Append user events to the near-line stream."""
        return self.core.ingest(req)

    def scenarios(self) -> list[ScenarioInfo]:
        """Scenario ids, pool sizes and trigger requirements."""
        return self.core.scenario_info()

    def version(self) -> str:
        """The loaded model version."""
        return self.core.bundle.version


api = FastAPI(title="Oxygen recommender", version="1",
              description="Instruction-following generative recommendation for every scenario.")


@serve.deployment
@serve.ingress(api)
class Ingress:
    """HTTP front: /v1/recommend, /v1/events, /v1/scenarios, /healthz, /readyz."""

    def __init__(self, recommender: DeploymentHandle, args: dict):
        self.rec = recommender
        self.api_key = events_api_key(AppArgs(**args))

    @api.post("/v1/recommend", response_model=RecommendResponse)
    async def recommend(self, req: RecommendRequest) -> RecommendResponse:
        """Recommend k items for one user in one scenario."""
        out = await self.rec.recommend.remote(req)
        if isinstance(out, RequestError):
            raise HTTPException(status_code=out.status, detail=out.message)
        return out

    @api.post("/v1/events", response_model=EventsResponse)
    async def events(self, req: EventsRequest, x_api_key: str | None = Header(default=None)) -> EventsResponse:
        """Append user events (search / click / cart / purchase) to the near-line stream; high-value
        ones regenerate the user's instruction at the end of their window. Needs `X-API-Key`
        when the service has a key."""
        if self.api_key and not hmac.compare_digest((x_api_key or "").encode(), self.api_key.encode()):
            raise HTTPException(status_code=401, detail="missing or wrong X-API-Key; send the service's API key")
        out = await self.rec.ingest.remote(req)
        if isinstance(out, RequestError):
            raise HTTPException(status_code=out.status, detail=out.message)
        return out

    @api.get("/v1/scenarios", response_model=list[ScenarioInfo])
    async def scenarios(self) -> list[ScenarioInfo]:
        """Every scenario the loaded model serves."""
        return await self.rec.scenarios.remote()

    @api.get("/healthz", response_model=Health)
    async def healthz(self) -> Health:
        """Liveness: the HTTP process answers."""
        return Health(status="ok")

    @api.get("/readyz", response_model=Health)
    async def readyz(self) -> Health:
        """Readiness: the recommender replica has its model loaded."""
        return Health(status="ready", model_version=await self.rec.version.remote())


def build_app(args: dict) -> serve.Application:
    """The application graph for `serve run` / `serve deploy` (args validated by AppArgs)."""
    a = AppArgs(**args)
    rec = Recommender.options(num_replicas=a.recommender_replicas) if a.recommender_replicas else Recommender
    return Ingress.bind(rec.bind(a.model_dump()), a.model_dump())
