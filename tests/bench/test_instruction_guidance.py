"""bench.instruction_guidance: the gate read from the records, seeds pooled against the baselines
and every weight against them (the frontier), as loops compute them, and `--save` (guided and gated
decoding itself is tested in tests/decoding/test_guidance.py, the open-needs count in
tests/instructions/test_needs.py)."""

from __future__ import annotations

import numpy as np
import pytest


def test_across_seeds_pools_hits_per_reason_against_a_loop():
    """Per arm and hidden reason the HR is the mean over seeds of the rows' hit rate, the deductive
    ratio divides by the default's, and the paired gap is the mean of seed-averaged differences."""
    from types import SimpleNamespace

    from bench.instruction_guidance import HomepageRows, across_seeds

    rng = np.random.default_rng(0)
    n, seeds = 40, 3
    reasons = np.array(["context"] * 15 + ["interest"] * 20 + ["popular"] * 5)
    test = HomepageRows([SimpleNamespace()] * n, reasons == "context", reasons, rng.random(n) < 0.5)
    hit = lambda: (rng.random(n) < 0.4).astype(float)  # noqa: E731
    per_seed = [{"test": {"plain": {0.0: hit()}, "gated": {1.0: hit()}}} for _ in range(seeds)]
    base = [hit() for _ in range(seeds)]
    out = across_seeds(test, per_seed, base, 1.0)
    for arm, seeds_hits in (("default", base), ("gated", [h["test"]["gated"][1.0] for h in per_seed])):
        for part, mask in (("deductive", reasons == "context"), ("reason:interest", reasons == "interest")):
            by_seed = [sum(h[i] for i in range(n) if mask[i]) / mask.sum() for h in seeds_hits]
            assert out["hr"][arm][part]["mean"] == pytest.approx(sum(by_seed) / seeds)
    ded = reasons == "context"
    assert out["deductive_x_default"]["gated"] == pytest.approx(
        out["hr"]["gated"]["deductive"]["mean"] / out["hr"]["default"]["deductive"]["mean"])
    diff = np.mean([per_seed[s]["test"]["gated"][1.0] - base[s] for s in range(seeds)], axis=0)[ded].mean()
    assert out["paired"]["gated-default"]["deductive"]["diff"] == pytest.approx(diff)
    assert out["rows"] == {"all": 40, "deductive": 15, "other": 25, "reason:context": 15,
                           "reason:interest": 20, "reason:popular": 5}


def test_frontier_reads_every_weight_against_the_default_like_a_loop():
    """Per weight: HR per reason of the seed-averaged hits, the deductive ratio to the baselines',
    and the paired gap to them, as loops over rows compute them."""
    from types import SimpleNamespace

    from bench.instruction_guidance import HomepageRows, frontier

    rng = np.random.default_rng(1)
    n, seeds, weights = 30, 2, (-0.5, 0.0)
    reasons = np.array(["context"] * 12 + ["interest"] * 18)
    test = HomepageRows([SimpleNamespace()] * n, reasons == "context", reasons, np.ones(n, dtype=bool))
    hit = lambda: (rng.random(n) < 0.5).astype(float)  # noqa: E731
    per_seed = [{"test": {"plain": {w: hit() for w in weights}}} for _ in range(seeds)]
    base = [hit() for _ in range(seeds)]
    out = frontier(test, per_seed, base, weights)
    assert set(out) == {"-0.5", "0.0"}
    for w in weights:
        rows = [i for i in range(n) if reasons[i] == "interest"]
        mine = [sum(per_seed[s]["test"]["plain"][w][i] for s in range(seeds)) / seeds for i in rows]
        theirs = [sum(base[s][i] for s in range(seeds)) / seeds for i in rows]
        assert out[str(w)]["hr"]["reason:interest"] == pytest.approx(sum(mine) / len(rows))
        assert out[str(w)]["paired_vs_default"]["reason:interest"]["diff"] == pytest.approx((sum(mine) - sum(theirs)) / len(rows))
        ded = [i for i in range(n) if reasons[i] == "context"]
        mine_ded = sum(per_seed[s]["test"]["plain"][w][i] for s in range(seeds) for i in ded)
        base_ded = sum(base[s][i] for s in range(seeds) for i in ded)
        assert out[str(w)]["deductive_x_default"] == pytest.approx(mine_ded / base_ded)


def test_save_weight_sets_and_removes_a_scenarios_weight(tmp_path):
    """--save writes the chosen weight into guidance.json, keeps other scenarios' weights, marks a
    gated one, and a weight of 0 removes the entry (the file too when nothing is left)."""
    import json

    from bench.instruction_guidance import main, save_weight

    save_weight(tmp_path, "homepage", -0.15)
    assert json.loads((tmp_path / "guidance.json").read_text()) == {
        "weights": {"homepage": -0.15}, "gated": [], "levels": [0, 1, 2]}
    save_weight(tmp_path, "channel", 0.5, gated=True, levels=(0,))
    assert json.loads((tmp_path / "guidance.json").read_text()) == {
        "weights": {"homepage": -0.15, "channel": 0.5}, "gated": ["channel"], "levels": [0]}
    save_weight(tmp_path, "homepage", 0.0)
    save_weight(tmp_path, "channel", 0.5, levels=(0,))
    assert json.loads((tmp_path / "guidance.json").read_text()) == {
        "weights": {"channel": 0.5}, "gated": [], "levels": [0]}
    save_weight(tmp_path, "channel", 0)
    assert not (tmp_path / "guidance.json").exists()
    args = ["--data", str(tmp_path), "--bundle", str(tmp_path), "--instructions", str(tmp_path / "x")]
    with pytest.raises(SystemExit, match="--levels must name SID levels"):
        main([*args, "--levels", "0,3", "--save"])
    with pytest.raises(SystemExit, match="add --save"):
        main([*args, "--gated"])


def test_records_without_open_needs_are_refused(tmp_path):
    """A records file written before the generator counted open needs cannot gate: a clear error."""
    import json

    from apps import world as world_app
    from bench.instruction_guidance import homepage_rows

    world_app.main(["--out", str(tmp_path / "w"), "--items", "300", "--users", "20", "--days", "10", "--seed", "4",
                    "--quiet"])
    (tmp_path / "r.jsonl").write_text(json.dumps({"user_id": "u1", "at": 1, "text": "winter: coats"}) + "\n")
    with pytest.raises(SystemExit, match="no record says its open needs"):
        homepage_rows(tmp_path / "w", tmp_path / "r.jsonl")
