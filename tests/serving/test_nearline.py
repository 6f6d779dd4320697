"""The near-line workers on real Ray with a real Redis, the knowledge teacher and the text encoder:
posted events become one instruction per user window; the supervisor scales the workers up under
a burst and back down to the minimum when idle."""

from __future__ import annotations

import time

import pytest
import ray
import redis

from oxygen.config import NearlineConfig
from oxygen.serving.nearline import NearlineArgs, start_nearline
from oxygen.store.embedded import EmbeddedRedis
from oxygen.store.events import EventLog, UserEvent
from oxygen.store.instructions import InstructionStore
from oxygen.store.users import UserState, UserStateStore
from tests.worlds import tiny_world


def wait_for(check, timeout_s: float, what: str):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("nearline")
    ds = tiny_world(d / "w", d / "s", users=40, seed=4)
    with EmbeddedRedis() as server:
        ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1"}})
        try:
            yield ds, server
        finally:
            ray.shutdown()


def test_events_regenerate_once_per_window_and_workers_follow_the_backlog(setup):
    ds, server = setup
    client = redis.Redis.from_url(server.url)
    cfg = NearlineConfig(window_s=1.0, lease_s=20, users_per_worker=5, min_workers=1, max_workers=3,
                         scale_down_after_s=1.0, backoff_s=0.2)
    sup = start_nearline(NearlineArgs(data=str(ds.root), redis_url=server.url, prefix="nl", config=cfg,
                                      tick_s=0.2, worker_cpus=0.5))
    rows = {r.user_id: r for split in ("train", "test") for r in ds.splits[split] if r.profile}
    users = sorted(rows)[:20]
    assert len(users) == 20
    UserStateStore(client, "nl").put_many([UserState(u, profile=rows[u].profile.model_dump()) for u in users])
    log = EventLog(client, "nl", window_s=cfg.window_s)
    ts = rows[users[0]].timestamp
    wait_for(lambda: ray.get(sup.status.remote())["workers"] >= 1, 120, "the first worker")
    log.ingest([UserEvent(u, t, item=rows[u].target, scenario="homepage", ts=ts + k)
                for u in users for k, t in enumerate(("cart", "purchase", "click"))])
    store = InstructionStore(client, "nl")
    wait_for(lambda: all(store.get_many(users)), 120, "every user's instruction")
    assert {r.source for r in store.get_many(users)} == {"knowledge"}
    history = ray.get(sup.status.remote())["history"]
    assert max(h["workers"] for h in history) == 3  # a burst of 20 users' windows wants 4: capped at 3
    wait_for(lambda: ray.get(sup.status.remote())["workers"] == 1, 60, "the scale-down to min_workers")
    stats = ray.get(sup.stop.remote())
    assert sum(s.get("regenerations", 0) for s in stats) == len(users)  # one per user window, across workers
    assert not any("error" in s for s in stats)
    assert EventLog(client, "nl").backlog()["pending"] == 0
