"""The recommender behind the HTTP API, without Ray: validate requests against the catalogue, read
user state and reasoning instructions from Redis (one round trip each per batch), collate, decode
every request against its scenario's item-pool trie in one batched pass, and build responses.

Search queries go through the query-rewrite branch of slow thinking online (`rewrite_queries`, one
call per batch; a failure keeps the raw query) before they are embedded; the response says which
query the model read (`query_used`). A used stored instruction comes back with its text, reasons
and source (`instruction`), so a person sees why. Degraded modes never fail a request: a missing
instruction or an unreachable Redis falls back to the model's learnable default instruction (and
to an empty history for users not given inline), and the response says so in `reasoning_instruction`.

Business rules act per request inside the trie constraint (oxygen.decoding.trie_set), so answers
stay legal and k items still come back when the pool allows: the trigger item is never returned,
nor the request's `exclude_items`, nor what the user bought in the last `exclude_purchased_days`
days before the request (its own setting, else the service's; from the stored state).

    core = RecommenderCore.from_bundle("runs/demo/bundle", stores=Stores.connect())
    out = core.recommend_batch([RecommendRequest(scenario="homepage", user_id="u1")])
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from oxygen.data.batching import collate
from oxygen.data.schema import SCENARIOS, Row
from oxygen.decoding.guidance import applied_weight
from oxygen.decoding.timing import Timings
from oxygen.instructions.backends.base import Backend
from oxygen.instructions.generator import rewrite_queries
from oxygen.model.bundle import Bundle
from oxygen.semantic_ids.text_encoder import encode_texts
from oxygen.serving.memo import LruMemo
from oxygen.serving.schemas import (
    EventsRequest,
    EventsResponse,
    InstructionUsed,
    RecommendedItem,
    RecommendRequest,
    RecommendResponse,
    ScenarioInfo,
)
from oxygen.serving.stores import DEFAULT_UNREAD, Stores, UserContext
from oxygen.store.events import UserEvent
from oxygen.store.instructions import InstructionRecord, StoreUnavailable

QueryEncoder = Callable[[list[str]], np.ndarray]
QueryRewriter = Callable[[list[str]], list[str]]


def query_rewriter(backend: Backend) -> QueryRewriter:
    """The query-rewrite branch of slow thinking run online by `backend` (a failure keeps the raw query)."""
    return lambda queries: rewrite_queries(queries, backend)


class CachedQueryEncoder:
    """The item text encoder for search queries behind an LRU of the last `cache_size` distinct
    queries (oxygen.serving.memo). Thread-safe: a request's query can be embedded ahead in one
    thread while a batch reads the cache in another; the forward pass runs outside the lock, so a
    batch whose queries are cached never waits for another query's pass."""

    def __init__(self, cache_size: int = 100_000, device: str = "auto"):
        self.device = device
        self._memo: LruMemo[np.ndarray] = LruMemo(self._encode, cache_size)

    def _encode(self, texts: list[str]) -> list[np.ndarray]:
        return list(encode_texts(texts, cache_dir=None, progress=False, device=self.device))

    def __call__(self, texts: list[str]) -> np.ndarray:
        """Float[len(texts), dim] embeddings, new texts encoded in one pass."""
        return np.stack(self._memo(texts))

    def cached(self, texts: list[str]) -> bool:
        """Whether every text's embedding is in the cache now (no forward pass needed)."""
        return self._memo.peek(texts) is not None


def text_query_encoder(cache_size: int = 100_000, device: str = "auto") -> CachedQueryEncoder:
    """The cached query encoder on `device`, loaded now (not on the first search request)."""
    encode = CachedQueryEncoder(cache_size, device)
    encode(["warm-up"])
    return encode


class RequestError(Exception):
    """A request the service refuses: HTTP `status`, what is wrong (`problem`), where (`loc`, the
    field path in the body) and how to fix it (`fix`); `message` is problem and fix in one line."""

    def __init__(self, status: int, problem: str, loc: tuple = ("body",), fix: str = ""):
        super().__init__(status, problem, loc, fix)  # all in args, so it pickles across Ray processes
        self.status, self.problem, self.loc, self.fix = status, problem, tuple(loc), fix
        self.message = f"{problem}; {fix}" if fix else problem

    def __str__(self) -> str:
        return f"{self.status}: {self.message}"


