"""Ablation variants switch exactly what they name; the table shows every scenario column."""

from __future__ import annotations

import pytest

from oxygen.config import GenerativeConfig
from oxygen.eval.ablations import PLACEMENTS, to_markdown, variants


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
