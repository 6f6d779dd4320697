"""User states round-trip through a real (embedded) Redis: every field survives, unknown users are
None in their place, a batch is one MGET and prefixes keep stores apart; an unreachable or frozen
server is a clear `StoreUnavailable`, never a hang."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest
import redis

from oxygen.store.embedded import EmbeddedRedis
from oxygen.store.instructions import InstructionRecord, InstructionStore, StoreUnavailable
from oxygen.store.users import UserState, UserStateStore

ALICE = UserState("alice", [3, 9, 0], ["click", "cart", "purchase"], ["search", "homepage", "cart"],
                  {"city": "哈尔滨", "age": 31, "tags": ["baby", "winter"], "vip": True})
BOB = UserState("bob")                                   # defaults: empty history, no behaviours/profile


@pytest.fixture(scope="module")
def server():
    with EmbeddedRedis() as s:
        yield s


def closed_url() -> str:
    """The URL of a server that was just stopped: its port refuses connections."""
    s = EmbeddedRedis().start()
    s.stop()
    return s.url


def quick(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=0.2, socket_connect_timeout=0.2)


def test_round_trip_preserves_every_field(server):
    users = UserStateStore.connect(server.url, prefix="rt")
    users.put_many([ALICE, BOB])
    got = users.get_many(["alice", "bob"])
    assert got == [ALICE, BOB]
    assert got[0] is not ALICE and got[0].history == [3, 9, 0] and got[0].profile["city"] == "哈尔滨"
    assert got[1].history == [] and got[1].behaviours is None and got[1].scenarios is None and got[1].profile is None


def test_unknown_users_are_none_in_place(server):
    users = UserStateStore.connect(server.url, prefix="unknown")
    users.put_many([ALICE, BOB])
    assert users.get_many(["x", "alice", "y", "bob", "alice"]) == [None, ALICE, None, BOB, ALICE]
    assert users.get_many(["nobody"]) == [None]


def test_put_replaces_the_whole_state(server):
    users = UserStateStore.connect(server.url, prefix="replace")
    users.put(ALICE)                                     # put: a batch of one
    users.put_many([UserState("alice", [7])])
    assert users.get_many(["alice"]) == [UserState("alice", [7])]   # not merged with the old record


def test_empty_batches_touch_no_server():
    users = UserStateStore(quick(closed_url()))
    assert users.get_many([]) == []                      # no round trip, so no StoreUnavailable
    users.put_many([])


def test_records_are_json_at_prefixed_keys(server):
    client = redis.Redis.from_url(server.url)
    UserStateStore.connect(server.url).put_many([ALICE])  # default prefix "oxygen"
    assert json.loads(client.get("oxygen:user:alice"))["history"] == [3, 9, 0]
    InstructionStore(client).put(InstructionRecord("alice", "winter", np.ones(4, np.float32)))
    assert UserStateStore(client).get_many(["alice"]) == [ALICE]   # instruction hash does not collide
    assert InstructionStore(client).get_many(["alice"])[0].text == "winter"


def test_prefixes_do_not_see_each_other(server):
    a = UserStateStore.connect(server.url, prefix="a")
    b = UserStateStore.connect(server.url, prefix="b")
    a.put_many([ALICE, BOB])
    b.put_many([UserState("alice", [1])])
    assert a.get_many(["alice", "bob"]) == [ALICE, BOB]
    assert b.get_many(["alice", "bob"]) == [UserState("alice", [1]), None]
    assert UserStateStore.connect(server.url, prefix="c").get_many(["alice"]) == [None]


def test_connect_defaults_to_redis_url_env(server, monkeypatch):
    monkeypatch.setenv("REDIS_URL", server.url)
    UserStateStore.connect(prefix="env").put_many([BOB])
    assert UserStateStore.connect(server.url, prefix="env").get_many(["bob"]) == [BOB]


@pytest.mark.parametrize("client", [quick, None], ids=["client", "connect"])
def test_unreachable_server_raises_clearly(client):
    url = closed_url()
    users = UserStateStore(client(url)) if client else UserStateStore.connect(url)
    with pytest.raises(StoreUnavailable, match="Redis unreachable .*check REDIS_URL or start the server"):
        users.put_many([ALICE])
    with pytest.raises(StoreUnavailable, match="Redis unreachable .*check REDIS_URL or start the server"):
        users.get_many(["alice"])


def test_frozen_server_times_out_as_unavailable():
    with EmbeddedRedis() as s:
        users = UserStateStore(quick(s.url))
        users.put_many([ALICE])
        os.kill(s.proc.pid, signal.SIGSTOP)              # accepts connections, never answers
        try:
            with pytest.raises(StoreUnavailable, match="Timeout"):
                users.get_many(["alice"])
            with pytest.raises(StoreUnavailable, match="check REDIS_URL"):
                users.put_many([BOB])
        finally:
            os.kill(s.proc.pid, signal.SIGCONT)