@dataclass
class Prepared:
    """A validated request turned into a schema row, with how its instruction was chosen."""

    request: RecommendRequest
    row: Row
    instruction: np.ndarray | None
    instruction_label: str
    record: InstructionRecord | None = None  # the stored instruction behind `instruction`, if one
    query_used: str | None = None  # the query the model reads (rewritten when the rewriter changed it)
    exclude: list[int] = field(default_factory=list)  # item ids the business rules forbid
    needs: tuple[str, ...] = ()  # open need categories of the user's stored instruction (need slots)

    @property
    def gate(self) -> bool:
        """Whether gated guidance acts on this request: its stored instruction states an open need."""
        return self.record is not None and self.record.gate


class RecommenderCore:
    """Validates, batches and decodes recommendation requests for every scenario of a bundle."""

    def __init__(self, bundle: Bundle, stores: Stores, encode_queries: QueryEncoder | None = None,
                 rewrite_queries: QueryRewriter | None = None, exclude_purchased_days: int = 0):
        self.bundle, self.stores, self.encode_queries = bundle, stores, encode_queries
        self.rewrite_queries = rewrite_queries  # the query-rewrite branch, online (None: raw queries)
        self._rewritten = LruMemo(rewrite_queries) if rewrite_queries else None  # raw query -> what the model reads
        self.exclude_purchased_days = exclude_purchased_days  # the service default of the purchase rule
        self.scenarios = sorted(bundle.scenarios)
        self.decoder = bundle.decoder()
        self.known_items = set(bundle.codebook.item_ids.tolist())

    def scenario_info(self) -> list[ScenarioInfo]:
        """Ids, pool sizes and trigger requirements of every scenario."""
        return [ScenarioInfo(id=s, pool_size=len(self.bundle.scenarios[s].pool),
                             requires_trigger=self.bundle.scenarios[s].requires_trigger,
                             instruction_weight=self.bundle.guidance.get(s, 0.0),
                             instruction_gated=s in self.bundle.guidance_gated,
                             need_slots=self.bundle.need_slots.get(s, 0)) for s in self.scenarios]

    def check(self, req: RecommendRequest) -> None:
        """Raise RequestError (4xx) when the request does not fit this catalogue."""
        if req.scenario not in self.bundle.scenarios:
            raise RequestError(404, f"unknown scenario '{req.scenario}'", ("body", "scenario"),
                               f"choose one of {self.scenarios} (GET /v1/scenarios)")
        spec = self.bundle.scenarios[req.scenario]
        if spec.requires_trigger and req.trigger_item is None:
            raise RequestError(422, f"scenario '{req.scenario}' requires trigger_item", ("body", "trigger_item"),
                               "send the clicked / carted item id as trigger_item")
        if req.trigger_item is not None and req.trigger_item not in self.known_items:
            raise RequestError(404, f"unknown trigger_item {req.trigger_item}: it is not in the catalogue",
                               ("body", "trigger_item"), "send a catalogue item id")
        bad = [i for i in (req.history or []) if i not in self.known_items]
        if bad:
            raise RequestError(404, f"history holds unknown item ids {bad[:5]}", ("body", "history"),
                               "send catalogue item ids only")
        if len(spec.pool) < 1:
            raise RequestError(409, f"scenario '{req.scenario}' has an empty item pool", ("body", "scenario"),
                               "serve a bundle whose pool for this scenario holds items, or choose another")

    def ingest(self, req: EventsRequest) -> EventsResponse | RequestError:
        """Append a batch of user events to the near-line stream (and their users' state), all or
        none (the schema already made every search carry its query and every other event its item):
        an unknown item refuses the whole batch (404 naming it), an unreachable Redis is a 503
        (the client retries; nothing was written)."""
        events = []
        for n, e in enumerate(req.events):
            if e.item is not None and e.item not in self.known_items:
                return RequestError(404, f"events[{n}]: unknown item {e.item}", ("body", "events", n, "item"),
                                    "send catalogue item ids only")
            events.append(UserEvent(e.user_id, e.type, e.item, e.scenario, e.ts, getattr(e, "query", None)))
        try:
            return EventsResponse(accepted=self.stores.events.ingest(events))
        except StoreUnavailable as err:
            return RequestError(503, f"the event store is unavailable ({err})", ("body",),
                                "retry the batch; nothing was written")

    def _row(self, req: RecommendRequest, user: UserContext) -> Row:
        history = req.history if req.history is not None else user.history
        beh = user.behaviours if req.history is None else None
        scen = user.scenarios if req.history is None else None
        return Row(user_id=req.user_id, history=list(history), target=int(self.bundle.codebook.item_ids[0]),
                   scenario=req.scenario if req.scenario in SCENARIOS else None, trigger=req.trigger_item,
                   query=req.query, history_behaviours=beh, history_scenarios=scen, profile=user.profile)

    def prepare(self, reqs: list[RecommendRequest], timings: Timings | None = None) -> list[Prepared | RequestError]:
        """Rows and instructions for checked requests (one Redis round trip per kind of record);
        a user unknown to the store who sent no history is a RequestError."""
        timings = timings if timings is not None else Timings()
        with timings.stage("redis"):
            users = self.stores.users([r.user_id for r in reqs], [r.history is not None for r in reqs])
            instr = self.stores.instructions([r.user_id for r in reqs])
        used, qemb = self._queries(reqs, timings)
        out = []
        for req, user, (rec, label) in zip(reqs, users, instr):
            if not user.found:
                out.append(RequestError(404, f"unknown user_id '{req.user_id}'", ("body", "user_id"),
                                        "send `history` (item ids) for users the service has no state for"))
                continue
            if req.query and used.get(req.query) in qemb:
                q = used[req.query]
                out.append(Prepared(req, self._row(req, user), qemb[q], "query" if q == req.query else
                                    "query (rewritten)", None, q, self.excluded(req, user)))
                continue
            needs = tuple(rec.open_categories or ()) if rec is not None else ()
            if rec is not None and not self.bundle.scenarios[req.scenario].reads_instruction:
                rec, label = None, DEFAULT_UNREAD
            out.append(Prepared(req, self._row(req, user), rec.embedding if rec else None, label, rec,
                                exclude=self.excluded(req, user), needs=needs))
        return out

    def excluded(self, req: RecommendRequest, user: UserContext) -> list[int]:
        """Item ids the business rules forbid for this request: its trigger item, its
        `exclude_items`, and the user's purchases in the last N days before `req.ts` (N: the
        request's `exclude_purchased_days`, else the service's; 0 turns the rule off)."""
        out = set(req.exclude_items)
        if req.trigger_item is not None:
            out.add(req.trigger_item)
        days = self.exclude_purchased_days if req.exclude_purchased_days is None else req.exclude_purchased_days
        if days and user.behaviours and user.timestamps:
            at = time.time() if req.ts is None else req.ts
            out.update(i for i, b, t in zip(user.history, user.behaviours, user.timestamps)
                       if b == "purchase" and at - days * 86400 <= t <= at)
        return sorted(out)

    def _queries(self, reqs: list[RecommendRequest], timings: Timings) -> tuple[dict[str, str], dict[str, np.ndarray]]:
        """({raw query: the query the model reads}, {that query: its embedding}) for the batch's
        search requests: rewritten in one call when a rewriter is set, embedded in one call."""
        raw = sorted({r.query for r in reqs if r.query})
        if not raw or self.encode_queries is None:
            return {}, {}
        with timings.stage("rewrite"):
            used = dict(zip(raw, self.rewrite(raw)))
        distinct = sorted(set(used.values()))
        with timings.stage("embed"):
            return used, dict(zip(distinct, self.encode_queries(distinct)))

    def rewrite(self, queries: list[str]) -> list[str]:
        """The queries the model reads for these raw ones: the rewriter's output (raw without one),
        remembered per raw query (an LRU), so a repeated query is rewritten once."""
        return self._rewritten(queries) if self._rewritten is not None else list(queries)

    def embed_ahead(self, queries: list[str]) -> None:
        """Rewrite and embed search queries now, in one call each, before their requests join a
        batch, so the batch finds their vectors in the encoder's cache (the service runs this in a
        thread while the model decodes the batch before); nothing without a query encoder."""
        queries = sorted({q for q in queries if q})
        if self.encode_queries is not None and queries:
            self.encode_queries(self.rewrite(queries))

    def embedded(self, queries: list[str]) -> bool:
        """Whether `embed_ahead(queries)` has nothing to do: no query encoder, or every query
        rewritten before and its vector cached. Runs no rewriter and no encoder, so the service asks
        on its event loop and spares cached queries the thread hop; an encoder without a cache
        (no `cached` method) always says False."""
        queries = sorted({q for q in queries if q})
        if self.encode_queries is None or not queries:
            return True
        cached = getattr(self.encode_queries, "cached", None)
        used = self._rewritten.peek(queries) if self._rewritten is not None else queries
        return cached is not None and used is not None and cached(used)

    def decode(self, items: list[Prepared], timings: Timings | None = None
               ) -> list[tuple[np.ndarray, np.ndarray, dict[int, str]]]:
        """Decode all prepared requests in one batched pass through the bundle's Decoder, each in
        its scenario's pool; (item ids, scores, {item id: the open need its slot went to}) per request."""
        timings = timings if timings is not None else Timings()
        emb = {id(p.row): p.instruction for p in items}
        with timings.stage("collate"):
            batch = collate([p.row for p in items], self.bundle.space, self.bundle.collate_cfg,
                            lambda r: emb.get(id(r)), with_targets=False)
        k = max(p.request.k for p in items)
        beam = max(max(p.request.beam or 20, p.request.k) for p in items)  # a beam below k is raised to k
        sampling = next((p.request.sampling for p in items if p.request.sampling), None)
        out = self.decoder.decode(batch, [p.row.history for p in items], beam, k,
                                  [p.request.scenario for p in items], sampling, [p.exclude for p in items], timings,
                                  [p.gate for p in items], [p.needs for p in items])
        return [(out.items[i, : p.request.k], out.scores[i, : p.request.k], out.need_of(i, p.needs, p.request.k))
                for i, p in enumerate(items)]

    def weight_applied(self, p: Prepared) -> float:
        """The instruction-guidance weight this request was decoded with: its scenario's, or 0 in a
        gated scenario when its instruction states no open need, and 0 under beam sampling (which
        draws from the model as it is)."""
        if p.request.sampling:
            return 0.0
        return applied_weight(self.bundle.guidance, self.bundle.guidance_gated, p.request.scenario, p.gate)

    def respond(self, p: Prepared, ids: np.ndarray, scores: np.ndarray, t0: float,
                need: dict[int, str] | None = None) -> RecommendResponse:
        """Build the response of one request (its `timing_ms` is filled by `recommend_batch`);
        `need`: item id -> the open need its slot was given to (need slots)."""
        need = need or {}
        cb, titles = self.bundle.codebook, self.bundle.titles
        recs = [RecommendedItem(item_id=int(i), semantic_id=list(cb.code_of(int(i))), score=float(s),
                                title=titles.get(int(i)), need=need.get(int(i))) for i, s in zip(ids, scores) if i >= 0]
        rec = p.record
        used = InstructionUsed(text=rec.text, reasons=rec.reasons, branches=rec.branches, source=rec.source,
                               version=rec.version, created_at=rec.created_at) if rec is not None else None
        return RecommendResponse(scenario=p.request.scenario, user_id=p.request.user_id, items=recs,
                                 reasoning_instruction=p.instruction_label, instruction=used, query_used=p.query_used,
                                 instruction_weight=self.weight_applied(p),
                                 model_version=self.bundle.version, latency_ms=(time.perf_counter() - t0) * 1000)

    def recommend_batch(self, reqs: list[RecommendRequest]) -> list[RecommendResponse | RequestError]:
        """Answer many requests (mixed scenarios); invalid ones come back as RequestError. Every
        response carries the batch's time per stage (`timing_ms`: check, redis, rewrite, embed,
        collate, encoder, decode, rerank, respond)."""
        t0, timings = time.perf_counter(), Timings()
        results: list[RecommendResponse | RequestError | None] = [None] * len(reqs)
        ok = []
        with timings.stage("check"):
            for i, r in enumerate(reqs):
                try:
                    self.check(r)
                    ok.append(i)
                except RequestError as e:
                    results[i] = e
        if ok:
            prepared = self.prepare([reqs[i] for i in ok], timings)
            groups: dict[str, list[int]] = {}
            for j, p in enumerate(prepared):  # one decode per sampling setting (usually one group)
                if isinstance(p, RequestError):
                    results[ok[j]] = p
                else:  # a seeded sampling request decodes alone so its seed alone decides it
                    seeded = p.request.sampling is not None and p.request.sampling.seed is not None
                    groups.setdefault(f"{p.request.sampling!r}#{j}" if seeded else repr(p.request.sampling),
                                      []).append(j)
            for idx in groups.values():
                decoded = self.decode([prepared[j] for j in idx], timings)
                with timings.stage("respond"):
                    for j, (ids, sc, need) in zip(idx, decoded):
                        results[ok[j]] = self.respond(prepared[j], ids, sc, t0, need)
        for r in results:
            if isinstance(r, RecommendResponse):
                r.timing_ms, r.batch_size = {k: round(v, 3) for k, v in timings.ms.items()}, len(reqs)
        return results  # type: ignore[return-value]
