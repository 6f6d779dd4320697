"""The daily full refresh on Ray Data: every user active in the day before `date` gets a new
instruction, written as of the day's start (00:00 UTC), so a fresher near-line record is never
replaced (versioned writes) and rerunning the same date changes nothing.

1. the driver picks the active users (a row in [date - 1 day, date)) and their state at the cutoff
   (everything strictly before it), skipping users already written for this date (resume);
2. one Ray task generates the STP branch once per distinct (time bucket, place, persona) key;
3. Ray Data `map_batches` (an actor pool, each holding the backend, the filled STP cache and the
   text encoder) generates the per-user branches and embeds the texts in batches;
4. `map_batches` writes each batch in one Redis round trip and marks its users done for the date.

    summary = refresh(rows, items, feed, "2025-11-20", RefreshSettings(redis_url=url, backend="knowledge"))

The summary's `users_per_s` is over the whole run (Ray Data's start, each actor loading its backend
and encoder); `busy_seconds` sums the time the generation actors spent on batches, so
`users_per_busy_s` is one actor's steady rate, what a long day's refresh approaches.
"""

from __future__ import annotations

import datetime as dt
import pickle
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import ray

from oxygen.data.adapters import user_state
from oxygen.data.schema import Item, Row
from oxygen.instructions.backends import make_backend
from oxygen.instructions.generator import STPCache, fill_stp_cache, generate_instructions
from oxygen.instructions.needs import NeedVocabulary
from oxygen.instructions.pipeline import QueryLog, after, catalogue_vocabulary, embed, query_log
from oxygen.instructions.state import UserState
from oxygen.instructions.weather import WeatherFeed
from oxygen.store.instructions import InstructionRecord, InstructionStore
from oxygen.store.refresh import RefreshLedger


@dataclass(frozen=True)
class RefreshSettings:
    """Backend, batching and where to write."""

    redis_url: str
    backend: str = "knowledge"
    model: str | None = None
    coverage: float = 0.8
    prefix: str = "oxygen"
    batch_size: int = 256
    actors: int = 1  # generation actors (one backend + encoder each)
    actor_cpus: float = 1.0
    actor_gpus: float = 0.0  # 1 for a vLLM backend on a GPU cluster


def cutoff_of(date: str) -> int:
    """Unix seconds of `date` 00:00 UTC (the refresh's as-of time); ValueError for a bad date."""
    try:
        day = dt.date.fromisoformat(date)
    except ValueError:
        raise ValueError(f"--date {date!r} is not a date; write it as YYYY-MM-DD") from None
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc).timestamp())


def active_states(rows: Sequence[Row], items: dict[int, Item], feed: WeatherFeed | None, date: str
                  ) -> list[UserState]:
    """The state at the cutoff of every user with a row in the day before it: their last row
    before the cutoff with its own event appended, nothing at or after the cutoff."""
    t = cutoff_of(date)
    last: dict[str, Row] = {}
    active: set[str] = set()
    for r in rows:
        if r.timestamp is None or r.timestamp >= t:
            continue
        if r.timestamp >= t - 86400:
            active.add(r.user_id)
        if r.user_id not in last or r.timestamp >= (last[r.user_id].timestamp or 0):
            last[r.user_id] = r
    queries: QueryLog = query_log(r for r in rows if r.timestamp is not None and r.timestamp < t)
    out = []
    for u in sorted(active):
        row = after(last[u])
        context = row.context.model_copy(update={"date": date}) if row.context else None
        out.append(user_state(row.model_copy(update={"timestamp": t, "context": context}), items,
                              queries.get(u, []), feed))
    return out


class _Generate:
    """Ray Data actor: states -> embedded records (the backend and encoder load once per actor)."""

    def __init__(self, settings: RefreshSettings, cache: STPCache, asof: float, vocab: NeedVocabulary) -> None:
        s = settings
        self.backend = make_backend(s.backend, s.model, coverage=s.coverage)
        self.cache, self.asof, self.vocab = cache, asof, vocab

    def __call__(self, batch: dict) -> dict:
        t0 = time.perf_counter()
        states = [pickle.loads(b) for b in batch["state"]]
        instrs, stats = generate_instructions(states, self.backend, self.cache, batch_size=len(states), vocab=self.vocab)
        recs = embed(instrs)
        for r in recs:
            r.asof = self.asof
        by_user = {r.user_id: r for r in recs}
        return {"user_id": np.array([s.user_id for s in states], dtype=object),
                "record": np.array([pickle.dumps(by_user.get(s.user_id)) for s in states], dtype=object),
                "usable": np.array([s.user_id in by_user for s in states]),
                "failed": np.array([bool(stats.failed)] * len(states)),
                "busy_s": np.full(len(states), (time.perf_counter() - t0) / len(states))}


