"""A near-line worker against a real (embedded) Redis, with a recording regenerate function:
exactly one regeneration and one write per user window, events during processing give the next
window, a dead worker's window is redone by another (one write), failures dead-letter after
max_tries, stale generations are not written, and an unreachable Redis ends a step, not the worker."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
import redis

from oxygen.config import NearlineConfig
from oxygen.instructions.nearline.regenerate import Outcome
from oxygen.instructions.nearline.worker import NearlineWorker
from oxygen.store.embedded import EmbeddedRedis
from oxygen.store.events import EventLog, UserEvent
from oxygen.store.instructions import InstructionRecord, InstructionStore, StoreUnavailable

_prefix = itertools.count()
CFG = NearlineConfig(window_s=0.3, lease_s=2.0, backoff_s=0.0, max_tries=2, reclaim_idle_s=0.5)


@pytest.fixture(scope="module")
def server():
    with EmbeddedRedis() as s:
        yield s


class Recording:
    """A regenerate function that writes a record per claim and remembers every claim."""

    def __init__(self, fail: bool = False, during=None):
        self.claims, self.fail, self.during = [], fail, during

    def __call__(self, claims):
        self.claims += claims
        if self.during:
            self.during(claims)
        if self.fail:
            return Outcome(failed={c.user_id: "backend down" for c in claims})
        return Outcome(records={c.user_id: InstructionRecord(c.user_id, f"for {c.user_id}", np.ones(4, np.float32),
                                                             asof=c.asof) for c in claims})


def setup(server, regen, name="w1", cfg=CFG):
    client = redis.Redis.from_url(server.url)
    log = EventLog(client, prefix=f"nl{next(_prefix)}", window_s=cfg.window_s)
    log.ensure_group()
    store = InstructionStore(client, log.prefix)
    return log, store, NearlineWorker(name, log, store, regen, cfg)


def run(worker, seconds: float) -> None:
    end = time.time() + seconds
    while time.time() < end:
        worker.step(block_ms=20)


def test_one_regeneration_and_one_write_per_window(server):
    regen = Recording()
    log, store, w = setup(server, regen)
    log.ingest([UserEvent("u1", "cart", item=1), UserEvent("u1", "search", query="mouse"),
                UserEvent("u1", "purchase", item=2), UserEvent("u2", "cart", item=3),
                UserEvent("u3", "click", item=4)])
    run(w, 1.0)
    assert sorted(c.user_id for c in regen.claims) == ["u1", "u2"]  # the click alone schedules nothing
    assert {c.user_id: len(c.ids) for c in regen.claims} == {"u1": 3, "u2": 1}
    assert w.stats.regenerations == 2 and w.stats.events == 5 and len(w.stats.latency_s) == 2
    rec = store.get_many(["u1"])[0]
    assert rec.text == "for u1" and rec.asof == max(c.asof for c in regen.claims if c.user_id == "u1")
    assert log.backlog()["pending"] == 0 and log.backlog()["open"] == 0


def test_an_event_during_processing_is_the_next_windows(server):
    log_box = {}

    def arrive(claims):  # a purchase lands while u1 is being regenerated (once)
        if len(regen.claims) == 1:
            log_box["log"].ingest([UserEvent("u1", "purchase", item=9)])

    regen = Recording(during=arrive)
    log, store, w = setup(server, regen)
    log_box["log"] = log
    log.ingest([UserEvent("u1", "cart", item=1)])
    run(w, 1.5)
    assert [len(c.ids) for c in regen.claims] == [1, 1] and w.stats.regenerations == 2
    assert regen.claims[1].asof > regen.claims[0].asof
    assert store.get_many(["u1"])[0].asof == regen.claims[1].asof and log.backlog()["pending"] == 0


def test_a_dead_workers_window_is_redone_once(server):
    regen = Recording()
    log, store, survivor = setup(server, regen, name="w2")
    log.ingest([UserEvent("u1", "cart", item=1), UserEvent("u2", "cart", item=2)])
    log.read("w1")                                    # w1 scheduled them ...
    time.sleep(CFG.window_s + 0.05)
    assert len(log.claim("w1", lease_s=0.5)) == 2     # ... claimed both, then died
    log.ingest([UserEvent("u3", "cart", item=3)])
    log.client.xreadgroup("nearline", "w1", {log.stream: ">"})  # and read u3's without scheduling it
    run(survivor, 2.5)
    assert sorted(c.user_id for c in regen.claims) == ["u1", "u2", "u3"]
    assert survivor.stats.regenerations == 3 and log.backlog()["pending"] == 0


def test_failures_are_retried_then_dead_lettered(server):
    regen = Recording(fail=True)
    log, store, w = setup(server, regen)
    log.ingest([UserEvent("u1", "cart", item=1)])
    run(w, 1.0)
    assert len(regen.claims) == CFG.max_tries and w.stats.dead_lettered == 1 and w.stats.failures == 2
    assert log.backlog()["dead"] == 1 and log.backlog()["pending"] == 0 and store.get_many(["u1"]) == [None]


def test_a_stale_generation_is_not_written(server):
    regen = Recording()
    log, store, w = setup(server, regen)
    store.put_versioned([InstructionRecord("u1", "fresher", np.zeros(4, np.float32), asof=time.time() + 3600)])
    log.ingest([UserEvent("u1", "cart", item=1)])
    run(w, 1.0)
    assert w.stats.stale == 1 and w.stats.regenerations == 0 and store.get_many(["u1"])[0].text == "fresher"
    assert log.backlog()["pending"] == 0  # acked all the same: the stored record is newer


def test_an_unreachable_redis_ends_the_step_not_the_worker():
    s = EmbeddedRedis().start()
    regen = Recording()
    log, store, w = setup(s, regen)
    log.ingest([UserEvent("u1", "cart", item=1)])
    s.stop()
    log.client = redis.Redis.from_url(s.url, socket_timeout=0.2, socket_connect_timeout=0.2)
    assert w.step(block_ms=10) == 0 and w.stats.store_errors == 1


def test_claims_interrupted_by_a_redis_outage_are_finished_after_it(tmp_path):
    s = EmbeddedRedis(aof=True, data_dir=str(tmp_path / "r")).start()
    regen = Recording()
    log, store, w = setup(s, regen)
    log.ingest([UserEvent("u1", "cart", item=1)])
    log.read("w1")
    time.sleep(CFG.window_s + 0.05)
    real_put = store.put_versioned

    def down_then_up(recs):  # Redis goes away between the generation and the write
        s.stop()
        s.start()
        store.put_versioned = real_put
        raise StoreUnavailable("down")

    store.put_versioned = down_then_up
    assert w.step(block_ms=10) == 0 and w.stats.store_errors == 1
    assert w.step(block_ms=10) == 1  # the held claim, finished without regenerating again
    assert len(regen.claims) == 1 and w.stats.regenerations == 1 and store.get_many(["u1"])[0].text == "for u1"
    assert log.backlog()["pending"] == 0 and log.backlog()["leased"] == 0
    s.stop()
