"""apps.train_ranker end to end on a tiny world: checkpoint, metrics JSON keys, skipped scenarios
named, and a bad --models value refused."""

from __future__ import annotations

import json

import pytest

from apps.train_ranker import main
from oxygen.rl.rank_fit import load_ranker
from tests.worlds import tiny_world


def test_train_ranker_writes_checkpoint_and_metrics(tmp_path):
    tiny_world(tmp_path / "w", tmp_path / "s", users=60, seed=2, items=300, days=30)
    out = main(["--data", str(tmp_path / "w"), "--out", str(tmp_path / "r"), "--set", "epochs=1",
                "--set", "d_model=16", "--set", "d_ff=32"])
    assert out["source"] == "impressions" and set(out["models"]) == {"listwise", "pointwise", "per_scenario"}
    saved = json.loads((tmp_path / "r" / "metrics.json").read_text())
    for name in ("listwise", "pointwise"):
        rep = saved["models"][name]["all"]
        assert {"auc_click", "gauc_click", "auc_cart", "auc_purchase"} <= set(rep) and rep["candidates"] > 0
    for s, rep in saved["models"]["per_scenario"]["by_scenario"].items():
        assert "auc_click" in rep or rep["skipped"].startswith(f"no {s} requests")
    model, _ = load_ranker(tmp_path / "r" / "ranker.pt")
    assert model.cfg.listwise and (tmp_path / "r" / "curves.png").exists()


def test_unknown_model_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="unknown"):
        main(["--data", str(tmp_path), "--out", str(tmp_path / "r"), "--models", "listwise,bogus"])


def test_several_seeds_give_reports_and_paired_tests(tmp_path):
    tiny_world(tmp_path / "w", tmp_path / "s", users=60, seed=2, items=300, days=30)
    out = main(["--data", str(tmp_path / "w"), "--out", str(tmp_path / "r"), "--models", "listwise,pointwise",
                "--seeds", "0,1", "--set", "epochs=1", "--set", "d_model=16", "--set", "d_ff=32"])
    assert out["seeds"] == [0, 1] and len(out["models"]["listwise"]["by_seed"]) == 2
    test = out["paired_click_auc"]["listwise_vs_pointwise"]
    assert "all" in test and {"users", "diff", "lo", "hi", "p_le_0"} <= set(test["all"])
    assert test["all"]["lo"] <= test["all"]["diff"] <= test["all"]["hi"]
