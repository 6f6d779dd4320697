"""The daily refresh on real Ray Data and Redis: only users active in the day before the date, state
strictly before the cutoff, one STP generation per distinct key, a fresher near-line record kept,
and a rerun (after a kill) skipping the users already written."""

from __future__ import annotations

import numpy as np
import pytest
import ray

from oxygen.data.io import load_dataset
from oxygen.instructions.nearline.refresh import RefreshSettings, active_states, cutoff_of, refresh
from oxygen.instructions.weather import WeatherFeed
from oxygen.store.embedded import EmbeddedRedis
from oxygen.store.instructions import InstructionRecord, InstructionStore
from oxygen.store.refresh import RefreshLedger
from tests.worlds import tiny_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("refresh")
    tiny_world(d / "w", d / "s", users=60, seed=6)
    ds = load_dataset(d / "w")
    rows = [r for s in ("train", "valid", "test") for r in ds.splits[s]]
    last_day = max(r.timestamp for r in rows) // 86400
    date = str(np.datetime64(int(last_day - 2), "D"))  # a cutoff with rows on both sides
    return ds, rows, date


def test_active_users_and_nothing_at_or_after_the_cutoff(world):
    ds, rows, date = world
    t = cutoff_of(date)
    states = active_states(rows, {it.item_id: it for it in ds.items}, None, date)
    active = {r.user_id for r in rows if t - 86400 <= r.timestamp < t}
    assert {s.user_id for s in states} == active and active
    for s in states:
        assert s.at == t and s.date == date
        assert all(e.ts < t for e in s.events) and all(ts < t for ts, _ in s.queries)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        cutoff_of("20/11/2025")


def test_refresh_writes_keeps_fresher_records_and_resumes(world):
    ds, rows, date = world
    items, feed = {it.item_id: it for it in ds.items}, WeatherFeed.load(ds.root)
    with EmbeddedRedis() as server:
        ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False)
        try:
            settings = RefreshSettings(redis_url=server.url, prefix="rf", batch_size=16)
            users = sorted(s.user_id for s in active_states(rows, items, feed, date))
            store = InstructionStore.connect(server.url, "rf")
            fresh = InstructionRecord(users[0], "near-line, newer", np.ones(384, np.float32),
                                      asof=cutoff_of(date) + 60)
            store.put_versioned([fresh])
            RefreshLedger(store.client, "rf", date).mark(users[1:3])  # a killed run wrote these two
            out = refresh(rows, items, feed, date, settings)
            assert out["active_users"] == len(users) and out["resumed_skipped"] == 2
            assert out["users"] == len(users) - 2 and out["usable"] == out["users"] and out["failed"] == 0
            assert out["stale"] == 1 and out["written"] == out["users"] - 1
            assert out["stp_keys"] <= out["users"]
            assert 0 < out["busy_seconds"] <= out["seconds"] and out["users_per_busy_s"] >= out["users_per_s"]
            recs = store.get_many(users)
            assert recs[0].text == "near-line, newer"
            assert recs[1] is None and recs[2] is None  # marked done by the "killed" run, not rewritten
            assert all(r.asof == cutoff_of(date) and r.source == "knowledge" for r in recs[3:])
            again = refresh(rows, items, feed, date, settings)
            assert again["resumed_skipped"] == len(users) and again["users"] == 0
        finally:
            ray.shutdown()


def test_the_generation_actor_counts_open_needs_with_the_catalogues_words(world):
    """`_Generate` (one Ray Data actor's work, called here in-process) writes open_needs on records
    with STP needs: a December state of Shanghai young parents."""
    import pickle

    from oxygen.instructions.generator import STPCache
    from oxygen.instructions.nearline.refresh import _Generate
    from oxygen.instructions.pipeline import catalogue_vocabulary
    from tests.instructions.helpers import state

    ds, _, _ = world
    gen = _Generate(RefreshSettings(redis_url="redis://unused"), STPCache(), 1.0, catalogue_vocabulary(ds.items))
    out = gen({"state": np.array([pickle.dumps(state([]))], dtype=object)})
    rec = pickle.loads(out["record"][0])
    assert "stp" in rec.branches and isinstance(rec.open_needs, int) and rec.open_needs > 0
