"""Pydantic request/response schemas of the HTTP API (they also generate the OpenAPI at /docs).

Bounds here are the first line of input validation: a request outside them is a 422 that names
the field; checks that need the catalogue (unknown scenario, user, trigger item) are 4xx raised by
the recommender with a message that says what to fix. Every 4xx (and the 503 of a store outage)
has one body, `ErrorResponse`: a list of `ErrorDetail` (where, what, a machine-readable type, and
how to fix it), the shape FastAPI's own validation errors have, so one client parser reads all.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from oxygen.config.loading import Scenario
from oxygen.model.bundle import TRIGGER_SCENARIOS


def _json_int(v: object) -> object:
    """A JSON integer as JSON Schema defines it: an int, or a number with no fractional part
    (484.0); never a boolean or a string (the models are strict, so "5" and false are refused)."""
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def json_int(ge: int, le: int) -> object:
    """The integer type of a request field with bounds ge..le (the bounds sit on the integer itself,
    so the OpenAPI spec states them as minimum / maximum)."""
    return Annotated[int, Field(ge=ge, le=le), BeforeValidator(_json_int)]


MAX_ID = 2**53 - 1  # item ids and seeds: the largest integer every JSON parser reads exactly
MAX_TS = 10**11  # unix seconds (year ~5000)
ItemId = json_int(0, MAX_ID)
UnixTime = json_int(0, MAX_TS)

MAX_K = 100
MAX_BEAM = 512
MAX_HISTORY = 200
MAX_QUERY_CHARS = 256
MAX_EXCLUDE = 1000
MAX_EXCLUDE_DAYS = 3650


class Sampling(BaseModel):
    """Beam sampling instead of beam search (diverse feeds)."""

    model_config = ConfigDict(extra="forbid", strict=True)  # JSON types as the spec says: false is not 0
    temperature: float = Field(default=1.0, gt=0, le=10)
    top_k: json_int(1, 4096) | None = None
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: json_int(0, MAX_ID) | None = None


TRIGGER_RULE = {  # JSON Schema of the rule `require_trigger` checks, so a client generated from the spec knows it
    "if": {"properties": {"scenario": {"enum": list(TRIGGER_SCENARIOS)}}, "required": ["scenario"]},
    "then": {"properties": {"trigger_item": {"type": "integer", "minimum": 0}}, "required": ["trigger_item"]}}


class RecommendRequest(BaseModel):
    """POST /v1/recommend body."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=TRIGGER_RULE)
    scenario: str = Field(min_length=1, max_length=64, examples=["homepage"])
    user_id: str = Field(min_length=1, max_length=128, examples=["u42"])
    trigger_item: ItemId | None = Field(default=None, description="required by channel/cart/checkout; never returned itself")
    query: str | None = Field(default=None, max_length=MAX_QUERY_CHARS, description="search text")
    history: list[ItemId] | None = Field(default=None, max_length=MAX_HISTORY,
                                      description="item ids, oldest first; else the user's stored state")
    k: json_int(1, MAX_K) = 10
    beam: json_int(1, MAX_BEAM) | None = Field(default=None,
                             description="beam width (default max(k, 20); a beam below k is raised to k)")
    sampling: Sampling | None = None
    exclude_items: list[ItemId] = Field(default_factory=list, max_length=MAX_EXCLUDE,
                                     description="item ids never to return (ids outside the catalogue are ignored)")
    exclude_purchased_days: json_int(0, MAX_EXCLUDE_DAYS) | None = Field(
        default=None,
        description="never return items the user bought in the last N days before `ts` (0: off; "
                    "default: the service's setting); read from the user's stored state")
    ts: UnixTime | None = Field(default=None, description="request time, unix seconds (default: now); "
                                                          "replays of logged traffic pass the logged time")

    @model_validator(mode="after")
    def require_trigger(self) -> "RecommendRequest":
        """channel / cart / checkout answer about an item: the request must name it."""
        if self.scenario in TRIGGER_SCENARIOS and self.trigger_item is None:
            raise ValueError(f"scenario '{self.scenario}' requires trigger_item: send the clicked / carted item id")
        return self


