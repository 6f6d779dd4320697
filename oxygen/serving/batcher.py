"""The request batcher of a recommender replica (and of the split layout's front): concurrent
callers' requests run together.

    batcher = Batcher(fn, max_batch_size=32, wait_s=0.01)   # fn: list[item] -> list[result]
    result = await batcher.submit(item)                      # from any coroutine on the replica's loop

One worker coroutine takes a batch only when a running one has finished (`max_in_flight`, 1 by
default), so requests that arrive while the model is busy all go into the next batch (up to
`max_batch_size`). Serve's `@serve.batch` forms its next batches while one is running and queues
them behind a semaphore; on a busy CPU that leaves batches of 1-2 requests each waiting a full
batch time (measured: docs/benchmarks.d/serving.md). From idle, the worker waits up to `wait_s`
after the first request for company, as `@serve.batch` does. A blocking `fn` runs in a worker
thread, so the event loop keeps accepting HTTP; an `async def fn` (the front forwarding a batch to
a model replica) runs on the loop. An exception in `fn` fails that batch's callers and nothing
else. No Ray here.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any, Awaitable, Callable, Generic, TypeVar, Union

Item = TypeVar("Item")
Result = TypeVar("Result")
BatchFn = Callable[[list[Item]], Union[list[Result], Awaitable[list[Result]]]]


class Batcher(Generic[Item, Result]):
    """Greedy dynamic batching over a batch function, at most `max_in_flight` batches at a time."""

    def __init__(self, fn: BatchFn, max_batch_size: int = 32, wait_s: float = 0.01, max_in_flight: int = 1):
        if max_batch_size < 1 or wait_s < 0 or max_in_flight < 1:
            raise ValueError(f"max_batch_size and max_in_flight must be >= 1 and wait_s >= 0, got "
                             f"{max_batch_size}, {max_in_flight}, {wait_s}")
        self.fn, self.max_batch_size, self.wait_s, self.max_in_flight = fn, max_batch_size, wait_s, max_in_flight
        self._queue: asyncio.Queue[tuple[Item, asyncio.Future]] | None = None
        self._slots: asyncio.Semaphore | None = None
        self._worker: asyncio.Task | None = None
        self._running: set[asyncio.Task] = set()
        self.batches = 0  # batches run so far (for tests and metrics)

    async def submit(self, item: Item) -> Result:
        """Queue one item; its result once its batch has run (or the batch's exception). Items
        submitted in one turn of the event loop (a gather) are all queued before the worker runs."""
        loop = asyncio.get_running_loop()
        if self._queue is None:  # created on the loop that first uses the batcher
            self._queue, self._slots = asyncio.Queue(), asyncio.Semaphore(self.max_in_flight)
            self._worker = loop.create_task(self._run())
        future: asyncio.Future = loop.create_future()
        self._queue.put_nowait((item, future))
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
        assert self._slots is not None
        while True:
            await self._slots.acquire()
            batch = [(item, f) for item, f in await self._take() if not f.cancelled()]
            if not batch:
                self._slots.release()
                continue
            task = asyncio.get_running_loop().create_task(self._run_batch(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run_batch(self, batch: list[tuple[Item, asyncio.Future]]) -> None:
        """Run one batch and hand each caller its result; frees the in-flight slot."""
        assert self._slots is not None
        try:
            items = [item for item, _ in batch]
            if inspect.iscoroutinefunction(self.fn):
                results: list[Any] = await self.fn(items)
            else:
                results = await asyncio.to_thread(self.fn, items)
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
        finally:
            self.batches += 1
            self._slots.release()
