"""The near-line event log against a real (embedded) Redis: ingestion keeps the user state current,
one window -> one claim, events during processing open the next window, at-least-once with a dead
consumer (reclaim and lease reaping), idempotent re-scheduling, retries and the dead-letter stream,
and versioned instruction writes."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
import redis

from oxygen.store.embedded import EmbeddedRedis
from oxygen.store.events import GROUP, EventError, EventLog, UserEvent
from oxygen.store.instructions import InstructionRecord, InstructionStore
from oxygen.store.users import UserState, UserStateStore

_prefix = itertools.count()


@pytest.fixture(scope="module")
def server():
    with EmbeddedRedis() as s:
        yield s


@pytest.fixture
def log(server) -> EventLog:
    ev = EventLog(redis.Redis.from_url(server.url), prefix=f"ev{next(_prefix)}", window_s=5.0, max_history=4)
    ev.ensure_group()
    return ev


def later(log: EventLog) -> float:
    """A time after every window opened so far has ended."""
    return time.time() + log.window_s + 1


def test_ingest_updates_the_user_state_and_the_stream(log):
    log.ingest([UserEvent("u1", "click", item=3, scenario="homepage", ts=100),
                UserEvent("u1", "search", query="gaming mou", ts=110),
                UserEvent("u1", "cart", item=7, scenario="search", ts=120)])
    st = UserStateStore(log.client, log.prefix).get_many(["u1"])[0]
    assert st.history == [3, 7] and st.behaviours == ["click", "cart"] and st.scenarios == ["homepage", "search"]
    assert st.timestamps == [100, 120] and st.queries == [[110, "gaming mou"]]
    assert log.client.xlen(log.stream) == 3
    log.ingest([UserEvent("u1", "click", item=i, scenario="channel", ts=200 + i) for i in range(5)])
    st = UserStateStore(log.client, log.prefix).get_many(["u1"])[0]
    assert st.history == [1, 2, 3, 4] and len(st.behaviours) == len(st.timestamps) == 4  # capped at max_history


def test_ingest_aligns_a_state_written_without_behaviours(log):
    UserStateStore(log.client, log.prefix).put_many([UserState("u2", history=[5, 6], profile={"city": "Harbin"})])
    log.ingest([UserEvent("u2", "purchase", item=9, scenario="cart", ts=50)])
    st = UserStateStore(log.client, log.prefix).get_many(["u2"])[0]
    assert st.history == [5, 6, 9] and st.behaviours == ["click", "click", "purchase"]
    assert st.scenarios[-1] == "cart" and st.profile == {"city": "Harbin"}


@pytest.mark.parametrize("bad, field", [(UserEvent("u", "like", item=1), "type"),
                                        (UserEvent("u", "search"), "query"),
                                        (UserEvent("u", "cart"), "item"),
                                        (UserEvent("", "click", item=1), "user_id")])
def test_bad_events_are_refused_and_nothing_is_written(log, bad, field):
    with pytest.raises(EventError, match=field):
        log.ingest([UserEvent("ok", "click", item=1), bad])
    assert log.client.xlen(log.stream) == 0 and UserStateStore(log.client, log.prefix).get_many(["ok"]) == [None]


def test_one_window_one_claim_and_low_value_events_are_acked(log):
    log.ingest([UserEvent("u1", t, item=1, query="q" if t == "search" else None) for t in ("cart", "search", "purchase")]
               + [UserEvent("u2", "click", item=2)])
    got = log.read("w1")
    assert len(got) == 4 and all(isinstance(e, UserEvent) for _, e in got)
    assert log.claim("w1") == []  # the window has not ended
    claims = log.claim("w1", now=later(log))
    assert [c.user_id for c in claims] == ["u1"] and len(claims[0].ids) == 3
    assert log.backlog()["pending"] == 3  # the click was acked at once; the window's events wait for the write
    assert log.complete("w1", claims[0])
    assert log.backlog() == {"unread": 0, "pending": 0, "due": 0, "open": 0, "leased": 0, "dead": 0}
    (_, user, ids, outcome), = log.audit()
    assert user == "u1" and ids == claims[0].ids and outcome == "written"


def test_an_event_during_processing_opens_the_next_window(log):
    log.ingest([UserEvent("u1", "cart", item=1)])
    log.read("w1")
    first = log.claim("w1", now=later(log))[0]
    log.ingest([UserEvent("u1", "purchase", item=2)])  # arrives while u1 is being regenerated
    log.read("w1")
    assert log.claim("w2", now=later(log)) == []  # u1 is leased: not taken twice at once
    assert log.complete("w1", first)
    second = log.claim("w2", now=later(log))
    assert len(second) == 1 and set(second[0].ids).isdisjoint(first.ids) and len(second[0].ids) == 1
    assert log.backlog()["pending"] == 1
    assert log.complete("w2", second[0]) and log.backlog()["pending"] == 0


def test_a_dead_consumers_unscheduled_events_are_reclaimed_once(log):
    log.ingest([UserEvent("u1", "cart", item=1), UserEvent("u1", "purchase", item=2)])
    log.client.xreadgroup(GROUP, "dead", {log.stream: ">"}, count=10)  # read, then died before scheduling
    assert log.claim("w2", now=later(log)) == []
    assert len(log.reclaim("w2", idle_s=0)) == 2
    assert len(log.reclaim("w2", idle_s=0)) == 2  # reclaiming again schedules nothing twice
    claims = log.claim("w2", now=later(log))
    assert len(claims) == 1 and len(claims[0].ids) == 2
    assert log.complete("w2", claims[0]) and log.backlog()["pending"] == 0


def test_a_dead_workers_lease_is_reaped_and_the_window_redone(log):
    log.ingest([UserEvent("u1", "cart", item=1)])
    log.read("w1")
    t = later(log)
    claim = log.claim("w1", lease_s=10, now=t)[0]  # w1 dies holding it
    assert log.reap(now=t + 5) == 0 and log.claim("w2", now=t + 5) == []
    assert log.reap(now=t + 11) == 1
    again = log.claim("w2", now=t + 11)
    assert again == [claim]
    assert not log.complete("w1", claim)  # the dead worker's late ack is refused: w2 owns it
    assert log.complete("w2", again[0]) and log.backlog()["pending"] == 0


def test_failures_retry_then_dead_letter(log):
    log.ingest([UserEvent("u1", "cart", item=1), UserEvent("u1", "purchase", item=2)])
    log.read("w1")
    t = later(log)
    for attempt in range(3):
        claims = log.claim("w1", now=t + 10 * attempt)
        assert len(claims) == 1 and len(claims[0].ids) == 2
        dead = log.fail("w1", claims[0], "backend timed out", max_tries=3, backoff_s=0)
        assert dead == (attempt == 2)
    assert log.claim("w1", now=t + 100) == []
    letters = log.client.xrange(log.dead)
    assert len(letters) == 2 and all(f[b"error"] == b"backend timed out" and f[b"tries"] == b"3" for _, f in letters)
    assert UserEvent.from_json(letters[0][1][b"event"].decode()).user_id == "u1"
    assert log.backlog()["pending"] == 0 and log.backlog()["dead"] == 2
    assert [(a[1], len(a[2]), a[3]) for a in log.audit()] == [("u1", 2, "dead")]


def test_a_malformed_stream_entry_goes_to_the_dead_letters(log):
    log.client.xadd(log.stream, {"event": "{not json"})
    log.client.xadd(log.stream, {"event": '{"user_id": "u1", "type": "teleport", "item": 1}'})
    got = log.read("w1")
    assert all(isinstance(e, EventError) for _, e in got)
    assert log.backlog()["dead"] == 2 and log.backlog()["pending"] == 0


def test_versioned_writes_never_go_back_in_time(server):
    store = InstructionStore.connect(server.url, prefix=f"v{next(_prefix)}")
    e = np.ones(4, np.float32)
    assert store.put_versioned([InstructionRecord("u1", "near-line", e, asof=200.0)]) == [True]
    assert store.put_versioned([InstructionRecord("u1", "daily refresh", e, asof=100.0),
                                InstructionRecord("u2", "daily refresh", e, asof=100.0)]) == [False, True]
    assert store.put_versioned([InstructionRecord("u1", "near-line again", e, asof=200.0)]) == [False]
    got = store.get_many(["u1", "u2"])
    assert got[0].text == "near-line" and got[0].asof == 200.0 and got[1].text == "daily refresh"
    assert store.put_versioned([InstructionRecord("u1", "newer", e, asof=300.0)]) == [True]
    assert store.get_many(["u1"])[0].text == "newer"
