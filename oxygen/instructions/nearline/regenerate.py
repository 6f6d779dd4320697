"""A claimed user's instruction, regenerated from their state in Redis: the near-line job.

The user state (history with behaviours, scenarios and times, recent queries, profile) is what
`EventLog.ingest` keeps current; the instruction is written as of the user's newest event (event
time, so a replayed log gets the season of its own dates), by the configured backend, embedded by
the item text encoder, and versioned by the window's newest arrival (`Claim.asof`).

    regen = Regenerator(users, KnowledgeBackend(coverage=0.8), item_info(items), feed, catalogue_vocabulary(items))
    done = regen([claim, ...])      # Outcome: records by user, users that failed, users with nothing to say
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from oxygen.data.schema import Item
from oxygen.instructions.backends.base import Backend
from oxygen.instructions.generator import STPCache, generate_instructions
from oxygen.instructions.needs import NeedVocabulary
from oxygen.instructions.pipeline import embed
from oxygen.instructions.state import ItemInfo, UserState, state_at
from oxygen.instructions.weather import WeatherFeed
from oxygen.store.events import Claim
from oxygen.store.instructions import InstructionRecord
from oxygen.store.users import UserState as StoredState
from oxygen.store.users import UserStateStore


def item_info(items: Sequence[Item]) -> dict[int, ItemInfo]:
    """item_id -> (title, category path): what the prompts say about an item."""
    return {it.item_id: (it.title, list(it.categories)) for it in items}


def state_of(stored: StoredState, items: dict[int, ItemInfo], feed: WeatherFeed | None = None) -> UserState:
    """The generators' input from a stored state, at one second after the user's newest event."""
    n = len(stored.history)
    ts = stored.timestamps if stored.timestamps and len(stored.timestamps) == n else [None] * n
    acts = stored.behaviours if stored.behaviours and len(stored.behaviours) == n else [None] * n
    scens = stored.scenarios if stored.scenarios and len(stored.scenarios) == n else [None] * n
    queries = [(int(q[0]) if q[0] else None, str(q[1])) for q in (stored.queries or [])]
    times = [t for t in ts if t] + [q[0] for q in queries if q[0]]
    t = max(times) + 1 if times else None
    profile = stored.profile or {}
    context = {"city": profile.get("city")} if profile.get("city") else {}
    if t is not None:
        context["date"] = dt.datetime.fromtimestamp(t, dt.timezone.utc).date().isoformat()
    events = list(zip(ts, acts, stored.history, scens))
    return state_at(stored.user_id, t, profile, context, events, queries, items, feed=feed)


@dataclass
class Outcome:
    """What one regeneration batch produced."""

    records: dict[str, InstructionRecord] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # user -> error (retried, then dead-lettered)
    empty: list[str] = field(default_factory=list)  # users with nothing to say (completed, nothing written)


class Regenerator:
    """Claims -> instruction records, through one backend call per batch."""

    def __init__(self, users: UserStateStore, backend: Backend, items: dict[int, ItemInfo],
                 feed: WeatherFeed | None = None, vocab: NeedVocabulary | None = None, encoder: str | None = None) -> None:
        """`vocab`: the catalogue's need vocabulary, so records count their open needs (None: they do not)."""
        self.users, self.backend, self.items, self.feed, self.encoder = users, backend, items, feed, encoder
        self.vocab = vocab
        self.stp_cache = STPCache()  # situations repeat across users: one STP generation each

    def __call__(self, claims: Sequence[Claim]) -> Outcome:
        out = Outcome()
        stored = self.users.get_many([c.user_id for c in claims])
        states = []
        for c, s in zip(claims, stored):
            if s is None:
                out.failed[c.user_id] = "no user state in the store"
            else:
                states.append(state_of(s, self.items, self.feed))
        if not states:
            return out
        instrs, stats = generate_instructions(states, self.backend, self.stp_cache, batch_size=len(states),
                                              vocab=self.vocab)
        asof = {c.user_id: c.asof for c in claims}
        for rec in embed(instrs, self.encoder):
            rec.asof = asof[rec.user_id]
            out.records[rec.user_id] = rec
        error = "; ".join(stats.errors) or "the backend failed"
        for st in states:
            if st.user_id not in out.records:
                if stats.failed:
                    out.failed[st.user_id] = error
                else:
                    out.empty.append(st.user_id)
        return out
