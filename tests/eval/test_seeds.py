"""oxygen.eval.seeds (reseeding, per-row scores, the paired bootstrap against a slow loop) and
bench.seeds end to end on a tiny dataset: one JSON per seed, skipped when present, summarised."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench import seeds as bench_seeds
from oxygen.config import GenerativeConfig, SASRecConfig
from oxygen.eval.metrics import hit_rate, ndcg
from oxygen.eval.seeds import bootstrap_indices, mean_std, paired_bootstrap, rank_scores, reseed
from tests.eval.test_bench import tiny_dataset


def test_reseed_sets_every_nested_seed_and_leaves_the_original():
    cfg = GenerativeConfig()
    new = reseed(cfg, 7)
    assert new.train.seed == 7 and new.sid.seed == 7
    assert cfg.train.seed == 0 and cfg.sid.seed == 0
    assert new.model == cfg.model and new.train.lr == cfg.train.lr
    assert reseed(SASRecConfig(), 3).seed == 3


def test_mean_std():
    assert mean_std([0.1]) == (0.1, 0.0)
    m, s = mean_std([1.0, 2.0, 3.0])
    assert m == pytest.approx(2.0) and s == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least one"):
        mean_std([])


def test_rank_scores_match_the_metrics():
    rng = np.random.default_rng(1)
    ranked = np.stack([rng.permutation(30)[:10] for _ in range(200)])
    targets = rng.integers(0, 30, size=200)
    ranks = np.array([list(r).index(t) + 1 if t in r else 0 for r, t in zip(ranked, targets)])
    for k in (1, 5, 10):
        s = rank_scores(ranks, k)
        assert s["hr"].mean() == pytest.approx(hit_rate(ranked, targets, k))
        assert s["ndcg"].mean() == pytest.approx(ndcg(ranked, targets, k))
    with pytest.raises(ValueError, match=">= 0"):
        rank_scores([-1, 2], 10)


def slow_bootstrap(a: np.ndarray, b: np.ndarray, n_boot: int, seed: int) -> dict[str, float]:
    """Reference: one resample at a time, plain Python means and quantiles by numpy."""
    idx = bootstrap_indices(len(a), n_boot, seed)
    means = []
    for line in idx:
        means.append(sum(float(a[i]) - float(b[i]) for i in line) / len(line))
    means = np.array(means)
    return {"diff": float(np.mean(a - b)), "lo": float(np.quantile(means, 0.025)),
            "hi": float(np.quantile(means, 0.975)), "p_le_0": float((means <= 0).mean())}


def test_paired_bootstrap_matches_the_slow_reference():
    rng = np.random.default_rng(2)
    a, b = rng.random(300) < 0.3, rng.random(300) < 0.2
    fast = paired_bootstrap(a, b, n_boot=300, seed=5)
    slow = slow_bootstrap(a.astype(float), b.astype(float), 300, 5)
    assert fast == pytest.approx(slow)
    assert fast["lo"] <= fast["diff"] <= fast["hi"]


def test_paired_bootstrap_sees_real_and_null_gaps():
    x = np.r_[np.ones(100), np.zeros(100)]
    same = paired_bootstrap(x, x)
    assert same["diff"] == 0 and same["p_le_0"] == 1.0
    better = paired_bootstrap(np.ones(200), x)
    assert better["diff"] == 0.5 and better["lo"] > 0.4 and better["p_le_0"] == 0.0
    with pytest.raises(ValueError, match="one length"):
        paired_bootstrap(np.ones(3), np.ones(4))


def test_bench_seeds_run_skip_and_summary(tmp_path: Path, capsys):
    data = tiny_dataset(tmp_path / "data", scenarios=False)
    folder = tmp_path / "runs"
    for model in ("markov", "pop"):
        bench_seeds.main(["run", "--data", str(data), "--model", model, "--seeds", "0", "1", "--dir", str(folder)])
    assert sorted(p.name for p in folder.iterdir()) == ["markov_seed0.json", "markov_seed1.json",
                                                          "pop_seed0.json", "pop_seed1.json"]
    rcd = json.loads((folder / "markov_seed0.json").read_text())
    assert rcd["test"]["hr@10"] == 1.0 and set(rcd["ranks"]) == {1} and rcd["rows"] == 30
    bench_seeds.main(["run", "--data", str(data), "--model", "pop", "--seeds", "1", "--dir", str(folder)])
    assert "skipped" in capsys.readouterr().out
    out = tmp_path / "summary.json"
    png = tmp_path / "seeds.png"
    bench_seeds.main(["summary", "--dir", str(folder), "--reference", "markov", "--out", str(out),
                      "--plot", str(png), "--published", "TIGER=0.14"])
    assert png.stat().st_size > 1000
    summary = json.loads(out.read_text())
    assert summary["markov"]["hr@10"] == {"mean": 1.0, "std": 0.0} and summary["markov"]["vs"] == {}
    gap = summary["pop"]["vs"]["markov"]
    assert gap["diff"] == pytest.approx(summary["pop"]["hr@10"]["mean"] - 1.0) and gap["hi"] < 0
    assert "| pop | 2 |" in capsys.readouterr().out
    with pytest.raises(ValueError, match="no runs"):
        bench_seeds.main(["summary", "--dir", str(folder), "--reference", "sasrec"])
    other = json.loads((folder / "pop_seed1.json").read_text())
    (folder / "pop_seed7.json").write_text(json.dumps({**other, "seed": 7, "rows": 31}))
    with pytest.raises(ValueError, match="number of test rows"):
        bench_seeds.main(["summary", "--dir", str(folder)])


def test_per_scenario_summary_from_ranks(tmp_path: Path, capsys):
    data = tiny_dataset(tmp_path / "data", scenarios=True)          # users alternate search / cart
    folder = tmp_path / "runs"
    bench_seeds.main(["run", "--data", str(data), "--model", "pop", "--seeds", "0", "--dir", str(folder)])
    rcd = json.loads((folder / "pop_seed0.json").read_text())
    fake = {**rcd, "seed": 1, "ranks": [1 if i % 2 == 0 else 0 for i in range(30)]}  # hits the even users
    (folder / "pop_seed1.json").write_text(json.dumps(fake))
    out = tmp_path / "s.json"
    bench_seeds.main(["summary", "--dir", str(folder), "--data", str(data), "--out", str(out)])
    table = json.loads(out.read_text())["pop"]["by_scenario"]
    ranks0 = np.array(rcd["ranks"])
    search0 = float(((ranks0 >= 1) & (ranks0 <= 10))[0::2].mean())   # rows are user-major: u0, u1, ...
    assert table["search"][0] == pytest.approx((search0 + 1.0) / 2) and set(table) == {"cart", "search", "overall"}
    assert "| pop |" in capsys.readouterr().out.split("model (HR@10)")[1]
    with pytest.raises(ValueError, match="ranks for"):
        bench_seeds.per_scenario(bench_seeds.load_records(folder), ["search"] * 3)


def test_bench_seeds_fused_model_also_writes_its_pure_runs(tmp_path: Path):
    from oxygen.semantic_ids.codebook import Codebook

    data = tiny_dataset(tmp_path / "data", scenarios=False)
    codes = np.array([[i // 4, i % 4, 0] for i in range(12)])
    Codebook(item_ids=np.arange(12), codes=codes, widths=[3, 4, 1]).save(tmp_path / "sids")
    cfg = tmp_path / "fused.yaml"
    cfg.write_text(f"sid_dir: {tmp_path / 'sids'}\neval_beam: 10\nrerank: {{weights: [1.0]}}\n"
                   "model: {d_model: 16, n_heads: 2, enc_layers: 1, dec_layers: 1, d_ff: 32}\n"
                   "train: {epochs: 1, batch_size: 16, threads: 1}\n")
    folder = tmp_path / "runs"
    bench_seeds.main(["run", "--data", str(data), "--model", "tiger", "--config", str(cfg), "--seeds", "3",
                      "--dir", str(folder)])
    fused = json.loads((folder / "tiger+rerank_seed3.json").read_text())
    pure = json.loads((folder / "tiger_seed3.json").read_text())
    assert fused["fit_info"]["rerank"]["weight"] == 1.0 and fused["seed"] == pure["seed"] == 3
    assert pure["valid"] is None and fused["valid"]["hr@10"] == 1.0  # 0.0 was not among the weights
    assert fused["test"]["hr@1"] == 1.0  # the transition channel alone: next = last + 1
    assert pure["test"]["hr@1"] < 1.0 and len(pure["ranks"]) == 30  # one epoch of a tiny model


def test_post_train_metrics_are_filed_as_seed_runs_and_summarised(tmp_path: Path):
    def split(ranks):
        hr = float(np.mean([1 <= r <= 10 for r in ranks]))
        return {"rows": len(ranks), "overall": {"hr@10": hr, "ndcg@10": hr / 2, "hr@5": hr}, "ranks": ranks}

    sft, tuned = [1, 0, 3, 0, 12, 0], [1, 2, 3, 0, 5, 0]
    metrics = tmp_path / "metrics.json"
    folder = tmp_path / "runs"
    for seed in (0, 1):
        metrics.write_text(json.dumps({"before": {"valid": split(sft), "test": split(sft)},
                                       "after": {"valid": split(tuned), "test": split(tuned)}, "seconds": 3.0}))
        bench_seeds.main(["post-train", "--metrics", str(metrics), "--label", "sa_gcpo", "--seed", str(seed),
                          "--before", "sft", "--dir", str(folder)])
    assert sorted(p.name for p in folder.iterdir()) == ["sa_gcpo_seed0.json", "sa_gcpo_seed1.json",
                                                          "sft_seed0.json", "sft_seed1.json"]
    out = tmp_path / "s.json"
    bench_seeds.main(["summary", "--dir", str(folder), "--reference", "sft", "--out", str(out)])
    gap = json.loads(out.read_text())["sa_gcpo"]["vs"]["sft"]
    assert gap["diff"] == pytest.approx(4 / 6 - 2 / 6)
    metrics.write_text(json.dumps({"before": {"test": {"rows": 1, "overall": {}}}, "after": {"test": {"rows": 1}}}))
    with pytest.raises(ValueError, match="no per-row ranks"):
        bench_seeds.main(["post-train", "--metrics", str(metrics), "--label", "x", "--seed", "0", "--dir", str(folder)])


def test_a_trained_bundle_is_filed_as_a_seed_run(tmp_path: Path):
    """`bench.seeds bundle`: the record holds the bundle's valid metrics and test ranks, whose hit
    rate is the test HR@10 a plain evaluation of the same bundle gives; summary reads it."""
    from bench.tiny_bundle import catalogue_bundle
    from oxygen.data.io import load_dataset
    from oxygen.eval.ranking import evaluate_rows
    from oxygen.recommenders.bundled import BundleRecommender

    data = tiny_dataset(tmp_path / "w", scenarios=True)
    ds = load_dataset(data)
    bundle = catalogue_bundle(tmp_path / "b", ds.items, width=4)
    folder = tmp_path / "runs"
    bench_seeds.main(["bundle", "--bundle", str(tmp_path / "b"), "--data", str(data), "--label", "gen",
                      "--seed", "2", "--dir", str(folder)])
    rcd = json.loads((folder / "gen_seed2.json").read_text())
    want = evaluate_rows(BundleRecommender(bundle, progress=False), ds.splits["test"], 10, keep_ranks=True)
    assert rcd["ranks"] == want["ranks"] and rcd["rows"] == len(ds.splits["test"])
    assert rcd["test"]["hr@10"] == pytest.approx(np.mean([1 <= r <= 10 for r in rcd["ranks"]]))
    assert rcd["valid"]["hr@10"] >= 0 and rcd["seed"] == 2
    assert "gen" in bench_seeds.summarise(bench_seeds.load_records(folder), [])
    test_only = bench_seeds.bundle_record(tmp_path / "b", ds, "gen", 2, None, valid=False)
    assert test_only["valid"] is None and test_only["ranks"] == rcd["ranks"]
