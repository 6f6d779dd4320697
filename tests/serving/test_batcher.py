"""The replica's batcher (oxygen/serving/batcher.py): results go back to their callers, requests
that arrive while a batch runs all join the next one (up to max_batch_size), a failing batch fails
only its own callers, and bad settings are refused."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from oxygen.serving.batcher import Batcher


def run(coro):
    return asyncio.run(coro)


def test_each_caller_gets_its_own_result():
    seen: list[list[int]] = []

    def fn(xs: list[int]) -> list[int]:
        seen.append(list(xs))
        return [x * 10 for x in xs]

    async def main():
        b = Batcher(fn, max_batch_size=8, wait_s=0.01)
        return await asyncio.gather(*(b.submit(i) for i in range(5))), b

    out, b = run(main())
    assert out == [0, 10, 20, 30, 40]
    assert sorted(x for batch in seen for x in batch) == list(range(5)) and b.batches == len(seen)


def test_requests_arriving_during_a_batch_all_join_the_next():
    """The first batch blocks until 10 more requests are queued; they form one batch (greedy),
    not ten pre-formed batches of one as a batcher that forms batches while one runs would."""
    gate, sizes = threading.Event(), []

    def fn(xs: list[int]) -> list[int]:
        sizes.append(len(xs))
        if len(sizes) == 1:
            gate.wait(5)
        return xs

    async def main():
        b = Batcher(fn, max_batch_size=32, wait_s=0.0)
        first = asyncio.ensure_future(b.submit(-1))
        await asyncio.sleep(0.05)  # the first batch (one request) is running
        later = [asyncio.ensure_future(b.submit(i)) for i in range(10)]
        for _ in range(10):
            await asyncio.sleep(0.01)  # arrivals spread over the first batch's run
        gate.set()
        return await first, await asyncio.gather(*later)

    first, later = run(main())
    assert first == -1 and later == list(range(10))
    assert sizes == [1, 10]


def test_max_batch_size_caps_a_batch():
    sizes: list[int] = []

    def fn(xs):
        sizes.append(len(xs))
        time.sleep(0.01)
        return xs

    async def main():
        b = Batcher(fn, max_batch_size=4, wait_s=0.01)
        return await asyncio.gather(*(b.submit(i) for i in range(10)))

    assert run(main()) == list(range(10))
    assert max(sizes) <= 4 and sum(sizes) == 10


def test_a_failing_batch_fails_only_its_callers():
    def fn(xs):
        if "bad" in xs:
            raise ValueError("boom")
        return xs

    async def main():
        b = Batcher(fn, max_batch_size=8, wait_s=0.0)
        with pytest.raises(ValueError, match="boom"):
            await b.submit("bad")
        return await b.submit("good")  # the worker goes on

    assert run(main()) == "good"


def test_a_wrong_result_count_is_an_error_not_a_hang():
    async def main():
        b = Batcher(lambda xs: xs[:-1], max_batch_size=8, wait_s=0.0)
        with pytest.raises(RuntimeError, match="returned 0 results for 1 items"):
            await asyncio.wait_for(b.submit(1), 5)

    run(main())


@pytest.mark.parametrize("size, wait, in_flight", [(0, 0.01, 1), (4, -1.0, 1), (4, 0.01, 0)])
def test_bad_settings_are_refused(size, wait, in_flight):
    with pytest.raises(ValueError, match="max_batch_size and max_in_flight must be >= 1"):
        Batcher(lambda xs: xs, max_batch_size=size, wait_s=wait, max_in_flight=in_flight)


def test_items_submitted_together_form_one_batch_in_order():
    """Items submitted in one turn of the loop (a split front's batch, gathered) reach the function
    as one batch, results in order, even with no wait from idle."""
    sizes: list[int] = []

    def fn(xs: list[int]) -> list[int]:
        sizes.append(len(xs))
        return [-x for x in xs]

    async def main():
        b = Batcher(fn, max_batch_size=32, wait_s=0.0)
        return await asyncio.gather(*(b.submit(x) for x in [3, 1, 2, 7]))

    assert run(main()) == [-3, -1, -2, -7] and sizes == [4]


def test_an_async_function_runs_on_the_loop_and_batches_overlap_up_to_max_in_flight():
    """An `async def` batch function is awaited on the event loop (no thread); with max_in_flight 2,
    two batches run at once and never three."""
    running, peak, threads = 0, 0, set()

    async def fn(xs: list[int]) -> list[int]:
        nonlocal running, peak
        threads.add(threading.get_ident())
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1
        return [x + 1 for x in xs]

    async def main():
        b = Batcher(fn, max_batch_size=1, wait_s=0.0, max_in_flight=2)
        return await asyncio.gather(*(b.submit(i) for i in range(6))), b

    out, b = run(main())
    assert out == [1, 2, 3, 4, 5, 6] and b.batches == 6
    assert peak == 2 and threads == {threading.get_ident()}


def test_one_in_flight_never_overlaps_batches():
    running, peak = 0, 0

    async def fn(xs):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return xs

    async def main():
        b = Batcher(fn, max_batch_size=2, wait_s=0.0)
        return await asyncio.gather(*(b.submit(i) for i in range(7)))

    assert run(main()) == list(range(7)) and peak == 1
