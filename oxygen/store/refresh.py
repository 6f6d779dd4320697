"""Which users a daily refresh has already written, per date: what makes a killed refresh resumable.

One Redis set per date at `{prefix}:refresh:{date}` (expires after `ttl_s`, default 3 days).

    ledger = RefreshLedger(client, "oxygen", "2025-11-20")
    ledger.done(["u1", "u2"])   # [False, True]
    ledger.mark(["u1"])
"""

from __future__ import annotations

from collections.abc import Sequence

import redis

from oxygen.store.instructions import reach


class RefreshLedger:
    """The set of users written by the refresh of one date."""

    def __init__(self, client: redis.Redis, prefix: str, date: str, ttl_s: int = 3 * 86400) -> None:
        self.client, self.key, self.ttl_s = client, f"{prefix}:refresh:{date}", ttl_s

    def done(self, user_ids: Sequence[str]) -> list[bool]:
        """Per user, whether this date's refresh already wrote them (one round trip)."""
        if not user_ids:
            return []
        with reach():
            return [bool(x) for x in self.client.smismember(self.key, list(user_ids))]

    def mark(self, user_ids: Sequence[str]) -> None:
        """Record users as written (idempotent)."""
        if not user_ids:
            return
        with reach():
            pipe = self.client.pipeline(transaction=True)
            pipe.sadd(self.key, *user_ids).expire(self.key, self.ttl_s)
            pipe.execute()

    def count(self) -> int:
        """How many users this date's refresh has written."""
        return int(self.client.scard(self.key))
