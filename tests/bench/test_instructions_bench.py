"""bench.instructions' bookkeeping and oxygen.eval.instructions' measurements: per-seed hits are
cached and reloaded, the summary averages arms over the seeds that ran them and reports the
deductive keys of the contract, and the rewrite / need-match scores count what they claim."""

from __future__ import annotations

import numpy as np

from bench.instructions import seed_arms, summarise
from oxygen.data.schema import Row
from oxygen.eval.instructions import deductive, need_stated, oracle_text, rewrite_scores
from oxygen.world.knowledge import Knowledge


def _rows() -> list[Row]:
    reasons = ["context", "context", "search", "complement"]
    return [Row(user_id=f"u{i}", history=[1], target=2, truth={"reason": r, **({"need": "Umbrellas"} if r == "context" else {})},
                **({"query": "umbrela"} if r == "search" else {})) for i, r in enumerate(reasons)]


def _arms(lm: bool) -> dict[str, np.ndarray]:
    base = {"default": [0, 0, 1, 1], "paper+teacher": [0, 0, 1, 0], "generated": [1, 0, 1, 1],
            "generated+default": [0, 0, 0, 1], "oracle": [1, 1, 1, 1], "search_raw": [0], "search_rewritten": [1]}
    if lm:
        base["generated+lm"] = [1, 1, 1, 1]
    return {k: np.array(v, dtype=float) for k, v in base.items()}


def test_summary_holds_the_contract_keys_and_means(tmp_path):
    test = _rows()
    out = summarise([_arms(True), _arms(False)], test)
    d = out["deductive"]
    assert (d["rows"], d["hr10_default"], d["hr10_generated"], d["hr10_oracle"]) == (2, 0.0, 0.5, 1.0)
    assert d["hr10_generated_lm"] == 1.0 and d["generated+lm"]["seeds"] == 1
    assert out["search"]["hr10_raw"] == 0.0 and out["search"]["hr10_rewritten"] == 1.0
    assert out["by_reason"]["complement"]["default"] == 1.0


def test_seed_hits_are_computed_once(tmp_path):
    calls = []
    first = seed_arms(tmp_path, 3, lambda: calls.append(1) or _arms(False))
    again = seed_arms(tmp_path, 3, lambda: calls.append(1) or _arms(False))
    assert calls == [1] and all(np.array_equal(first[k], again[k]) for k in first)


def test_eval_measurements():
    kb = Knowledge.load()
    assert deductive(_rows()).tolist() == [True, True, False, False]
    assert need_stated("Rainy week in Hangzhou: umbrella, rain boots", "Umbrellas", kb)
    assert not need_stated("complements for the new phone: case", "Umbrellas", kb)
    generated = "Rainy in Hangzhou for students: rain boots; more tea"
    assert oracle_text("Umbrellas", generated) == "Rainy in Hangzhou for students: umbrellas"
    pairs = [("umbrela", "umbrella"), ("umbrella", "umbrella"), ("tea", "tea")]
    s = rewrite_scores(pairs, ["umbrella", "umbrella", "green tea"])
    assert (s["accuracy"], s["false_correction_rate"], s["noisy"], s["clean"]) == (1.0, 0.5, 1, 2)
