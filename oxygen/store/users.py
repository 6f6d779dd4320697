"""Per-user state in Redis for serving: recent history (item ids with behaviour and scenario) and
profile, so a request may name only the user. Read in one round trip per batch.

    users = UserStateStore.connect(url)     # or UserStateStore(client)
    users.put(UserState("u1", history=[3, 9], behaviours=["click", "purchase"], profile={...}))
    users.get_many(["u1", "u2"])   # [UserState | None, ...]
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import redis

from oxygen.store.embedded import redis_url
from oxygen.store.instructions import reach


@dataclass
class UserState:
    """What serving knows about a user: recent items (oldest first) with their behaviour, scenario
    and time, recent search queries ([ts, text], oldest first) and their profile fields."""

    user_id: str
    history: list[int] = field(default_factory=list)
    behaviours: list[str] | None = None
    scenarios: list[str] | None = None
    profile: dict | None = None
    timestamps: list[int] | None = None
    queries: list[list] | None = None

    @classmethod
    def from_json(cls, raw: bytes | str) -> "UserState":
        """Decode a stored state; empty lists written by Redis' Lua (cjson encodes them as {}) and
        fields this version does not know are tolerated."""
        d = json.loads(raw)
        known = {f for f in cls.__dataclass_fields__}
        d = {k: ([] if v == {} and k != "profile" else v) for k, v in d.items() if k in known}
        return cls(**d)


class UserStateStore:
    """Put and batch-get UserState records (JSON strings at `{prefix}:user:{id}`)."""

    def __init__(self, client: redis.Redis, prefix: str = "oxygen"):
        self.client, self.prefix = client, prefix

    @classmethod
    def connect(cls, url: str | None = None, prefix: str = "oxygen") -> "UserStateStore":
        """A store on `url` (default: $REDIS_URL or the embedded server)."""
        return cls(redis.Redis.from_url(url or redis_url()), prefix)

    def key(self, user_id: str) -> str:
        return f"{self.prefix}:user:{user_id}"

    def put(self, state: UserState) -> None:
        """Write (replace) one user's state."""
        self.put_many([state])

    def put_many(self, states: list[UserState]) -> None:
        """Write many user states in one round trip."""
        with reach():
            pipe = self.client.pipeline(transaction=False)
            for s in states:
                pipe.set(self.key(s.user_id), json.dumps(asdict(s)))
            pipe.execute()

    def get_many(self, user_ids: list[str]) -> list[UserState | None]:
        """States of `user_ids` (None for unknown users), in one MGET."""
        if not user_ids:
            return []
        with reach():
            raw = self.client.mget([self.key(u) for u in user_ids])
        return [None if r is None else UserState.from_json(r) for r in raw]
