"""bench.nearline's own logic: the window rule it checks against, and the replayed events."""

from __future__ import annotations

import json

from bench.nearline import expected_windows, replay_log
from oxygen.data.io import load_dataset
from oxygen.serving.schemas import EventsRequest
from tests.worlds import tiny_world


def test_expected_windows_follow_the_rule():
    assert expected_windows([], 5) == 0
    assert expected_windows([0, 1, 4.9], 5) == 1        # all inside the first window
    assert expected_windows([0, 5.1, 6, 11], 5) == 3    # 5.1 opens the second, 11 the third
    assert expected_windows([0, 5.0], 5) == 1           # the window's end is inside it


def test_replay_log_is_the_test_split_in_time_order(tmp_path):
    tiny_world(tmp_path / "w", tmp_path / "s", users=30, seed=1)
    ds = load_dataset(tmp_path / "w")
    events = replay_log(ds)
    assert len(events) == len(ds.splits["test"])
    assert [e["ts"] for e in events] == sorted(e["ts"] for e in events)
    assert all((e["type"] == "search") == bool(e.get("query")) for e in events)
    assert {e["type"] for e in events} <= {"search", "click", "cart", "purchase"}
    EventsRequest.model_validate_json(json.dumps({"events": events}))  # what POST /v1/events accepts

