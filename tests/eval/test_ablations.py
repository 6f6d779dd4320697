"""Ablation variants switch exactly what they name; the table shows every scenario column; reports of
several seeds average cell by cell and give paired gaps; bench.ablations --merge writes them."""

from __future__ import annotations

import json

import pytest

from oxygen.config import GenerativeConfig
from oxygen.eval.ablations import PLACEMENTS, equal_steps, mean_report, paired_gaps, to_markdown, to_markdown_mean, variants


def test_variants_change_only_their_switch():
    base = GenerativeConfig()
    v = variants("placement", base)
    assert list(v) == list(PLACEMENTS)
    assert {c.model.instruction_placement for c in v.values()} == set(PLACEMENTS)
    assert all(c.train == base.train and c.model.use_igr == base.model.use_igr for c in v.values())
    g = variants("igr_q2i", base)
    assert {(c.model.use_igr, c.model.use_q2i) for c in g.values()} == {(True, True), (True, False),
                                                                         (False, True), (False, False)}
    assert [c.use_queries for c in variants("query", base).values()] == [True, False]
    with pytest.raises(ValueError, match="unknown ablation"):
        variants("nope", base)


def test_markdown_table():
    report = {"a": {"overall": {"hr@10": 0.5}, "cart": {"hr@10": 0.25}}, "b": {"overall": {"hr@10": 0.1}}}
    md = to_markdown(report).splitlines()
    assert md[0] == "| variant | cart | overall |"
    assert md[2] == "| a | 0.2500 | 0.5000 |" and md[3] == "| b |  | 0.1000 |"


def test_per_scenario_models_get_the_unified_step_budget():
    base = GenerativeConfig(train={"epochs": 4, "batch_size": 256})
    assert equal_steps(base, 20800, 1317).train.epochs == 64  # ceil(4 * 20800 / 1317)
    assert equal_steps(base, 100, 100).train.epochs == 4
    assert equal_steps(base, 100, 30).train.batch_size == 256 and base.train.epochs == 4
    with pytest.raises(ValueError, match="at least one"):
        equal_steps(base, 100, 0)


def _seed_report(hits_a: list[int], hits_b: list[int]) -> dict:
    """A two-variant report whose 'overall' carries per-row ranks (1 = hit at the top, 0 = miss)."""
    def by(h):
        return {"overall": {"hr@10": sum(h) / len(h), "ranks": h}, "cart": {"hr@10": h[0] * 1.0}}
    return {"a": by(hits_a), "b": by(hits_b)}


def test_mean_report_and_paired_gaps_over_seeds():
    reports = [_seed_report([1, 1, 0, 0], [1, 0, 0, 0]), _seed_report([1, 1, 1, 0], [0, 0, 0, 0])]
    mean = mean_report(reports)
    assert mean["a"]["overall"]["hr@10"] == pytest.approx([0.625, 0.125 * 2 ** 0.5])
    assert mean["b"]["cart"]["hr@10"] == pytest.approx([0.5, 2 ** 0.5 / 2])
    assert "ranks" not in mean["a"]["overall"]
    gaps = paired_gaps(reports)
    assert list(gaps) == ["b"] and gaps["b"]["diff"] == pytest.approx(0.125 - 0.625)
    md = to_markdown_mean(mean, gaps).splitlines()
    assert md[0] == "| variant | cart | overall | overall gap to 'a' [95% CI] |"
    assert md[2].startswith("| a | 1.0000 ± 0.0000 | 0.6250 ± 0.1768 |") and md[3].split("|")[4].startswith(" -0.5000 [")
    with pytest.raises(ValueError, match="missing"):
        mean_report([reports[0], {"a": reports[0]["a"]}])
    with pytest.raises(ValueError, match="ranks"):
        paired_gaps([{"a": {"overall": {"hr@10": 0.1}}, "b": {"overall": {"hr@10": 0.2}}}])


def test_bench_ablations_merge(tmp_path):
    from bench.ablations import main
    paths = []
    for s, report in enumerate([_seed_report([1, 0], [0, 0]), _seed_report([1, 1], [1, 0])]):
        paths.append(tmp_path / f"r{s}.json")
        paths[-1].write_text(json.dumps(report))
    result = main(["--merge", *map(str, paths), "--out", str(tmp_path / "m.json")])
    assert result["mean"]["a"]["overall"]["hr@10"][0] == pytest.approx(0.75)
    saved = json.loads((tmp_path / "m.json").read_text())
    assert saved["gaps"]["hr@10"]["b"]["diff"] == pytest.approx(-0.5)
    assert saved["gaps"]["ndcg@10"]["b"]["diff"] == pytest.approx(-0.5)  # rank 1 hits: NDCG = HR
