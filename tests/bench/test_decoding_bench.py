"""The decoding benchmark's core (bench.decoding.run_benchmark) on a tiny catalogue, HF on: both
engines return only legal, unique items and the result has every figure the report needs; plus
the catalogue, the HF trie lookup and the legality measure checked against direct computations."""

from __future__ import annotations

import numpy as np
import torch

from bench.decoding import allowed_table, hf_tokens_to_items, make_catalogue, quality, run_benchmark

CASE_KEYS = {"calls", "requests_per_call", "requests_per_s", "p50_ms", "p99_ms", "gflop_per_call", "gflops",
             "peak_fraction", "legality", "uniqueness", "min_ms", "cpu_p50_ms", "gflops_best"}


def test_tiny_benchmark_is_legal_and_complete():
    result = run_benchmark([300], [8], reps=1, hf_reps=1, budget_s=5.0, with_hf=True, threads=1, rows=32)
    assert {"load_start", "load_end", "threads", "rows_per_call", "cases"} <= set(result)
    (row,) = result["cases"]
    assert row["items"] == 300 and row["beam"] == 8 and row["speedup"] > 0 and row["speedup_cpu"] > 0
    for engine in ("oxygen", "hf"):
        case = row[engine]
        assert CASE_KEYS <= set(case)
        assert case["legality"] == 1.0 and case["uniqueness"] == 1.0
        assert case["requests_per_call"] == 4 and case["calls"] == 1 and case["gflops"] > 0


def test_catalogue_and_trie_lookup():
    widths = (8, 8, 8)
    trie = make_catalogue(100, widths, seed=3)
    assert len(trie) == 100 and len({tuple(c) for c in trie.codes.tolist()}) == 100
    assert (trie.codes.max(axis=0) < np.array(widths)).all()
    table = allowed_table(trie, widths)
    offs = np.cumsum((0,) + widths)
    for path in trie.codes.tolist()[:20]:  # every prefix of a real path allows its next code
        toks = [2 + int(offs[l]) + c for l, c in enumerate(path)]
        for l in range(3):
            assert toks[l] in table[tuple(toks[:l])]
            assert [t - 2 - int(offs[l]) for t in table[tuple(toks[:l])]] == trie.allowed(path[:l]).tolist()
    seqs = torch.tensor([[0] + toks, [0, 2, 2 + 8, 2 + 16 + 7]])
    got = hf_tokens_to_items(seqs, trie, widths)
    assert got[0] == trie.item_of(path) and got[1] == trie.item_of([0, 0, 7])


def test_quality_counts_illegal_and_duplicates():
    assert quality([[1, 2], [3, 3]], {1, 2, 3}) == (1.0, 0.5)
    assert quality([[1, None], [9, 2]], {1, 2}) == (0.5, 1.0)
