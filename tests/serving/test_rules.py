"""Per-request business rules in the serving core: the trigger item, an explicit exclude list and
recent purchases never come back; k items still do when the pool allows; the rules act inside the
trie constraint, so every answer stays in its scenario's pool."""

from __future__ import annotations

import time

import numpy as np
import pytest
import redis

from oxygen.model.bundle import Bundle
from oxygen.serving.core import RecommenderCore
from oxygen.serving.schemas import RecommendRequest
from oxygen.serving.stores import Stores
from oxygen.store.users import UserState, UserStateStore

DAY = 86400


def encode(texts):
    return np.full((len(texts), 384), 0.1, dtype=np.float32)


@pytest.fixture(scope="module")
def core(bundle_dir, redis_server):
    now = int(time.time())
    UserStateStore(redis.Redis.from_url(redis_server.url)).put(UserState(
        "carol", [70, 71, 72, 73], ["purchase", "click", "purchase", "purchase"], ["cart"] * 4,
        timestamps=[now - 40 * DAY, now - 2 * DAY, now - 2 * DAY, now - 3600]))
    return RecommenderCore(Bundle.load(bundle_dir), Stores.connect(redis_server.url), encode)


def ids(resp) -> list[int]:
    return [it.item_id for it in resp.items]


def unconstrained(core, req: RecommendRequest) -> list[int]:
    """What the model answers without the rules (trigger kept, nothing excluded)."""
    p = core.prepare([req])[0]
    p.exclude = []
    return core.decode([p])[0][0].tolist()


@pytest.mark.parametrize("scenario", ["channel", "cart", "checkout"])
def test_the_trigger_item_never_comes_back(core, scenario):
    pool = core.bundle.scenarios[scenario].pool
    for trigger in pool[:12]:
        req = RecommendRequest(scenario=scenario, user_id="alice", trigger_item=int(trigger), k=10)
        got = ids(core.recommend_batch([req])[0])
        assert trigger not in got and len(got) == len(set(got)) == 10 and set(got) <= set(pool)


def test_the_rule_changes_answers_that_held_the_trigger(core):
    """Without the rule the model does return some triggers (so the test above can fail)."""
    pool = core.bundle.scenarios["cart"].pool
    held = 0
    for trigger in pool:
        req = RecommendRequest(scenario="cart", user_id="alice", trigger_item=int(trigger), k=10)
        held += trigger in unconstrained(core, req)
    assert held > 0


def test_an_exclude_list_is_honoured_and_k_still_returned(core):
    pool = list(core.bundle.scenarios["cart"].pool)  # 60 items
    first = ids(core.recommend_batch([RecommendRequest(scenario="cart", user_id="alice", trigger_item=0, k=10)])[0])
    excl = first + pool[20:45] + [10_000]  # ids outside the catalogue are ignored
    got = ids(core.recommend_batch([RecommendRequest(scenario="cart", user_id="alice", trigger_item=0, k=10,
                                                     exclude_items=excl)])[0])
    assert len(got) == 10 and not set(got) & set(excl) and 0 not in got and set(got) <= set(pool)
    left = sorted(set(pool) - set(excl) - {0})
    all_but = ids(core.recommend_batch([RecommendRequest(scenario="cart", user_id="alice", trigger_item=0, k=10,
                                                         exclude_items=excl + left[3:])])[0])
    assert sorted(all_but) == left[:3]  # only three allowed items remain: exactly those come back


def test_recent_purchases_are_excluded_by_request_or_service_setting(core, bundle_dir, redis_server):
    req = dict(scenario="checkout", user_id="carol", trigger_item=119, k=59, beam=64)  # the whole pool (60..119)
    everything = set(ids(core.recommend_batch([RecommendRequest(**req)])[0]))
    assert {70, 71, 72, 73} <= everything
    week = set(ids(core.recommend_batch([RecommendRequest(**req, exclude_purchased_days=7)])[0]))
    assert everything - week == {72, 73}  # bought 2 days and 1 hour ago; 70 was 40 days ago, 71 a click
    then = int(time.time()) - 30 * DAY  # a replay at a logged time: 72 and 73 are in its future
    assert everything - set(ids(core.recommend_batch([RecommendRequest(**req, exclude_purchased_days=20,
                                                                       ts=then)])[0])) == {70}
    service = RecommenderCore(Bundle.load(bundle_dir), Stores.connect(redis_server.url), encode,
                              exclude_purchased_days=7)
    assert everything - set(ids(service.recommend_batch([RecommendRequest(**req)])[0])) == {72, 73}
    assert set(ids(service.recommend_batch([RecommendRequest(**req, exclude_purchased_days=0)])[0])) == everything
