"""bench.instruction_ceiling: the Bayes ceilings on a tiny world are probabilities in the right order."""

from __future__ import annotations

from types import SimpleNamespace

from bench.instruction_ceiling import ceilings, fired_needs
from tests.worlds import tiny_world


def test_instruction_ceilings_are_ordered(tmp_path):
    tiny_world(tmp_path / "w", tmp_path / "s", users=60, seed=3)
    out = ceilings(tmp_path / "w")
    assert out["rows"] > 0
    assert 0 <= out["hr10_need_set"] <= out["hr10_need_leaf"] <= 1
    assert 0 <= out["hr10_mix_no_context"] <= out["hr10_mix_need_set"] <= 1


def test_fired_needs_are_the_earlier_context_visits_only():
    def row(ts, reason, need):
        return SimpleNamespace(timestamp=ts, truth=SimpleNamespace(reason=reason, need=need))
    rows = {"u": [row(1, "context", "Scarves"), row(2, "interest", "Mugs"), row(5, "context", "Umbrellas")]}
    assert fired_needs(rows, "u", 5) == {"Scarves"}
    assert fired_needs(rows, "u", 6) == {"Scarves", "Umbrellas"}
    assert fired_needs(rows, "other", 6) == set()
