"""HR/NDCG/Recall@K and per-group breakdowns against hand-computed values and slow loop references."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oxygen.eval.metrics import (
    as_ranked,
    hit_rate,
    metrics_by_group,
    ndcg,
    ranking_metrics,
    recall,
    target_ranks,
)


def slow_hr(ranked: list[list[int]], targets: list[int], k: int) -> float:
    return sum(t in r[:k] for r, t in zip(ranked, targets)) / len(ranked)


def slow_ndcg(ranked: list[list[int]], targets: list[int], k: int) -> float:
    total = 0.0
    for r, t in zip(ranked, targets):
        for pos, item in enumerate(r[:k], start=1):
            if item == t:
                total += 1.0 / math.log2(pos + 1)
                break
    return total / len(ranked)


def slow_recall(ranked: list[list[int]], relevant: list[set[int]], k: int) -> float:
    return sum(len(set(r[:k]) & rel) / len(rel) for r, rel in zip(ranked, relevant)) / len(ranked)


def test_hand_computed():
    ranked = np.array([[5, 3, 9], [1, 2, -1], [7, 8, 4], [4, 4, 4]])
    targets = np.array([3, 7, 4, 4])
    # ranks: 2, absent, 3, 1
    assert list(target_ranks(ranked, targets)) == [2, 0, 3, 1]
    assert hit_rate(ranked, targets, 1) == pytest.approx(1 / 4)
    assert hit_rate(ranked, targets, 2) == pytest.approx(2 / 4)
    assert hit_rate(ranked, targets, 3) == pytest.approx(3 / 4)
    assert ndcg(ranked, targets, 3) == pytest.approx((1 / math.log2(3) + 1 / math.log2(4) + 1) / 4)
    assert ndcg(ranked, targets, 1) == pytest.approx(1 / 4)
    m = ranking_metrics(ranked, targets, ks=(1, 3))
    assert m["hr@3"] == m["recall@3"] == pytest.approx(0.75)


def test_every_row_counts_and_short_lists():
    # a row that returned nothing and a target that is also in the history both count as rows
    ranked = [[], [2], [3, 2, 1]]
    assert hit_rate(ranked, [1, 2, 1], 10) == pytest.approx(2 / 3)
    assert as_ranked(ranked).shape == (3, 3)
    assert (as_ranked(ranked)[0] == -1).all()


def test_recall_sets_and_duplicates():
    ranked = [[1, 1, 2, 3], [9, 8, 7, 6]]
    relevant = [{1, 2, 5}, {6}]
    assert recall(ranked, relevant, 2) == pytest.approx((1 / 3 + 0) / 2)   # duplicate 1 counts once
    assert recall(ranked, relevant, 4) == pytest.approx((2 / 3 + 1) / 2)
    padded = np.array([[1, 2, 5], [6, -1, -1]])
    assert recall(ranked, padded, 4) == recall(ranked, relevant, 4)


def test_by_group():
    ranked = np.array([[1, 2], [3, 4], [5, 6], [7, 8]])
    targets = np.array([1, 9, 6, 8])
    out = metrics_by_group(ranked, targets, ["cart", "search", "cart", None], ks=(1, 2))
    assert set(out) == {"cart", "search"}
    assert out["cart"]["rows"] == 2 and out["cart"]["hr@1"] == 0.5 and out["cart"]["hr@2"] == 1.0
    assert out["search"]["hr@2"] == 0.0


@pytest.mark.parametrize("bad,match", [
    (lambda: hit_rate([[1]], [1, 2], 1), "targets"),
    (lambda: hit_rate([[1]], [-3], 1), ">= 0"),
    (lambda: ndcg([[1]], [1], 0), "K must be"),
    (lambda: recall([[1]], [set()], 1), "at least one"),
    (lambda: as_ranked(np.zeros(3, dtype=np.int64)), "2-d"),
    (lambda: metrics_by_group([[1]], [1], ["a", "b"]), "group labels"),
])
def test_bad_input_is_explained(bad, match):
    with pytest.raises(ValueError, match=match):
        bad()


rows_st = st.lists(st.tuples(st.lists(st.integers(0, 12), max_size=8), st.integers(0, 12),
                             st.sets(st.integers(0, 12), min_size=1, max_size=4)),
                   min_size=1, max_size=20)


@settings(max_examples=150, deadline=None)
@given(rows=rows_st, k=st.integers(1, 10))
def test_matches_slow_references(rows, k):
    ranked = [r for r, _, _ in rows]
    targets = [t for _, t, _ in rows]
    relevant = [rel for _, _, rel in rows]
    assert hit_rate(ranked, targets, k) == pytest.approx(slow_hr(ranked, targets, k))
    assert ndcg(ranked, targets, k) == pytest.approx(slow_ndcg(ranked, targets, k))
    assert recall(ranked, relevant, k) == pytest.approx(slow_recall(ranked, relevant, k))
    assert recall(ranked, np.array(targets), k) == pytest.approx(slow_hr(ranked, targets, k))
    groups = [("a", "b")[t % 2] for t in targets]
    for g, m in metrics_by_group(ranked, targets, groups, ks=(k,)).items():
        idx = [i for i, x in enumerate(groups) if x == g]
        assert m[f"ndcg@{k}"] == pytest.approx(slow_ndcg([ranked[i] for i in idx],
                                                         [targets[i] for i in idx], k))
