"""`pop` and `markov` on tiny hand-made data give the expected lists; the sparse transition scores
match a slow dict-based reference; top_k matches a stable argsort."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from oxygen.config import MarkovConfig, PopConfig
from oxygen.data.schema import Item, Row
from oxygen.recommenders.base import ItemIndex, top_k
from oxygen.recommenders.markov import MarkovRecommender, Transitions, transition_counts
from oxygen.recommenders.pop import PopRecommender

ITEMS = [Item(item_id=i) for i in range(6)]          # ID-only catalogue: no text at all
TRAIN = [
    Row(user_id="u1", history=[0], target=1),
    Row(user_id="u1", history=[0, 1], target=2),     # chained row: 0->1 and u1's items count once
    Row(user_id="u2", history=[1], target=2),
    Row(user_id="u3", history=[3], target=1),
    Row(user_id="u4", history=[1], target=3),
]


def row(history: list[int]) -> Row:
    return Row(user_id="q", history=history, target=0)


def test_pop_counts_distinct_users_and_breaks_ties_by_id():
    rec = PopRecommender().fit(TRAIN, [], ITEMS)
    # users per item: 0:1  1:4  2:2  3:2  4:0  5:0
    assert rec.counts.tolist() == [1, 4, 2, 2, 0, 0]
    assert rec.recommend([row([]), row([5])], 4).tolist() == [[1, 2, 3, 0]] * 2
    assert rec.recommend([row([])], 8).tolist() == [[1, 2, 3, 0, 4, 5, -1, -1]]
    excl = PopRecommender(PopConfig(exclude_history=True)).fit(TRAIN, [], ITEMS)
    assert excl.recommend([row([1, 0])], 4).tolist() == [[2, 3, 4, 5]]


def test_markov_last_item_then_back_off_then_popularity():
    # P[0] = {1: 1}; P[1] = {2: 2/3, 3: 1/3}; P[3] = {1: 1}; pop as above
    strong = MarkovRecommender(MarkovConfig(decay=0.5)).fit(TRAIN, [], ITEMS)
    assert strong.recommend([row([0, 1])], 6).tolist() == [[2, 1, 3, 0, 4, 5]]
    weak = MarkovRecommender(MarkovConfig(decay=0.1)).fit(TRAIN, [], ITEMS)
    assert weak.recommend([row([0, 1])], 6).tolist() == [[2, 3, 1, 0, 4, 5]]
    # no history / an item without successors: popularity order
    assert weak.recommend([row([]), row([5])], 4).tolist() == [[1, 2, 3, 0]] * 2
    # max_back=1 ignores the earlier item entirely: 1 falls to its popularity slot
    last = MarkovRecommender(MarkovConfig(max_back=1)).fit(TRAIN, [], ITEMS)
    assert last.recommend([row([0, 1])], 3).tolist() == [[2, 3, 1]]


def test_markov_options():
    train = TRAIN + [Row(user_id="u5", history=[4], target=4)]
    loops = MarkovRecommender(MarkovConfig()).fit(train, [], ITEMS)
    assert loops.recommend([row([4])], 1).tolist() == [[4]]
    no_loops = MarkovRecommender(MarkovConfig(self_loops=False)).fit(train, [], ITEMS)
    assert no_loops.recommend([row([4])], 1).tolist() == [[1]]
    sym = MarkovRecommender(MarkovConfig(symmetric=1.0)).fit(TRAIN, [], ITEMS)
    assert sym.recommend([row([2])], 1).tolist() == [[1]]     # 1->2 seen, so 2->1 with symmetric
    excl = MarkovRecommender(MarkovConfig(exclude_history=True)).fit(TRAIN, [], ITEMS)
    assert excl.recommend([row([2, 1])], 2).tolist() == [[3, 0]]


def slow_scores(rows: list[Row], train: list[Row], num_items: int, cfg: MarkovConfig) -> np.ndarray:
    pairs = {(r.user_id, a, b) for r in train
             for a, b in zip([*r.history, r.target][:-1], [*r.history, r.target][1:])}
    counts: dict[int, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    for _, a, b in pairs:
        counts[a][b] += 1.0
    out = np.zeros((len(rows), num_items))
    for i, r in enumerate(rows):
        for j, a in enumerate(reversed(r.history[-cfg.max_back:])):
            total = sum(counts[a].values())
            for b, c in counts[a].items():
                out[i, b] += cfg.decay ** j * c / total
    return out


def test_transition_scores_match_slow_reference():
    rng = np.random.default_rng(0)
    train = [Row(user_id=f"u{rng.integers(8)}", history=rng.integers(0, 15, rng.integers(0, 6)).tolist(),
                 target=int(rng.integers(0, 15))) for _ in range(60)]
    queries = [row(rng.integers(0, 15, rng.integers(0, 7)).tolist()) for _ in range(20)]
    cfg = MarkovConfig(decay=0.5, max_back=4)
    index = ItemIndex([Item(item_id=i) for i in range(15)])
    trans = Transitions(transition_counts(train, index, cfg), 15)
    rec = MarkovRecommender(cfg).fit(train, [], [Item(item_id=i) for i in range(15)])
    fast = trans.scores([rec._sources(q) for q in queries])
    np.testing.assert_allclose(fast, slow_scores(queries, train, 15, cfg), atol=1e-12)


def test_top_k_matches_stable_argsort():
    rng = np.random.default_rng(1)
    for _ in range(300):
        n, v, k = rng.integers(1, 6), rng.integers(1, 25), rng.integers(1, 30)
        scores = rng.integers(0, 4, (n, v)).astype(float)
        scores[rng.random((n, v)) < 0.2] = -np.inf
        ids = np.arange(v) * 3 + 1
        cols = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        best = np.take_along_axis(scores, cols, axis=1)
        ref = np.full((n, k), -1)
        ref[:, : cols.shape[1]] = np.where(np.isneginf(best), -1, ids[cols])
        assert (top_k(scores, k, ids) == ref).all()


def test_errors_are_clear():
    with pytest.raises(RuntimeError, match="call fit"):
        PopRecommender().recommend([row([])], 3)
    with pytest.raises(ValueError, match="not in the catalogue"):
        MarkovRecommender().fit([Row(user_id="u", history=[99], target=1)], [], ITEMS)
    with pytest.raises(ValueError, match="k must be"):
        PopRecommender().fit(TRAIN, [], ITEMS).recommend([row([])], 0)
