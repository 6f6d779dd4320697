"""bench.need_slots: the report pools seeds per hidden reason against m = 0 as loops compute it,
`--save` writes and removes a bundle's need slots, and bad arguments or records written before the
generator listed open categories stop with what to do (need slots themselves are tested in
tests/decoding/test_need_slots.py)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest


def _row(reason: str) -> SimpleNamespace:
    return SimpleNamespace(truth=SimpleNamespace(reason=reason))


def test_report_pools_seeds_per_reason_against_no_slots_like_a_loop():
    from bench.need_slots import report

    rng = np.random.default_rng(0)
    reasons = ["context"] * 12 + ["interest"] * 15 + ["popular"] * 3
    n, seeds, slots = len(reasons), 3, (0, 1, 2)
    rows = {"valid": [_row(r) for r in reasons], "test": [_row(r) for r in reasons]}
    hit = lambda: (rng.random(n) < 0.4).astype(float)  # noqa: E731
    per_seed = [{s: {m: hit() for m in slots} for s in ("valid", "test")} for _ in range(seeds)]
    out = report(rows, per_seed, slots)
    for m in slots:
        valid = sum(per_seed[s]["valid"][m][i] for s in range(seeds) for i in range(n)) / (seeds * n)
        assert out["valid_hr_all"][str(m)] == pytest.approx(valid)
        ded = [i for i in range(n) if reasons[i] == "context"]
        mine = sum(per_seed[s]["test"][m][i] for s in range(seeds) for i in ded)
        base = sum(per_seed[s]["test"][0][i] for s in range(seeds) for i in ded)
        assert out["test"][str(m)]["deductive_x_default"] == pytest.approx(mine / base)
        interest = [i for i in range(n) if reasons[i] == "interest"]
        gap = sum(per_seed[s]["test"][m][i] - per_seed[s]["test"][0][i] for s in range(seeds) for i in interest)
        assert out["test"][str(m)]["paired_vs_default"]["reason:interest"]["diff"] == pytest.approx(gap / (seeds * len(interest)))
    assert out["chosen_on_valid"] == max(slots, key=lambda m: (out["valid_hr_all"][str(m)], -m))
    assert out["rows"] == {"all": 30, "deductive": 12, "other": 18, "reason:context": 12,
                           "reason:interest": 15, "reason:popular": 3}


def test_save_slots_writes_and_removes_a_bundles_need_slots(tmp_path):
    from bench.need_slots import save_slots

    save_slots(tmp_path, 2, {1: "Fans", 2: "Heaters"})
    assert json.loads((tmp_path / "need_slots.json").read_text()) == {"homepage": 2}
    assert json.loads((tmp_path / "categories.json").read_text()) == {"1": "Fans", "2": "Heaters"}
    save_slots(tmp_path, 0, {})
    assert not (tmp_path / "need_slots.json").exists()


def test_bad_arguments_and_old_records_say_what_to_do(tmp_path):
    from bench.need_slots import main

    with pytest.raises(SystemExit, match="comma-separated integers"):
        main(["--data", str(tmp_path), "--bundle", str(tmp_path), "--instructions", "x", "--slots", "one"])
    with pytest.raises(SystemExit, match="0..10"):
        main(["--data", str(tmp_path), "--bundle", str(tmp_path), "--instructions", "x", "--slots", "11"])
    old = tmp_path / "rows.jsonl"
    old.write_text(json.dumps({"user_id": "u1", "at": 5, "text": "winter", "open_needs": 1}) + "\n")
    with pytest.raises(SystemExit, match="generate --per-row"):
        main(["--data", str(tmp_path), "--bundle", str(tmp_path), "--instructions", str(old)])


def test_need_in_first_counts_deductive_rows_whose_need_is_among_the_first_m():
    from bench.need_slots import need_in_first
    from oxygen.training.prepare import RowInstructions

    rows = [SimpleNamespace(user_id=u, timestamp=1, truth=SimpleNamespace(reason=r, need=n))
            for u, r, n in (("a", "context", "Fans"), ("b", "context", "Heaters"), ("c", "interest", "Fans"),
                            ("d", "context", "Scarves"))]
    gen = RowInstructions({}, frozenset(["homepage"]), needs={("a", 1): ("Fans", "Heaters"), ("b", 1): ("Fans", "Heaters"),
                                                              ("c", 1): ("Fans",)})
    assert need_in_first(rows, gen, (0, 1, 2)) == {"1": pytest.approx(1 / 3), "2": pytest.approx(2 / 3)}
    assert need_in_first(rows[2:3], gen, (1,)) == {"1": None}


def test_the_oracle_states_only_the_true_need_of_deductive_rows():
    from bench.need_slots import need_in_first, with_oracle
    from oxygen.training.prepare import RowInstructions

    rows = [SimpleNamespace(user_id=u, timestamp=1, truth=SimpleNamespace(reason=r, need=n))
            for u, r, n in (("a", "context", "Fans"), ("b", "interest", "Fans"))]
    gen = RowInstructions({}, frozenset(["homepage"]), needs={("a", 1): ("Heaters",), ("b", 1): ("Heaters",)})
    oracle = with_oracle(gen, rows)
    assert oracle.needs == {("a", 1): ("Fans",), ("b", 1): ("Heaters",)} and gen.needs[("a", 1)] == ("Heaters",)
    assert need_in_first(rows, oracle, (1,)) == {"1": 1.0}
