"""bench.instruction_ceiling: the Bayes ceilings on a tiny world are probabilities in the right order."""

from __future__ import annotations

from types import SimpleNamespace

from bench.instruction_ceiling import ceilings, fired_needs, frontier
from tests.worlds import tiny_world


def test_instruction_ceilings_are_ordered(tmp_path):
    tiny_world(tmp_path / "w", tmp_path / "s", users=60, seed=3)
    out = ceilings(tmp_path / "w")
    assert out["rows"] > 0
    assert 0 <= out["hr10_need_set"] <= out["hr10_need_leaf"] <= 1
    assert 0 <= out["hr10_mix_no_context"] <= out["hr10_mix_need_set"] <= 1
    front = frontier(tmp_path / "w", max_rows=None, lambdas=(0.0, 0.5, 1.0))
    from oxygen.data.io import load_dataset
    homepage = [r for r in load_dataset(tmp_path / "w").splits["test"] if r.scenario == "homepage"]
    assert sum(front["rows"].values()) == len(homepage) > 0
    assert set(front["lam"]) == {"0.0", "0.5", "1.0"}
    for table in front["lam"].values():
        assert set(table) == set(front["rows"]) | {"all"} and all(0 <= v <= 1 for v in table.values())


def test_fired_needs_are_the_earlier_context_visits_only():
    def row(ts, reason, need):
        return SimpleNamespace(timestamp=ts, truth=SimpleNamespace(reason=reason, need=need))
    rows = {"u": [row(1, "context", "Scarves"), row(2, "interest", "Mugs"), row(5, "context", "Umbrellas")]}
    assert fired_needs(rows, "u", 5) == {"Scarves"}
    assert fired_needs(rows, "u", 6) == {"Scarves", "Umbrellas"}
    assert fired_needs(rows, "other", 6) == set()
