"""bench.post_train on a tiny world and a random-weight bundle: every figure it reports is there
(speed, and memory per rollout worker with own and shared tables); the memory-only mode."""

from __future__ import annotations

from bench.post_train import main
from bench.tiny_bundle import catalogue_bundle
from tests.worlds import tiny_world


def test_post_train_bench_reports_rollout_and_learner_speed(tmp_path):
    ds = tiny_world(tmp_path / "w", tmp_path / "s", users=60, seed=8, items=300, days=20)
    catalogue_bundle(tmp_path / "b", ds.items)
    out = main(["--bundle", str(tmp_path / "b"), "--data", str(tmp_path / "w"), "--out", str(tmp_path / "o.json"),
                "--requests", "8", "--rounds", "1", "--group", "4"])
    assert set(out["rollout_items_per_s"]) == {"in_process", "ray_1_workers", "ray_2_workers"}
    assert all(v > 0 for v in out["rollout_items_per_s"].values()) and out["learner_steps_per_s"] > 0
    assert (tmp_path / "o.json").exists()
    mem = out["memory_mb"]
    assert mem["workers"] == 2 and mem["tables_mb"] > 0
    for side in ("own_tables", "shared_tables"):
        assert mem[side]["rss"] >= mem[side]["uss"] > 0


def test_memory_only_on_a_random_catalogue(tmp_path):
    out = main(["--catalogue", "3000", "--out", str(tmp_path / "m.json"), "--memory-workers", "1", "--group", "4"])
    assert out["catalogue_items"] == 3000 and out["memory_mb"]["shared_tables"]["uss"] > 0
