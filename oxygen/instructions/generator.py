"""Generate instructions for many users: build each branch's prompts, call the backend once per
branch per batch, parse, cache STP outputs by `stp_key`, combine.

The STP branch depends only on (time bucket, place, persona), so it is generated once per key and
reused for every user with that key (`STPCache`, kept across calls by the caller). A backend that
raises (BackendError or anything else) or returns the wrong number of texts fails that batch: its
users are counted in `stats.failed` and get no record; the job carries on. With a `vocab`
(`pipeline.catalogue_vocabulary`), each record counts its open needs (`Instruction.open_needs`).

    cache = STPCache()
    records, stats = generate_instructions(states, KnowledgeBackend(), cache, batch_size=64)
    stats.to_dict()   # {"users": .., "records": .., "failed": .., "parsed": {"stp": {"ok": ..}}, ...}
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from oxygen.instructions.backends.base import Backend, BackendError
from oxygen.instructions.branches import BRANCHES, StpOut, parse
from oxygen.instructions.combine import Instruction, combine
from oxygen.instructions.needs import NeedVocabulary
from oxygen.instructions.prompts import Budget, intent_prompt, rewrite_prompt, stp_key, stp_prompt
from oxygen.instructions.state import UserState

StpKey = tuple[str, str, str]


@dataclass
class STPCache:
    """Parsed STP outputs by stp_key (None = the generation did not parse), with hit/miss counts."""

    outputs: dict[StpKey, StpOut | None] = field(default_factory=dict)
    hits: int = 0
    misses: int = 0

    def hit_rate(self) -> float:
        """Share of lookups answered from the cache."""
        return self.hits / max(self.hits + self.misses, 1)


@dataclass
class GenerationStats:
    """What happened in one `generate_instructions` call."""

    users: int = 0
    records: int = 0
    empty: int = 0  # users for whom no branch had anything to say
    failed: int = 0  # users of batches whose backend call failed
    truncated: int = 0  # users whose behaviour prompt was cut
    parsed: Counter = field(default_factory=Counter)  # (branch, "ok" | "unusable") per generation
    skipped: Counter = field(default_factory=Counter)  # branch -> users without input for it
    cache_hits: int = 0
    cache_misses: int = 0
    errors: list[str] = field(default_factory=list)  # the first few backend failures
    seconds: float = 0.0

    def to_dict(self) -> dict:
        """JSON-ready summary: counts, per-branch ok/unusable, cache hit rate."""
        parsed = {b: {k: self.parsed[(b, k)] for k in ("ok", "unusable")} for b in BRANCHES}
        lookups = self.cache_hits + self.cache_misses
        return {"users": self.users, "records": self.records, "empty": self.empty, "failed": self.failed,
                "truncated": self.truncated, "parsed": parsed, "skipped": dict(self.skipped),
                "stp_cache": {"hits": self.cache_hits, "misses": self.cache_misses,
                              "hit_rate": self.cache_hits / max(lookups, 1)},
                "errors": self.errors, "seconds": round(self.seconds, 3)}


def _call(backend: Backend, prompts: list[str], max_new_tokens: int) -> list[str]:
    """backend.generate, checked to return one text per prompt (else BackendError)."""
    if not prompts:
        return []
    texts = backend.generate(prompts, max_new_tokens=max_new_tokens)
    if not isinstance(texts, list) or len(texts) != len(prompts):
        got = len(texts) if isinstance(texts, list) else type(texts).__name__
        raise BackendError(f"backend {getattr(backend, 'name', '?')} returned {got} texts for {len(prompts)} prompts")
    return texts


def _stp_batch(batch: Sequence[UserState], backend: Backend, cache: STPCache, stats: GenerationStats,
               max_new_tokens: int) -> list[StpKey | None]:
    """Generate the STP outputs of the batch's keys not yet cached; return each user's key (None: no STP)."""
    keys: list[StpKey | None] = []
    todo: dict[StpKey, str] = {}
    for s in batch:
        prompt = stp_prompt(s)
        if prompt is None:
            keys.append(None)
            stats.skipped["stp"] += 1
            continue
        key = stp_key(s)
        keys.append(key)
        if key in cache.outputs or key in todo:
            cache.hits += 1
            stats.cache_hits += 1
        else:
            cache.misses += 1
            stats.cache_misses += 1
            todo[key] = prompt
    texts = _call(backend, list(todo.values()), max_new_tokens)
    for key, text in zip(todo, texts):
        cache.outputs[key] = parse("stp", text, stats.parsed)
    return keys


def _branch(name: str, prompts: list[str | None], backend: Backend, stats: GenerationStats,
            max_new_tokens: int) -> list:
    """Parsed outputs of one branch for the batch (None where skipped or unusable)."""
    idx = [i for i, p in enumerate(prompts) if p is not None]
    stats.skipped[name] += len(prompts) - len(idx)
    texts = _call(backend, [prompts[i] for i in idx], max_new_tokens)
    out: list = [None] * len(prompts)
    for i, text in zip(idx, texts):
        out[i] = parse(name, text, stats.parsed)
    return out


def _batch(batch: Sequence[UserState], backend: Backend, cache: STPCache, budget: Budget,
           stats: GenerationStats, max_new_tokens: int, vocab: NeedVocabulary | None) -> list[Instruction]:
    """Records of one batch (raises whatever the backend raises)."""
    keys = _stp_batch(batch, backend, cache, stats, max_new_tokens)
    rw_prompts = [rewrite_prompt(s) for s in batch]
    rewrites = _branch("rewrite", rw_prompts, backend, stats, max_new_tokens)
    built = [intent_prompt(s, budget) for s in batch]
    intents = _branch("intent", [p for p, _ in built], backend, stats, max_new_tokens)
    records = []
    for s, key, rw_prompt, rw, it, (_, cut) in zip(batch, keys, rw_prompts, rewrites, intents, built):
        stp = cache.outputs.get(key) if key is not None else None
        unusable = [name for name, tried, got in (("stp", key is not None, stp), ("intent", True, it),
                                                  ("rewrite", rw_prompt is not None, rw))
                    if tried and got is None]
        stats.truncated += int(cut)
        rec = combine(s, stp, rw, it, unusable=unusable, truncated=cut, vocab=vocab)
        if rec is None:
            stats.empty += 1
            continue
        rec.backend, rec.version = backend.name, backend.version
        records.append(rec)
    return records


def fill_stp_cache(states: Sequence[UserState], backend: Backend, cache: STPCache | None = None,
                   max_new_tokens: int = 256) -> tuple[STPCache, GenerationStats]:
    """One STP generation per distinct (time bucket, place, persona) key of `states` not yet in
    `cache` (what a refresh runs once before the per-user branches); (the cache, stats)."""
    cache = cache if cache is not None else STPCache()
    stats, t0 = GenerationStats(users=len(states)), time.perf_counter()
    first: dict[StpKey, UserState] = {}
    for s in states:
        if stp_prompt(s) is not None:
            first.setdefault(stp_key(s), s)
    try:
        _stp_batch(list(first.values()), backend, cache, stats, max_new_tokens)
    except Exception as e:  # noqa: BLE001 - the per-user pass retries missing keys itself
        stats.failed += len(first)
        stats.errors.append(f"{type(e).__name__}: {e}")
    stats.seconds = time.perf_counter() - t0
    return cache, stats


def generate_instructions(states: Sequence[UserState], backend: Backend, stp_cache: STPCache | None = None,
                          batch_size: int = 64, budget: Budget | None = None, max_new_tokens: int = 256,
                          vocab: NeedVocabulary | None = None) -> tuple[list[Instruction], GenerationStats]:
    """(records of the users that got one, stats) for `states`, in batches of `batch_size`;
    `vocab`: count each record's open needs.

    Never raises on backend failures or bad outputs: they are counted in the stats."""
    cache = stp_cache if stp_cache is not None else STPCache()
    budget = budget or Budget()
    stats, records, t0 = GenerationStats(users=len(states)), [], time.perf_counter()
    for a in range(0, len(states), max(batch_size, 1)):
        batch = states[a:a + max(batch_size, 1)]
        try:
            records += _batch(batch, backend, cache, budget, stats, max_new_tokens, vocab)
        except Exception as e:  # noqa: BLE001 - any backend failure fails the batch, not the job
            stats.failed += len(batch)
            if len(stats.errors) < 5:
                stats.errors.append(f"{type(e).__name__}: {e}")
    stats.records, stats.seconds = len(records), time.perf_counter() - t0
    return records, stats


def rewrite_queries(queries: Sequence[str], backend: Backend, max_new_tokens: int = 64,
                    states: Sequence[UserState] | None = None) -> list[str]:
    """The query-rewrite branch on live queries (online search): each query normalised, or kept
    as typed where the output does not parse or the backend fails (search then uses the raw query).
    `states`: the users' states (earlier queries as context), else none."""
    base = states or [UserState(user_id="") for _ in queries]
    prompts = [rewrite_prompt(replace(s, query=q)) for s, q in zip(base, queries)]
    try:
        texts = _call(backend, [p for p in prompts if p is not None], max_new_tokens)
    except Exception:  # noqa: BLE001 - a failed rewrite degrades to the raw query
        return list(queries)
    it = iter(texts)
    out = []
    for q, p in zip(queries, prompts):
        parsed = parse("rewrite", next(it)) if p is not None else None
        out.append(parsed.query if parsed is not None and parsed.query.strip() else q)
    return out
