"""SID metrics against hand-computed values and slow pure-Python references."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from oxygen.semantic_ids.metrics import (
    collisions,
    coverage,
    format_table,
    load_balance,
    nearest_rank,
    purity,
    sid_metrics,
)

CODES = np.array([[0, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0], [1, 0, 0], [1, 0, 0]])
CATS = [["A", "x"], ["A", "y"], ["B", "x"], ["B", "x"], ["B", "z"], []]


def slow_quantile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[max(0, math.ceil(q * len(s)) - 1)]


def test_hand_made_example():
    cov = coverage(CODES, [2, 2, 4])
    assert cov["coverage@1"] == 2 / 2 and cov["coverage@2"] == 3 / 4 and cov["coverage@3"] == 4 / 16
    assert cov["coverage_n@3"] == 4 / 6 and cov["coverage_n@2"] == 3 / 4
    pur = purity(CODES, CATS)
    # level-1 clusters {0,1,2}: top A,A,B -> 2 ; {3,4} (item 5 has no category): B,B -> 2
    assert pur["purity@1/cat1"] == pytest.approx(4 / 5) and pur["purity_l1_top"] == pur["purity@1/cat1"]
    # level-1 at depth 2: {x,y,x} -> 2, {x,z} -> 1
    assert pur["purity@1/cat2"] == pytest.approx(3 / 5)
    assert pur["purity@3/cat1"] == pytest.approx(1.0)
    col = collisions(CODES)
    assert col["collision_max"] == 3 and col["collision_item_share"] == pytest.approx(3 / 6)
    assert col["collision_paths"] == 1 and col["collision_p90"] == 3     # counts 1,1,1,3
    lb = load_balance(CODES)
    assert lb["load@1_p25"] == 3 and lb["load@1_max"] == 3                # counts 3,3
    assert lb["load@2_p25"] == 1 and lb["load@2_p75"] == 3               # counts 2,1,3


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_codes_against_slow_reference(seed: int):
    g = np.random.default_rng(seed)
    codes = g.integers(0, 4, size=(200, 3))
    cats = [[f"t{g.integers(3)}", f"s{g.integers(5)}"][: g.integers(0, 3)] for _ in range(200)]
    m = sid_metrics(codes, [4, 4, 4], raw_codes=codes, categories=cats)
    paths = [tuple(r) for r in codes.tolist()]
    for l in (1, 2, 3):
        distinct = len({p[:l] for p in paths})
        assert m[f"coverage@{l}"] == pytest.approx(distinct / 4 ** l)
        assert m[f"coverage_n@{l}"] == pytest.approx(distinct / min(200, 4 ** l))
        for d in (1, 2):
            clusters: dict = {}
            for p, c in zip(paths, cats):
                if len(c) >= d:
                    clusters.setdefault(p[:l], []).append(c[d - 1])
            good = sum(Counter(v).most_common(1)[0][1] for v in clusters.values())
            assert m[f"purity@{l}/cat{d}"] == pytest.approx(good / sum(map(len, clusters.values())))
    counts = list(Counter(paths).values())
    for name, q in (("p90", 0.9), ("p99", 0.99), ("p999", 0.999)):
        assert m[f"collision_{name}"] == slow_quantile(counts, q)
    assert m["collision_item_share"] == pytest.approx(sum(c for c in counts if c > 1) / 200)
    for l in (1, 2):
        per = list(Counter(p[:l] for p in paths).values())
        for name, q in (("p25", 0.25), ("p75", 0.75), ("p90", 0.9)):
            assert m[f"load@{l}_{name}"] == slow_quantile(per, q)


def test_nearest_rank_and_table():
    assert nearest_rank(np.array([5, 1, 3, 2, 4]), 0.5) == 3
    assert nearest_rank(np.array([1, 2, 3, 4]), 0.25) == 1
    text = format_table(sid_metrics(CODES, [2, 2, 4], categories=CATS))
    assert "coverage@1" in text and "100.00%" in text and "purity_l1_top" in text


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="codes must be"):
        sid_metrics(CODES, [2, 2])
    with pytest.raises(ValueError, match="one per item"):
        sid_metrics(CODES, [2, 2, 4], categories=[["A"]])
