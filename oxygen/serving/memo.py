"""A thread-safe LRU memo of a batch function over strings: the service's query embeddings and
query rewrites (search traffic repeats its head queries, so a hit skips the work).

    memo = LruMemo(fn, size=100_000)    # fn: list[str] -> sequence of values, one per key
    values = memo(keys)                  # missing keys computed in one fn call, outside the lock
    values = memo.peek(keys)             # the cached values, or None when any key is missing (no fn call)

The lock guards only the dict, so a caller whose keys are cached never waits for another caller's
`fn` call. Every key asked for becomes the most recently used; past `size` the least recently used go.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Generic, Sequence, TypeVar

V = TypeVar("V")


class LruMemo(Generic[V]):
    """`fn`'s values for the last `size` distinct keys."""

    def __init__(self, fn: Callable[[list[str]], Sequence[V]], size: int = 100_000):
        if size < 1:
            raise ValueError(f"an LruMemo needs size >= 1, got {size}")
        self.fn, self.size = fn, size
        self._values: OrderedDict[str, V] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, keys: list[str]) -> list[V]:
        """The values of `keys` (in order); the missing ones from one `fn` call on them, sorted."""
        with self._lock:
            have = {k: self._values[k] for k in set(keys) if k in self._values}
        new = sorted(set(keys) - have.keys())
        if new:
            have.update(zip(new, self.fn(new)))
        with self._lock:
            for k in dict.fromkeys(keys):
                self._values[k] = have[k]
                self._values.move_to_end(k)
            while len(self._values) > self.size:
                self._values.popitem(last=False)
        return [have[k] for k in keys]

    def peek(self, keys: list[str]) -> list[V] | None:
        """The cached values of `keys`, or None when any is missing; calls no `fn`, moves nothing."""
        with self._lock:
            if not all(k in self._values for k in keys):
                return None
            return [self._values[k] for k in keys]
