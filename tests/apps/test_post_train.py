"""apps.post_train end to end on a tiny world with a random-weight bundle and ranker: a servable
bundle, metrics before/after per split, monitors, a resumable learner checkpoint."""

from __future__ import annotations

import json

from apps.post_train import main
from bench.tiny_bundle import catalogue_bundle
from oxygen.config import RankerConfig
from oxygen.eval.ranking import eval_split
from oxygen.model.bundle import Bundle
from oxygen.rl.rank_data import RankSpace
from oxygen.rl.rank_fit import build_model, save_ranker
from tests.worlds import tiny_world


def test_post_train_writes_bundle_metrics_and_monitors(tmp_path):
    ds = tiny_world(tmp_path / "w", tmp_path / "s", users=50, seed=6, items=300, days=20)
    catalogue_bundle(tmp_path / "b", ds.items)
    space = RankSpace.fit(ds.items, ds.splits["train"])
    save_ranker(build_model(RankerConfig(d_model=16, heads=2, d_ff=32, layers=1), space), space, tmp_path / "r.pt")
    out = main(["--bundle", str(tmp_path / "b"), "--data", str(tmp_path / "w"), "--ranker", str(tmp_path / "r.pt"),
                "--algo", "gspo", "--synthetic-ratio", "0.5", "--out", str(tmp_path / "o"),
                "--set", "iterations=2", "--set", "requests=8", "--set", "rollout.group=4"])
    saved = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert saved["config"]["objective"]["algo"] == "gspo" and saved["config"]["synthetic_ratio"] == 0.5
    for split in ("valid", "test"):
        assert {"hr@1", "hr@10"} <= set(saved["before"][split]["overall"]) <= set(saved["after"][split]["overall"])
    assert len(saved["history"]) == 2 and {"reward", "coverage", "loss"} <= set(saved["history"][0])
    assert Bundle.load(tmp_path / "o" / "bundle").version.startswith("gspo-")
    assert (tmp_path / "o" / "monitors.png").exists() and (tmp_path / "o" / "learner.pt").exists()
    assert out["after"]["test"]["rows"] == len(ds.splits["test"]) == len(saved["after"]["test"]["ranks"])
    # the shipped version is the best on valid (the same rows), the starting model included
    assert saved["chosen"]["iteration"] in (0, 2)
    assert saved["chosen"]["valid_hr@10"] == saved["after"]["valid"]["overall"]["hr@10"]
    assert saved["chosen"]["valid_hr@10"] >= saved["before"]["valid"]["overall"]["hr@10"]


def test_learning_on_valid_early_reports_the_later_half(tmp_path):
    ds = tiny_world(tmp_path / "w", tmp_path / "s", users=30, seed=8, items=300, days=20)
    catalogue_bundle(tmp_path / "b", ds.items)
    out = main(["--bundle", str(tmp_path / "b"), "--data", str(tmp_path / "w"), "--algo", "sa_gcpo",
                "--out", str(tmp_path / "o"), "--set", "learn_on=valid_early", "--set", "iterations=1",
                "--set", "requests=4", "--set", "rollout.group=4", "--set", "threads=1",
                "--set", "reward.weights={search: {ranking: 0}, homepage: {ranking: 0}, channel: {ranking: 0}, "
                "cart: {ranking: 0}, checkout: {ranking: 0}}"])
    n = len(ds.splits["valid"])
    assert out["before"]["valid"]["rows"] == out["after"]["valid"]["rows"] == n - n // 2
    assert out["after"]["test"]["rows"] == len(ds.splits["test"]) and out["config"]["learn_on"] == "valid_early"


def test_eval_split_is_a_fixed_sample_in_row_order():
    rows = list(range(100))
    assert eval_split(rows, None) == rows and eval_split(rows, 500) == rows
    part = eval_split(rows, 30)
    assert len(part) == 30 == len(set(part)) and part == sorted(part) and part == eval_split(rows, 30)


def test_post_train_on_ray_workers(tmp_path):
    import ray

    ds = tiny_world(tmp_path / "w", tmp_path / "s", users=40, seed=7, items=300, days=20)
    catalogue_bundle(tmp_path / "b", ds.items)
    try:
        out = main(["--bundle", str(tmp_path / "b"), "--data", str(tmp_path / "w"), "--algo", "grpo", "--workers", "2",
                    "--out", str(tmp_path / "o"), "--set", "iterations=2", "--set", "requests=8",
                    "--set", "rollout.group=4", "--set", "threads=1",
                    "--set", "reward.weights={search: {ranking: 0}, homepage: {ranking: 0}, channel: {ranking: 0}, "
                    "cart: {ranking: 0}, checkout: {ranking: 0}}"])
    finally:
        ray.shutdown()
    assert [h["version"] for h in out["history"]] == [1.0, 2.0]
    assert out["chosen"]["valid_hr@10"] == out["after"]["valid"]["overall"]["hr@10"]  # validated through the object store
    assert Bundle.load(tmp_path / "o" / "bundle").version.startswith("grpo-") and (tmp_path / "o" / "learner.pt").exists()
