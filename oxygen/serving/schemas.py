"""Pydantic request/response schemas of the HTTP API (they also generate the OpenAPI at /docs).

Bounds here are the first line of input validation: a request outside them is a 422 that names
the field; checks that need the catalogue (unknown scenario, user, trigger item) are 4xx raised by
the recommender with a message that says what to fix.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_K = 100
MAX_BEAM = 512
MAX_HISTORY = 200
MAX_QUERY_CHARS = 256
MAX_EXCLUDE = 1000
MAX_EXCLUDE_DAYS = 3650


class Sampling(BaseModel):
    """Beam sampling instead of beam search (diverse feeds)."""

    model_config = ConfigDict(extra="forbid")
    temperature: float = Field(default=1.0, gt=0, le=10)
    top_k: int | None = Field(default=None, ge=1, le=4096)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = None


class RecommendRequest(BaseModel):
    """POST /v1/recommend body."""

    model_config = ConfigDict(extra="forbid")
    scenario: str = Field(min_length=1, max_length=64, examples=["homepage"])
    user_id: str = Field(min_length=1, max_length=128, examples=["u42"])
    trigger_item: int | None = Field(default=None, ge=0, description="required by channel/cart/checkout; never returned itself")
    query: str | None = Field(default=None, max_length=MAX_QUERY_CHARS, description="search text")
    history: list[int] | None = Field(default=None, max_length=MAX_HISTORY,
                                      description="item ids, oldest first; else the user's stored state")
    k: int = Field(default=10, ge=1, le=MAX_K)
    beam: int | None = Field(default=None, ge=1, le=MAX_BEAM, description="beam width (>= k)")
    sampling: Sampling | None = None
    exclude_items: list[int] = Field(default_factory=list, max_length=MAX_EXCLUDE,
                                     description="item ids never to return (ids outside the catalogue are ignored)")
    exclude_purchased_days: int | None = Field(
        default=None, ge=0, le=MAX_EXCLUDE_DAYS,
        description="never return items the user bought in the last N days before `ts` (0: off; "
                    "default: the service's setting); read from the user's stored state")
    ts: int | None = Field(default=None, ge=0, description="request time, unix seconds (default: now); "
                                                          "replays of logged traffic pass the logged time")


class RecommendedItem(BaseModel):
    """One recommendation."""

    item_id: int
    semantic_id: list[int]
    score: float
    title: str | None = None


class InstructionUsed(BaseModel):
    """The stored reasoning instruction a response was steered by, so a person sees why."""

    text: str
    reasons: list[str] = Field(default_factory=list)
    branches: list[str] = Field(default_factory=list, description="stp | rewrite | intent")
    source: str = Field(description="the backend that wrote it: knowledge | hf | vllm")
    version: str = ""
    created_at: float = Field(description="unix seconds")


class RecommendResponse(BaseModel):
    """POST /v1/recommend answer."""

    scenario: str
    user_id: str
    items: list[RecommendedItem]
    reasoning_instruction: str = Field(description="used | query | query (rewritten) | default (missing) | "
                                                   "default (store unavailable) | default (not read in this scenario)")
    instruction: InstructionUsed | None = Field(default=None, description="the stored instruction, when used")
    query_used: str | None = Field(default=None, description="the search query the model read (after rewriting)")
    model_version: str
    latency_ms: float


class ScenarioInfo(BaseModel):
    """GET /v1/scenarios entry."""

    id: str
    pool_size: int
    requires_trigger: bool


class Health(BaseModel):
    """GET /healthz and /readyz answer."""

    status: str
    model_version: str | None = None


MAX_EVENTS = 1000  # events per POST /v1/events


class EventIn(BaseModel):
    """One user event for the near-line pipeline."""

    model_config = ConfigDict(extra="forbid")
    user_id: str = Field(min_length=1, max_length=128, examples=["u42"])
    type: Literal["search", "click", "cart", "purchase"] = Field(examples=["cart"])
    item: int | None = Field(default=None, ge=0, description="the item acted on (required except for a search)")
    scenario: Literal["search", "homepage", "channel", "cart", "checkout"] | None = None
    ts: int | None = Field(default=None, ge=0, description="unix seconds; default: when it arrives")
    query: str | None = Field(default=None, min_length=1, max_length=MAX_QUERY_CHARS, description="search text")


class EventsRequest(BaseModel):
    """POST /v1/events body: a batch of events (appended in order)."""

    model_config = ConfigDict(extra="forbid")
    events: list[EventIn] = Field(min_length=1, max_length=MAX_EVENTS)


class EventsResponse(BaseModel):
    """How many events were appended to the stream."""

    accepted: int
