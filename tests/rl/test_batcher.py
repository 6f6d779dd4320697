"""MicroBatcher: concurrent calls coalesce into one scoring pass whose split results equal each
call scored alone (the slow reference), groups of different widths, errors reach every caller."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from oxygen.data.schema import Row
from oxygen.rl.batcher import MicroBatcher
from oxygen.rl.rewards import Rewards


def score(rows, groups):
    """Depends on the row and the item only (so batching must not change a value); -1 scores 0."""
    user = np.array([int(r.user_id[1:]) for r in rows], dtype=float)[:, None]
    total = np.where(groups >= 0, user * 100 + groups, 0.0)
    return Rewards(total, {"ranking": total / 2})


def _call(u: int, width: int) -> tuple[list[Row], np.ndarray]:
    rows = [Row(user_id=f"u{u}", history=[], target=0, scenario="search")] * 2
    return rows, np.arange(width)[None].repeat(2, 0) + u


def test_concurrent_calls_share_one_batch_and_split_back():
    calls = []

    def counting(rows, groups):
        calls.append(groups.shape)
        return score(rows, groups)

    b = MicroBatcher(counting, max_batch=100, max_wait_s=0.05)

    async def main():
        return await asyncio.gather(*(b.submit(*_call(u, 2 + u)) for u in range(5)))
    outs = asyncio.run(main())
    assert calls == [(10, 6)]  # five calls of two requests, padded to the widest group
    for u, out in enumerate(outs):
        ref = score(*_call(u, 2 + u))
        np.testing.assert_array_equal(out.total, ref.total)
        np.testing.assert_array_equal(out.parts["ranking"], ref.parts["ranking"])
    s = b.stats.as_dict()
    assert s["calls"] == 5 and s["batches"] == 1 and s["requests"] == 10 and s["items"] == sum(2 * (2 + u) for u in range(5))


def test_a_full_batch_flushes_without_waiting():
    sizes = []
    b = MicroBatcher(lambda r, g: (sizes.append(len(r)), score(r, g))[1], max_batch=4, max_wait_s=60.0)

    async def main():
        return await asyncio.wait_for(asyncio.gather(*(b.submit(*_call(u, 3)) for u in range(4))), timeout=10)
    asyncio.run(main())
    assert sizes == [4, 4]


def test_errors_reach_every_caller_and_bad_groups_are_refused():
    def broken(rows, groups):
        raise RuntimeError("ranker exploded")
    b = MicroBatcher(broken, max_batch=100, max_wait_s=0.01)

    async def main():
        return await asyncio.gather(*(b.submit(*_call(u, 2)) for u in range(3)), return_exceptions=True)
    outs = asyncio.run(main())
    assert all(isinstance(o, RuntimeError) and "exploded" in str(o) for o in outs)
    with pytest.raises(ValueError, match="groups must be"):
        asyncio.run(b.submit(*_call(0, 2)[:1], np.zeros(3)))
    with pytest.raises(ValueError, match="max_batch"):
        MicroBatcher(score, 0, 0.1)
