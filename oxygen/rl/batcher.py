"""Micro-batching of concurrent reward calls (no Ray: the reward actor wraps it, tests run it in
an asyncio loop).

Callers `await batcher.submit(rows, groups)`; calls that arrive within `max_wait_s` of the first
pending one (or until `max_batch` requests are pending) are scored by ONE call of the mapping:
their rows concatenated, their groups padded with -1 to the widest G, the results split back and
cut to each caller's own G. A failing batch fails each of its callers with the same error.

    batcher = MicroBatcher(mapping, max_batch=256, max_wait_s=0.005)
    rewards = await batcher.submit(rows, groups)    # Rewards(total Float[b, g], parts {...})
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from oxygen.data.schema import Row
from oxygen.rl.rewards import Rewards, check_groups


@dataclass
class BatchStats:
    """What the batcher has done: calls, batches, requests, items and seconds spent scoring."""

    calls: int = 0
    batches: int = 0
    requests: int = 0
    items: int = 0
    seconds: float = 0.0
    sizes: list[int] = field(default_factory=list)  # requests per batch

    def as_dict(self) -> dict[str, float]:
        """Counters and the scoring throughput (items/s while scoring)."""
        return {"calls": self.calls, "batches": self.batches, "requests": self.requests, "items": self.items,
                "seconds": round(self.seconds, 4), "items_per_s": self.items / self.seconds if self.seconds else 0.0,
                "mean_batch": self.requests / self.batches if self.batches else 0.0}


@dataclass
class _Pending:
    rows: Sequence[Row]
    groups: np.ndarray
    future: asyncio.Future


class MicroBatcher:
    """Coalesces concurrent `submit` calls into one call of `score(rows, groups) -> Rewards`."""

    def __init__(self, score: Callable[[Sequence[Row], np.ndarray], Rewards], max_batch: int,
                 max_wait_s: float) -> None:
        if max_batch < 1 or max_wait_s < 0:
            raise ValueError(f"max_batch must be >= 1 and max_wait_s >= 0, got {max_batch}, {max_wait_s}")
        self.score, self.max_batch, self.max_wait_s = score, max_batch, max_wait_s
        self.pending: list[_Pending] = []
        self.timer: asyncio.TimerHandle | None = None
        self.stats = BatchStats()

    async def submit(self, rows: Sequence[Row], groups: np.ndarray) -> Rewards:
        """The rewards of `rows` x `groups` (Int[b, g]), scored together with concurrent calls."""
        g = check_groups(rows, groups)
        loop = asyncio.get_running_loop()
        self.pending.append(_Pending(list(rows), g, loop.create_future()))
        self.stats.calls += 1
        mine = self.pending[-1].future
        if sum(len(p.rows) for p in self.pending) >= self.max_batch:
            self.flush()
        elif self.timer is None:
            self.timer = loop.call_later(self.max_wait_s, self.flush)
        return await mine

    def flush(self) -> None:
        """Score every pending call now, in one batch, and resolve their futures."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        batch, self.pending = self.pending, []
        if not batch:
            return
        width = max(p.groups.shape[1] for p in batch)
        rows = [r for p in batch for r in p.rows]
        groups = np.concatenate([np.pad(p.groups, ((0, 0), (0, width - p.groups.shape[1])), constant_values=-1)
                                 for p in batch]) if rows else np.zeros((0, width), dtype=np.int64)
        t0 = time.perf_counter()
        try:
            out = self.score(rows, groups)
        except Exception as e:  # every caller of the batch gets the error; nothing is lost silently
            for p in batch:
                p.future.set_exception(e)
            return
        self._record(len(rows), int((groups >= 0).sum()), time.perf_counter() - t0)
        start = 0
        for p in batch:
            b, g = p.groups.shape
            cut = slice(start, start + b)
            p.future.set_result(Rewards(out.total[cut, :g], {k: v[cut, :g] for k, v in out.parts.items()}))
            start += b

    def _record(self, requests: int, items: int, seconds: float) -> None:
        s = self.stats
        s.batches, s.requests, s.items, s.seconds = s.batches + 1, s.requests + requests, s.items + items, s.seconds + seconds
        s.sizes.append(requests)
