"""Fixtures for serving tests: a tiny random-weight bundle (real model, codebook, pools, titles)
and a real embedded Redis holding some user states and one reasoning instruction."""

from __future__ import annotations

import numpy as np
import pytest
import redis

from bench.tiny_bundle import make_bundle  # noqa: E402
from oxygen.store.embedded import EmbeddedRedis
from oxygen.store.instructions import InstructionRecord, InstructionStore
from oxygen.store.users import UserState, UserStateStore


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("bundle")
    make_bundle(path)
    return path


@pytest.fixture(scope="session")
def redis_server():
    with EmbeddedRedis() as server:
        client = redis.Redis.from_url(server.url)
        UserStateStore(client).put_many([UserState("alice", [1, 2, 3], ["click", "cart", "purchase"],
                                                   ["homepage", "channel", "cart"], {"city": "Harbin"}),
                                         UserState("bob", [5]),
                                         UserState("u42", [4, 5])])  # the spec's example user (the fuzzer sends it)
        InstructionStore(client).put(InstructionRecord("alice", "winter in Harbin", np.ones(384, np.float32),
                                                       "knowledge", reasons=["electric blankets: cold-humid winter"],
                                                       branches=["stp"]))
        yield server
