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


def timeless(report):
    """`report` without its wall-clock `seconds` entries (the only thing two identical runs differ in)."""
    if isinstance(report, dict):
        return {k: timeless(v) for k, v in report.items() if k != "seconds"}
    return [timeless(v) for v in report] if isinstance(report, list) else report


def test_seeds_run_apart_merge_like_one_run(tmp_path, capsys):
    tiny_world(tmp_path / "w", tmp_path / "s", users=60, seed=2, items=300, days=30)
    common = ["--data", str(tmp_path / "w"), "--models", "listwise,pointwise", "--set", "epochs=1",
              "--set", "d_model=16", "--set", "d_ff=32"]
    together = main([*common, "--out", str(tmp_path / "one"), "--seeds", "0,1"])
    apart = [*common[:2], *common[4:], "--out", str(tmp_path / "apart")]
    main([*apart, "--seeds", "0", "--models", "listwise,pointwise"])
    main([*apart, "--seeds", "1", "--models", "pointwise"])
    main([*apart, "--seeds", "1", "--models", "listwise"])
    capsys.readouterr()
    merged = main([*common, "--out", str(tmp_path / "apart"), "--seeds", "0,1"])
    assert capsys.readouterr().out.count("reusing the finished seed") == 4
    same = [json.dumps(timeless(r["models"]), sort_keys=True) for r in (merged, together)]  # NaN == NaN as text
    assert same[0] == same[1]
    assert merged["paired_click_auc"] == together["paired_click_auc"]
    seed0 = tmp_path / "apart" / "seeds" / "seed0" / "ranker.pt"  # the main seed's, not the last trained
    assert (tmp_path / "apart" / "ranker.pt").read_bytes() == seed0.read_bytes()
    seed0.unlink()
    main([*apart, "--seeds", "0", "--models", "listwise"])
    assert "missing beside the kept list-wise result" in capsys.readouterr().out and seed0.exists()
    other = main([*common[:-4], "--set", "d_model=8", "--set", "d_ff=16", "--out", str(tmp_path / "apart"), "--seeds", "1"])
    assert "kept under other settings" in capsys.readouterr().out
    assert other["config"]["d_model"] == 8


def test_a_listwise_only_setting_retrains_the_listwise_model_alone(tmp_path, capsys):
    tiny_world(tmp_path / "w", tmp_path / "s", users=60, seed=2, items=300, days=30)
    common = ["--data", str(tmp_path / "w"), "--out", str(tmp_path / "r"), "--models", "listwise,pointwise",
              "--set", "epochs=1", "--set", "d_model=16", "--set", "d_ff=32"]
    main([*common, "--set", "request_bias=false"])
    capsys.readouterr()
    out = main([*common, "--set", "request_bias=true"])
    said = capsys.readouterr().out
    assert "reusing the finished seed 0 pointwise" in said and "seed 0 listwise was kept under other settings" in said
    assert said.count("reusing the finished") == 1 and said.count("kept under other settings") == 1
    assert out["config"]["request_bias"] and load_ranker(tmp_path / "r" / "ranker.pt")[0].cfg.request_bias
