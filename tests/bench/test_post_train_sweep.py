"""bench.post_train_sweep: each grid point runs apps.post_train once with its setting and seed (a
finished run is read back), and the summary's means, spreads and paired gaps match a loop."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench import post_train_sweep as sweep


def fake_metrics(before: list[int], after: list[int]) -> dict:
    def split(ranks):
        hr = float(np.mean([1 <= r <= 10 for r in ranks]))
        return {"overall": {"hr@10": hr, "ndcg@10": hr / 2, "hr@5": hr}, "ranks": ranks, "rows": len(ranks)}
    return {"before": {"valid": split(before), "test": split(before)},
            "after": {"valid": split(after), "test": split(after)}}


def test_every_point_runs_once_with_its_setting_and_seed(tmp_path: Path, monkeypatch):
    calls: list[list[str]] = []
    rng = np.random.default_rng(0)
    sft = [int(x) for x in rng.integers(0, 15, size=20)]

    def fake_main(argv):
        calls.append(argv)
        out = Path(argv[argv.index("--out") + 1])
        m = fake_metrics(sft, [int(x) for x in rng.integers(0, 15, size=20)])
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(m))
        return m

    monkeypatch.setattr(sweep.post_train_app, "main", fake_main)
    argv = ["--bundle", "B", "--data", "D", "--key", "synthetic_ratio", "--values", "0", "0.5",
            "--algos", "grpo", "sa_gcpo", "--seeds", "0", "1", "--dir", str(tmp_path / "runs"),
            "--set", "iterations=3", "--out", str(tmp_path / "s.json"), "--plot", str(tmp_path / "p.png")]
    stale = sweep.run_dir(tmp_path / "runs", "grpo", "synthetic_ratio", "0", 1) / "test_all.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")  # an --all-rows record left by an unfinished earlier run
    out = sweep.main(argv)
    assert len(calls) == 8 and not stale.exists()
    assert all(c[c.index("--algo") + 1] in ("grpo", "sa_gcpo") and "iterations=3" in c for c in calls)
    assert {(c[-3], c[-1]) for c in calls} == {(f"synthetic_ratio={v}", f"seed={s}") for v in ("0", "0.5") for s in (0, 1)}
    assert (tmp_path / "p.png").stat().st_size > 0
    sweep.main(argv)  # every metrics.json exists now: nothing reruns
    assert len(calls) == 8
    point = next(p for p in out["points"] if p["algo"] == "grpo" and p["value"] == "0.5")
    runs = [json.loads((sweep.run_dir(tmp_path / "runs", "grpo", "synthetic_ratio", "0.5", s) / "metrics.json")
                       .read_text()) for s in (0, 1)]
    per_seed = [np.mean([1 <= r <= 10 for r in m["after"]["test"]["ranks"]]) for m in runs]
    assert point["test"]["hr@10"] == pytest.approx(np.mean(per_seed))
    assert point["test"]["sd"] == pytest.approx(np.std(per_seed, ddof=1))
    want = np.mean([[1 <= r <= 10 for r in m["after"]["test"]["ranks"]] for m in runs], axis=0).mean() \
        - np.mean([1 <= r <= 10 for r in sft])
    assert point["vs_sft"]["diff"] == pytest.approx(want)
    assert out["sft"]["test"] == pytest.approx(np.mean([1 <= r <= 10 for r in sft]))


def test_runs_on_different_rows_are_refused():
    a, b = fake_metrics([1, 2, 3], [1, 0, 3]), fake_metrics([1, 2], [1, 0])
    with pytest.raises(ValueError, match="different rows"):
        sweep.summarise({("grpo", "0"): [a], ("grpo", "1"): [b]})


def test_no_run_summarises_the_finished_runs_only(tmp_path: Path, monkeypatch):
    def refuse(argv):
        raise AssertionError("--no-run must not start a run")

    monkeypatch.setattr(sweep.post_train_app, "main", refuse)
    base = ["--bundle", "B", "--data", "D", "--key", "synthetic_ratio", "--values", "0", "0.5", "--seeds", "0", "1",
            "--dir", str(tmp_path), "--no-run"]
    with pytest.raises(FileNotFoundError, match="no finished runs"):
        sweep.main(base)
    out = sweep.run_dir(tmp_path, "sa_gcpo", "synthetic_ratio", "0.5", 1)
    out.mkdir(parents=True)
    (out / "metrics.json").write_text(json.dumps(fake_metrics([1, 0, 4], [1, 2, 0])))
    got = sweep.main(base)
    assert [(p["value"], p["seeds"]) for p in got["points"]] == [("0.5", 1)]


def test_all_rows_measures_every_bundle_once_and_compares_on_those_rows(tmp_path: Path, monkeypatch):
    """--all-rows: the test side comes from one bundle record per run (and one for SFT), cached."""
    rng = np.random.default_rng(1)
    full: dict[str, list[int]] = {}
    measured: list[str] = []

    def fake_record(bundle, ds, label, seed, instructions, valid=True):
        assert valid is False and instructions is None
        measured.append(str(bundle))
        ranks = full.setdefault(str(bundle), [int(x) for x in rng.integers(0, 15, size=50)])
        hr = float(np.mean([1 <= r <= 10 for r in ranks]))
        return {"label": "x", "seed": -1, "test": {"hr@10": hr, "ndcg@10": hr, "hr@5": hr}, "ranks": ranks,
                "rows": 50, "valid": None}

    monkeypatch.setattr(sweep, "bundle_record", fake_record)
    monkeypatch.setattr(sweep, "_dataset", lambda data: "dataset")
    for v in ("0", "0.5"):
        for s in (0, 1):
            out = sweep.run_dir(tmp_path, "grpo", "synthetic_ratio", v, s)
            out.mkdir(parents=True)
            (out / "metrics.json").write_text(json.dumps(fake_metrics([1, 0, 4], [1, 2, 0])))
    argv = ["--bundle", str(tmp_path / "sft"), "--data", "D", "--key", "synthetic_ratio", "--values", "0", "0.5",
            "--algos", "grpo", "--seeds", "0", "1", "--dir", str(tmp_path), "--no-run", "--all-rows"]
    got = sweep.main(argv)
    assert len(measured) == 5 and len(set(measured)) == 5
    sweep.main(argv)  # cached: nothing measured again
    assert len(measured) == 5
    sft = np.array([1 <= r <= 10 for r in full[str(tmp_path / "sft")]], dtype=float)
    assert got["sft"]["test"] == pytest.approx(sft.mean()) and got["sft"]["test_rows"] == 50
    point = next(p for p in got["points"] if p["value"] == "0.5")
    hits = [np.array([1 <= r <= 10 for r in full[str(sweep.run_dir(tmp_path, "grpo", "synthetic_ratio", "0.5", s)
                                                       / "bundle")]], dtype=float) for s in (0, 1)]
    assert point["test"]["hr@10"] == pytest.approx(np.mean([h.mean() for h in hits]))
    assert point["vs_sft"]["diff"] == pytest.approx(np.mean(hits, axis=0).mean() - sft.mean())
