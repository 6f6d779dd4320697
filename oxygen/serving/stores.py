"""Serving's view of Redis: batch reads of user state and reasoning instructions that degrade
instead of failing. When Redis is unreachable every request gets the default instruction and (when
it sent no inline history) an empty history, labelled so the response can say so.

    stores = Stores.connect(url)          # url None: $REDIS_URL or the embedded server
    stores.users(["u1"], [False]); stores.instructions(["u1"])
"""

from __future__ import annotations

from dataclasses import dataclass, field

from oxygen.store.events import EventLog
from oxygen.store.instructions import InstructionRecord, InstructionStore, StoreUnavailable
from oxygen.store.users import UserStateStore

DEFAULT_MISSING = "default (missing)"
DEFAULT_UNREAD = "default (not read in this scenario)"
DEFAULT_DOWN = "default (store unavailable)"


@dataclass
class UserContext:
    """A user's state as serving sees it; `found` False means Redis has no record of this user."""

    history: list[int] = field(default_factory=list)
    behaviours: list[str] | None = None
    scenarios: list[str] | None = None
    profile: dict | None = None
    timestamps: list[int] | None = None  # unix seconds per history item (the purchase rule reads them)
    found: bool = True


class Stores:
    """Instruction and user-state stores on one Redis, with degraded-mode fallbacks."""

    def __init__(self, instr: InstructionStore, users: UserStateStore, events: EventLog | None = None):
        self.instr, self.user_store = instr, users
        self.events = events or EventLog(instr.client, instr.prefix)  # POST /v1/events appends here

    @classmethod
    def connect(cls, url: str | None = None, prefix: str = "oxygen", timeout_s: float = 0.3) -> "Stores":
        """Stores on `url` (default: $REDIS_URL or the embedded server): reads on the request path
        time out after `timeout_s` (then degrade); event writes, up to 1000 events in one script,
        get EventLog's own longer timeout."""
        instr = InstructionStore.connect(url, prefix, timeout_s)
        return cls(instr, UserStateStore(instr.client, prefix), EventLog.connect(url, prefix))

    def users(self, user_ids: list[str], inline: list[bool]) -> list[UserContext]:
        """User contexts; users with inline history skip the lookup (their context is empty)."""
        need = [u for u, given in zip(user_ids, inline) if not given]
        try:
            states = dict(zip(need, self.user_store.get_many(need))) if need else {}
        except StoreUnavailable:
            return [UserContext() for _ in user_ids]
        out = []
        for u, given in zip(user_ids, inline):
            s = None if given else states.get(u)
            out.append(UserContext() if given else
                       UserContext(s.history, s.behaviours, s.scenarios, s.profile, s.timestamps) if s else
                       UserContext(found=False))
        return out

    def instructions(self, user_ids: list[str]) -> list[tuple[InstructionRecord | None, str]]:
        """(record or None, label) per user: 'used', default (missing) or default (store unavailable)."""
        try:
            recs = self.instr.get_many(user_ids)
        except StoreUnavailable:
            return [(None, DEFAULT_DOWN)] * len(user_ids)
        return [(r, "used") if r is not None else (None, DEFAULT_MISSING) for r in recs]
