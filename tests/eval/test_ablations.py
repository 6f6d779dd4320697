"""Ablation variants switch exactly what they name; the table shows every scenario column."""

from __future__ import annotations

import pytest

from oxygen.config import GenerativeConfig
from oxygen.eval.ablations import PLACEMENTS, equal_steps, to_markdown, variants


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
