"""Instruction records round-trip through a real (embedded) Redis; an unreachable server is a
clear `StoreUnavailable`, never a hang."""

from __future__ import annotations

import numpy as np
import pytest

from oxygen.store.embedded import EmbeddedRedis
from oxygen.store.instructions import InstructionRecord, InstructionStore, StoreUnavailable


@pytest.fixture(scope="module")
def server():
    with EmbeddedRedis() as s:
        yield s


def test_put_get_many_round_trip(server):
    store = InstructionStore.connect(server.url, prefix="t1")
    e = np.arange(384, dtype=np.float32) / 384
    store.put_many([InstructionRecord("u1", "winter in Harbin: baby sleepwear", e, "knowledge"),
                    InstructionRecord("u3", "back to school", -e)])
    got = store.get_many(["u1", "u2", "u3"])
    assert got[1] is None
    assert got[0].text == "winter in Harbin: baby sleepwear" and got[0].source == "knowledge"
    np.testing.assert_array_equal(got[0].embedding, e)
    np.testing.assert_array_equal(got[2].embedding, -e)
    store.delete("u1")
    assert store.get_many(["u1"]) == [None]


def test_unreachable_server_raises_clearly():
    s = EmbeddedRedis()
    s.start()
    url = s.url
    s.stop()
    assert not s.running
    store = InstructionStore.connect(url, timeout_s=0.2)
    with pytest.raises(StoreUnavailable, match="Redis unreachable"):
        store.get_many(["u1"])


def test_user_state_round_trip(server):
    import redis

    from oxygen.store.users import UserState, UserStateStore
    users = UserStateStore(redis.Redis.from_url(server.url), prefix="t2")
    users.put_many([UserState("a", [1, 2], ["click", "cart"], ["search", "cart"], {"city": "Harbin"})])
    got = users.get_many(["a", "b"])
    assert got[1] is None and got[0].history == [1, 2] and got[0].profile == {"city": "Harbin"}


def test_reasons_branches_and_version_round_trip(server):
    store = InstructionStore.connect(server.url, prefix="t3")
    rec = InstructionRecord("u1", "winter in Harbin: baby sleepwear", np.ones(8, np.float32), "vllm", 123.5,
                            reasons=["baby sleepwear: cold-humid winter, infant at home"], branches=["stp", "intent"],
                            version="lm-abc123", truncated=True, open_needs=2,
                            open_categories=["Baby Sleepwear", "Heaters"])
    store.put(rec)
    store.put(InstructionRecord("u2", "more gel pens", np.ones(8, np.float32), open_needs=0))
    got, closed = store.get_many(["u1", "u2"])
    assert (got.reasons, got.branches, got.version, got.truncated, got.created_at, got.open_needs) == \
           (rec.reasons, rec.branches, "lm-abc123", True, 123.5, 2)
    assert got.gate and closed.open_needs == 0 and not closed.gate
    assert got.open_categories == ["Baby Sleepwear", "Heaters"] and closed.open_categories is None


def test_a_record_written_without_reasons_still_reads(server):
    import redis

    store = InstructionStore.connect(server.url, prefix="t4")
    redis.Redis.from_url(server.url).hset(store.key("old"), mapping={
        "text": "back to school", "emb": np.zeros(4, np.float32).tobytes(), "source": "knowledge", "ts": "1.0"})
    got = store.get_many(["old"])[0]
    assert got.text == "back to school" and got.reasons == [] and got.branches == [] and got.version == ""
    assert got.open_needs is None and not got.gate  # not judged: gated guidance leaves it alone
    assert got.open_categories is None  # and no need slots
