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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import redis

from oxygen.store.embedded import redis_url


class StoreUnavailable(RuntimeError):
    """Redis could not be reached; the message names the URL."""


@contextmanager
def reach() -> Iterator[None]:
    """Turn a lost connection or a timeout inside the block into `StoreUnavailable` (what every
    store call raises, so callers can degrade or retry instead of failing)."""
    try:
        yield
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as e:
        raise StoreUnavailable(f"Redis unreachable ({e}); check REDIS_URL or start the server") from e


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
    asof: float = 0.0  # unix s of the newest data it reflects: versioned writes never go back in time
    open_needs: int | None = None  # stated needs not yet in the user's history (gated guidance); None: not judged
    open_categories: list[str] | None = None  # their categories, strongest first (need slots); None: not judged

    @property
    def gate(self) -> bool:
        """Whether gated instruction guidance acts on this record: it states an open need."""
        return bool(self.open_needs)


class InstructionStore:
    """Put and batch-get InstructionRecords in Redis."""

    FIELDS = ("text", "emb", "source", "ts", "meta", "asof")
    _VERSIONED = """
local out = {}
for i, key in ipairs(KEYS) do
  local a = (i - 1) * 7
  local cur = redis.call('HGET', key, 'asof')
  if cur and tonumber(cur) >= tonumber(ARGV[a + 1]) then
    table.insert(out, 0)
  else
    redis.call('HSET', key, 'asof', ARGV[a + 1], 'text', ARGV[a + 2], 'emb', ARGV[a + 3], 'source', ARGV[a + 4],
               'ts', ARGV[a + 5], 'meta', ARGV[a + 6])
    if tonumber(ARGV[a + 7]) > 0 then redis.call('EXPIRE', key, ARGV[a + 7]) end
    table.insert(out, 1)
  end
end
return out
"""

    def __init__(self, client: redis.Redis, prefix: str = "oxygen", ttl_s: int | None = None):
        self.client, self.prefix, self.ttl_s = client, prefix, ttl_s
        self._versioned = client.register_script(self._VERSIONED)

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
            pipe.hset(self.key(r.user_id), mapping=dict(zip(("asof", *self.FIELDS[:5]), self._fields(r))))
            if self.ttl_s:
                pipe.expire(self.key(r.user_id), self.ttl_s)
        self._run(pipe)

    def put_versioned(self, recs: list[InstructionRecord]) -> list[bool]:
        """Write each record only when it is newer (`asof`) than the stored one, atomically, in one
        round trip: an older generation never overwrites a newer one and writing the same
        generation twice is a no-op. -> per record, whether it was written."""
        if not recs:
            return []
        args = [x for r in recs for x in (*self._fields(r), int(self.ttl_s or 0))]
        with reach():
            return [bool(x) for x in self._versioned(keys=[self.key(r.user_id) for r in recs], args=args)]

    @staticmethod
    def _fields(r: InstructionRecord) -> tuple:
        """(asof, text, emb bytes, source, created_at, meta JSON) as stored."""
        emb = np.ascontiguousarray(r.embedding, dtype=np.float32)
        meta = json.dumps({"reasons": r.reasons, "branches": r.branches, "version": r.version,
                           "truncated": r.truncated, "open_needs": r.open_needs,
                           "open_categories": r.open_categories})
        return repr(float(r.asof)), r.text, emb.tobytes(), r.source, repr(r.created_at), meta

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
        with reach():
            return pipe.execute()

    @staticmethod
    def _decode(user_id: str, row: list) -> InstructionRecord | None:
        text, emb, source, ts, meta, asof = row
        if text is None or emb is None:
            return None
        extra = json.loads(meta) if meta else {}  # records written before reasons existed have none
        return InstructionRecord(user_id, text.decode(), np.frombuffer(emb, dtype=np.float32).copy(),
                                 (source or b"unknown").decode(), float(ts or 0), **extra, asof=float(asof or 0))
