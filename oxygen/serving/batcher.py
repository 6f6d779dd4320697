"""The request batcher of a recommender replica: concurrent callers' requests decoded together.

    batcher = Batcher(fn, max_batch_size=32, wait_s=0.01)   # fn: list[item] -> list[result], blocking
    result = await batcher.submit(item)                      # from any coroutine on the replica's loop

One worker coroutine takes a batch only when the previous one has finished, so requests that
arrive while the model is busy all go into the next batch (up to `max_batch_size`). Serve's
`@serve.batch` forms its next batches while one is running and queues them behind a semaphore; on
a busy CPU that leaves batches of 1-2 requests each waiting a full batch time (measured:
docs/benchmarks.d/serving.md). From idle, the worker waits up to `wait_s` after the first request
for company, as `@serve.batch` does. `fn` runs in a worker thread, so the event loop keeps
accepting HTTP; an exception in `fn` fails that batch's callers and nothing else. No Ray here.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class Batcher(Generic[Item, Result]):
    """Greedy dynamic batching over a blocking batch function (one batch at a time)."""

    def __init__(self, fn: Callable[[list[Item]], list[Result]], max_batch_size: int = 32, wait_s: float = 0.01):
        if max_batch_size < 1 or wait_s < 0:
            raise ValueError(f"max_batch_size must be >= 1 and wait_s >= 0, got {max_batch_size}, {wait_s}")
        self.fn, self.max_batch_size, self.wait_s = fn, max_batch_size, wait_s
        self._queue: asyncio.Queue[tuple[Item, asyncio.Future]] | None = None
        self._worker: asyncio.Task | None = None
        self.batches = 0  # batches run so far (for tests and metrics)

    async def submit(self, item: Item) -> Result:
        """Queue one item; its result once its batch has run (or the batch's exception)."""
        if self._queue is None:  # created on the loop that first uses the batcher
            self._queue = asyncio.Queue()
            self._worker = asyncio.get_running_loop().create_task(self._run())
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        return await future

    async def _take(self) -> list[tuple[Item, asyncio.Future]]:
        """The next batch: what is queued (up to max), waiting up to wait_s for more from idle."""
        assert self._queue is not None
        batch = [await self._queue.get()]
        if self._queue.empty() and self.wait_s > 0:
            await asyncio.sleep(self.wait_s)
        while len(batch) < self.max_batch_size and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        return batch

    async def _run(self) -> None:
        while True:
            batch = [(item, f) for item, f in await self._take() if not f.cancelled()]
            if not batch:
                continue
            try:
                results: list[Any] = await asyncio.to_thread(self.fn, [item for item, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"the batch function returned {len(results)} results for {len(batch)} items")
            except Exception as e:  # the batch's callers get it; the worker goes on
                for _, f in batch:
                    if not f.done():
                        f.set_exception(e)
            else:
                for (_, f), r in zip(batch, results):
                    if not f.done():
                        f.set_result(r)
            self.batches += 1
