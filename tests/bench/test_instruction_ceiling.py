"""bench.instruction_ceiling: the Bayes ceilings on a tiny world are probabilities in the right order."""

from __future__ import annotations

from bench.instruction_ceiling import ceilings
from tests.worlds import tiny_world


def test_instruction_ceilings_are_ordered(tmp_path):
    tiny_world(tmp_path / "w", tmp_path / "s", users=60, seed=3)
    out = ceilings(tmp_path / "w")
    assert out["rows"] > 0
    assert 0 <= out["hr10_need_set"] <= out["hr10_need_leaf"] <= 1