class RecommendedItem(BaseModel):
    """One recommendation."""

    item_id: int
    semantic_id: list[int]
    score: float  # sequence log-prob (or re-rank probability); a need-slot item's is its log-prob inside `need`
    title: str | None = None
    need: str | None = None  # the open need (category) of the user's instruction this item's slot was given to


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
    instruction_weight: float = Field(default=0.0, description="the instruction-guidance weight this request was "
                                      "decoded with (the bundle's guidance.json): 0 decodes as trained, below 0 "
                                      "leans towards the default instruction, above 0 leans harder on the "
                                      "instruction; 0 in a gated scenario when the instruction states no open need")
    model_version: str
    latency_ms: float = Field(description="time inside the recommender for this request's batch, ms")
    batch_size: int = Field(default=1, description="requests decoded together with this one")
    timing_ms: dict[str, float] = Field(
        default_factory=dict, description="where the time went, ms per stage: batch_wait, check, redis, rewrite, "
                                          "embed, collate, encoder, decode, rerank, respond (the batch's figures), "
                                          "handle (the hop between deployments, when there are two), route (the "
                                          "whole HTTP handler)")


class ScenarioInfo(BaseModel):
    """GET /v1/scenarios entry."""

    id: str
    pool_size: int
    requires_trigger: bool
    instruction_weight: float = 0.0  # the scenario's instruction-guidance weight (0: none)
    instruction_gated: bool = False  # the weight acts only where the user's instruction states an open need
    need_slots: int = 0  # slots of each list given to the open needs the user's instruction states (0: none)


class Health(BaseModel):
    """GET /healthz and /readyz answer."""

    status: str
    model_version: str | None = None


MAX_EVENTS = 1000  # events per POST /v1/events


class _Event(BaseModel):
    """What every user event carries."""

    model_config = ConfigDict(extra="forbid", strict=True)  # JSON types as the spec says: false is not 0
    user_id: str = Field(min_length=1, max_length=128, examples=["u42"])
    scenario: Scenario | None = None
    ts: UnixTime | None = Field(default=None, description="unix seconds; default: when it arrives")


class SearchEvent(_Event):
    """A search: its text (and optionally the item it led to)."""

    type: Literal["search"]
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, description="search text")
    item: ItemId | None = None


class ItemEvent(_Event):
    """A click, cart or purchase of one item."""

    type: Literal["click", "cart", "purchase"] = Field(examples=["cart"])
    item: ItemId = Field(description="the item acted on")


EventIn = Annotated[SearchEvent | ItemEvent, Field(discriminator="type")]  # one user event


class EventsRequest(BaseModel):
    """POST /v1/events body: a batch of events (appended in order)."""

    model_config = ConfigDict(extra="forbid", strict=True)  # JSON types as the spec says: false is not 0
    events: list[EventIn] = Field(min_length=1, max_length=MAX_EVENTS)


class EventsResponse(BaseModel):
    """How many events were appended to the stream."""

    accepted: int


class ErrorDetail(BaseModel):
    """One thing wrong with a request."""

    loc: list[str | int] = Field(description="where: the field path, e.g. [\"body\", \"trigger_item\"]")
    msg: str = Field(description="what is wrong")
    type: str = Field(description="machine-readable kind: a pydantic error type (missing, extra_forbidden, "
                                  "less_than_equal, json_invalid, ...) or not_found, invalid, conflict, "
                                  "unauthorized, unavailable, method_not_allowed")
    fix: str = Field(description="how to fix it")


class ErrorResponse(BaseModel):
    """The body of every 4xx and 503 answer."""

    detail: list[ErrorDetail] = Field(min_length=1)