class _Write:
    """Ray Data actor: one versioned write + ledger update per batch."""

    def __init__(self, settings: RefreshSettings, date: str) -> None:
        self.store = InstructionStore.connect(settings.redis_url, settings.prefix, timeout_s=10)
        self.ledger = RefreshLedger(self.store.client, settings.prefix, date)

    def __call__(self, batch: dict) -> dict:
        recs: list[InstructionRecord] = [r for r in (pickle.loads(b) for b in batch["record"]) if r is not None]
        written = dict(zip([r.user_id for r in recs], self.store.put_versioned(recs)))
        done = [u for u, f in zip(batch["user_id"], batch["failed"]) if not f]  # failed users stay to do
        self.ledger.mark(done)
        return {"user_id": batch["user_id"], "usable": batch["usable"], "failed": batch["failed"],
                "written": np.array([written.get(u, False) for u in batch["user_id"]]), "busy_s": batch["busy_s"]}


def refresh(rows: Sequence[Row], items: dict[int, Item], feed: WeatherFeed | None, date: str,
            settings: RefreshSettings) -> dict:
    """Regenerate and write the day's active users (see the module docstring); the summary."""
    t0 = time.perf_counter()
    states = active_states(rows, items, feed, date)
    store = InstructionStore.connect(settings.redis_url, settings.prefix, timeout_s=10)
    ledger = RefreshLedger(store.client, settings.prefix, date)
    skip = ledger.done([s.user_id for s in states])
    todo = [s for s, d in zip(states, skip) if not d]
    summary = {"date": date, "active_users": len(states), "resumed_skipped": len(states) - len(todo)}
    if todo:
        stp = ray.remote(num_cpus=settings.actor_cpus, num_gpus=settings.actor_gpus)(_fill_stp).remote(todo, settings)
        cache, stp_stats = ray.get(stp)
        ds = ray.data.from_items([{"state": pickle.dumps(s)} for s in todo], override_num_blocks=max(
            1, min(64, len(todo) // settings.batch_size)))
        vocab = catalogue_vocabulary(items.values())
        ds = ds.map_batches(_Generate, fn_constructor_args=(settings, cache, float(cutoff_of(date)), vocab),
                            batch_size=settings.batch_size, concurrency=settings.actors, num_cpus=settings.actor_cpus,
                            num_gpus=settings.actor_gpus)
        ds = ds.map_batches(_Write, fn_constructor_args=(settings, date), batch_size=settings.batch_size,
                            concurrency=1, num_cpus=0.25)
        out = ds.to_pandas()
        summary.update(users=len(todo), usable=int(out["usable"].sum()), failed=int(out["failed"].sum()),
                       written=int(out["written"].sum()), stale=int((out["usable"] & ~out["written"]).sum()),
                       stp_keys=len(cache.outputs), stp_seconds=stp_stats.seconds, busy_seconds=float(out["busy_s"].sum()))
    else:
        summary.update(users=0, usable=0, failed=0, written=0, stale=0, stp_keys=0, stp_seconds=0.0, busy_seconds=0.0)
    summary["seconds"] = time.perf_counter() - t0
    summary["usable_share"] = summary["usable"] / max(summary["users"], 1)
    summary["users_per_s"] = summary["users"] / max(summary["seconds"], 1e-9)
    summary["users_per_busy_s"] = summary["users"] / max(summary["busy_seconds"], 1e-9)  # an actor's steady rate
    return summary


def _fill_stp(states: list[UserState], settings: RefreshSettings):
    """The refresh's STP stage (a Ray task): one generation per distinct key."""
    return fill_stp_cache(states, make_backend(settings.backend, settings.model, coverage=settings.coverage))
