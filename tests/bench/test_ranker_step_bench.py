"""bench.ranker_step on a tiny world: both arms timed, the JSON keys, and a too-small split refused."""

from __future__ import annotations

import json

import pytest

from bench.ranker_step import main
from tests.worlds import tiny_world


def test_times_both_arms_and_writes_the_json(tmp_path):
    tiny_world(tmp_path / "w", tmp_path / "s", users=60, seed=2, items=300, days=30)
    out = main(["--data", str(tmp_path / "w"), "--split", "train", "--batches", "3", "--batch-size", "4",
                "--out", str(tmp_path / "r.json")])
    for arm in ("without_bias", "with_bias"):
        assert out[arm]["train_step_ms"] > 0 and out[arm]["predict_ms"] > 0
    assert set(out["bias_cost"]) == {"train_step_ms", "predict_ms"}
    assert json.loads((tmp_path / "r.json").read_text()) == out
    with pytest.raises(SystemExit, match="fewer than --batches x --batch-size"):
        main(["--data", str(tmp_path / "w"), "--batches", "3", "--batch-size", "100000"])
