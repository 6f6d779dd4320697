"""Reasoning-instruction records in Redis, keyed by user: the text the near-line LLM wrote, its
reasons and contributing branches (STP, query rewrite, intent), its embedding (float32 bytes),
and by what (backend, model version) and when it was written.

One hash per user at `{prefix}:instr:{user_id}`; `get_many` reads a whole batch of users in one
round trip (a pipeline of HMGETs), which is what serving does once per decoding batch. Connection
problems raise `StoreUnavailable` so callers can degrade (serving falls back to the default
embedding) instead of failing.

    store = InstructionStore.connect()                     # $REDIS_URL or the embedded server
    store.put(InstructionRecord("u1", "winter in Harbin: warm baby sleepwear", emb,
                                reasons=["cold-humid winter, an infant at home"], branches=["stp"]))
    recs = store.get_many(["u1", "u2"])                    # [InstructionRecord | None, ...]
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import numpy as np
import redis

from oxygen.store.embedded import redis_url


class StoreUnavailable(RuntimeError):
    """Redis could not be reached; the message names the URL."""


@dataclass
class InstructionRecord:
    """A user's current reasoning instruction. embedding: Float32[E]."""

    user_id: str
    text: str
    embedding: np.ndarray
    source: str = "unknown"  # the backend that wrote it (knowledge, hf, vllm)
    created_at: float = field(default_factory=time.time)
    reasons: list[str] = field(default_factory=list)
    branches: list[str] = field(default_factory=list)  # which branches contributed (stp, rewrite, intent)
    version: str = ""  # the backend's model version
    truncated: bool = False  # the prompt was cut to the LM's context (oldest behaviour first)


class InstructionStore:
    """Put and batch-get InstructionRecords in Redis."""

    FIELDS = ("text", "emb", "source", "ts", "meta")

    def __init__(self, client: redis.Redis, prefix: str = "oxygen", ttl_s: int | None = None):
        self.client, self.prefix, self.ttl_s = client, prefix, ttl_s

    @classmethod
    def connect(cls, url: str | None = None, prefix: str = "oxygen", timeout_s: float = 0.5
                ) -> "InstructionStore":
        """A store on `url` (default: $REDIS_URL or the embedded server)."""
        client = redis.Redis.from_url(url or redis_url(), socket_timeout=timeout_s,
                                      socket_connect_timeout=timeout_s)
        return cls(client, prefix)

    def key(self, user_id: str) -> str:
        return f"{self.prefix}:instr:{user_id}"

    def put(self, rec: InstructionRecord) -> None:
        """Write (replace) one user's record, with the store's TTL if set."""
        self.put_many([rec])

    def put_many(self, recs: list[InstructionRecord]) -> None:
        """Write many records in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for r in recs:
            emb = np.ascontiguousarray(r.embedding, dtype=np.float32)
            meta = json.dumps({"reasons": r.reasons, "branches": r.branches, "version": r.version,
                               "truncated": r.truncated})
            pipe.hset(self.key(r.user_id), mapping={"text": r.text, "emb": emb.tobytes(), "source": r.source,
                                                    "ts": repr(r.created_at), "meta": meta})
            if self.ttl_s:
                pipe.expire(self.key(r.user_id), self.ttl_s)
        self._run(pipe)

    def get_many(self, user_ids: list[str]) -> list[InstructionRecord | None]:
        """Records for `user_ids` (None where a user has none), in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for u in user_ids:
            pipe.hmget(self.key(u), self.FIELDS)
        rows = self._run(pipe)
        return [self._decode(u, r) for u, r in zip(user_ids, rows)]

    def delete(self, user_id: str) -> None:
        """Forget one user's record."""
        self._run(self.client.pipeline(transaction=False).delete(self.key(user_id)))

    def _run(self, pipe) -> list:
        try:
            return pipe.execute()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as e:
            raise StoreUnavailable(f"Redis unreachable ({e}); check REDIS_URL or start the server") from e

    @staticmethod
    def _decode(user_id: str, row: list) -> InstructionRecord | None:
        text, emb, source, ts, meta = row
        if text is None or emb is None:
            return None
        extra = json.loads(meta) if meta else {}  # records written before reasons existed have none
        return InstructionRecord(user_id, text.decode(), np.frombuffer(emb, dtype=np.float32).copy(),
                                 (source or b"unknown").decode(), float(ts or 0), **extra)
