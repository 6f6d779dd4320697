"""The near-line regeneration against a real Redis, the knowledge teacher and the text encoder:
a user's state written by event ingestion becomes an instruction as of their newest event (its
season and city), embedded, versioned by the window; a user the store does not know fails."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import redis

from oxygen.data.io import load_dataset
from oxygen.instructions.backends.knowledge import KnowledgeBackend
from oxygen.instructions.nearline.regenerate import Regenerator, item_info, state_of
from oxygen.instructions.pipeline import catalogue_vocabulary
from oxygen.instructions.weather import WeatherFeed
from oxygen.store.embedded import EmbeddedRedis
from oxygen.store.events import Claim, EventLog, UserEvent
from oxygen.store.users import UserState, UserStateStore
from tests.worlds import tiny_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("nl")
    tiny_world(d / "w", d / "s", users=40, seed=2)
    return load_dataset(d / "w")


@pytest.fixture(scope="module")
def server():
    with EmbeddedRedis() as s:
        yield s


def test_state_of_a_stored_user_is_as_of_their_newest_event(world):
    items = item_info(world.items)
    stored = UserState("u1", history=[1, 2], behaviours=["click", "cart"], scenarios=["homepage", "search"],
                       profile={"city": "Harbin", "persona": "student"}, timestamps=[1764000000, 1764000100],
                       queries=[[1764000050, "gaming mou"]])
    st = state_of(stored, items)
    assert st.at == 1764000101 and st.date == "2025-11-24" and st.city == "Harbin"
    assert [e.item_id for e in st.events] == [1, 2] and st.queries == [(1764000050, "gaming mou")]


def test_regenerates_from_ingested_events(world, server):
    client = redis.Redis.from_url(server.url)
    log = EventLog(client, prefix="rg", window_s=0.0)
    row = next(r for r in world.splits["test"] if r.profile and r.history_timestamps)
    UserStateStore(client, "rg").put(UserState(row.user_id, profile=row.profile.model_dump()))
    ts = row.history_timestamps[-1]
    log.ingest([UserEvent(row.user_id, "cart", item=i, scenario="homepage", ts=ts + k) for k, i in enumerate(row.history[-5:])])
    regen = Regenerator(UserStateStore(client, "rg"), KnowledgeBackend(coverage=1.0), item_info(world.items),
                        WeatherFeed.load(world.root), catalogue_vocabulary(world.items))
    claim = Claim(row.user_id, ("1764000000000-0", "1764000005000-0"))
    out = regen([claim, Claim("nobody", ("1-0",))])
    assert out.failed == {"nobody": "no user state in the store"}
    rec = out.records[row.user_id]
    assert rec.asof == 1764000005.0 and rec.source == "knowledge" and rec.text and rec.branches
    assert "stp" in rec.branches and isinstance(rec.open_needs, int)  # judged with the catalogue's words
    assert rec.embedding.shape == (384,) and np.isclose(np.linalg.norm(rec.embedding), 1.0, atol=1e-4)
    day = dt.datetime.fromtimestamp(ts + 5, dt.timezone.utc).date()
    assert state_of(UserStateStore(client, "rg").get_many([row.user_id])[0], item_info(world.items)).date == day.isoformat()
