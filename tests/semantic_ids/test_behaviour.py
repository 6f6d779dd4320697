"""Swing pair mining against a brute-force reference, and contrastive behaviour embeddings."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pytest

from oxygen.semantic_ids.behaviour import (
    BehaviourParams,
    PairSet,
    SwingParams,
    mine_pairs,
    random_embeddings,
    train_item_embeddings,
)


def brute_force_swing(users: list[str], seqs: list[list[int]], alpha: float, consec: float) -> dict:
    """Direct formula: every item pair x every unordered user pair, plus consecutive pairs per user."""
    sets: dict[str, set[int]] = {}
    adj: dict[str, set[tuple[int, int]]] = {}
    for u, s in zip(users, seqs):
        sets.setdefault(u, set()).update(s)
        adj.setdefault(u, set()).update((min(a, b), max(a, b)) for a, b in zip(s, s[1:]) if a != b)
    names = list(sets)
    items = sorted(set().union(*sets.values()))
    out: dict[tuple[int, int], float] = {}
    for i, j in combinations(items, 2):
        score = 0.0
        for u, v in combinations(names, 2):
            if {i, j} <= sets[u] and {i, j} <= sets[v]:
                w = 1 / math.sqrt(len(sets[u])) / math.sqrt(len(sets[v]))
                score += w / (alpha + len(sets[u] & sets[v]))
        score += consec * sum((i, j) in adj[u] for u in names)
        if score > 0:
            out[(i, j)] = score
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_swing_matches_brute_force(seed: int):
    g = np.random.default_rng(seed)
    users = [f"u{g.integers(0, 8)}" for _ in range(25)]
    seqs = [list(map(int, g.integers(0, 12, size=g.integers(1, 6)))) for _ in users]
    for alpha, consec in [(1.0, 1.0), (0.5, 0.0), (3.0, 0.25)]:
        got = mine_pairs(users, seqs, SwingParams(alpha, consec, max_users_per_item=1000)).as_dict()
        want = brute_force_swing(users, seqs, alpha, consec)
        assert got.keys() == want.keys()
        for k in want:
            assert got[k] == pytest.approx(want[k], rel=1e-5)


def test_swing_prefers_pairs_of_users_with_little_other_overlap():
    # (0, 1) is shared by two users who share nothing else; (2, 3) by two users who share 6 items
    users = ["a", "b", "c", "d"]
    seqs = [[0, 9, 1], [1, 8, 0], [2, 3, 4, 5, 6, 7], [3, 2, 4, 5, 6, 7]]
    pairs = mine_pairs(users, seqs, SwingParams(consecutive_weight=0.0)).as_dict()
    assert pairs[(0, 1)] > pairs[(2, 3)] > 0


def test_pairset_sorted_and_ordered():
    p = mine_pairs(["a", "a", "b"], [[3, 1, 2], [2, 5], [5, 1, 3]])
    assert (p.a < p.b).all() and (p.weight > 0).all()
    keys = list(zip(p.a.tolist(), p.b.tolist()))
    assert keys == sorted(keys)


def test_user_cap_limits_users_per_item():
    users = [f"u{k}" for k in range(6)]
    seqs = [[0, 1]] * 6
    full = mine_pairs(users, seqs, SwingParams(consecutive_weight=0.0, max_users_per_item=100)).as_dict()
    capped = mine_pairs(users, seqs, SwingParams(consecutive_weight=0.0, max_users_per_item=3)).as_dict()
    # 15 user pairs without the cap, 3 with it, each worth (1/2) / (1 + 2)
    assert full[(0, 1)] == pytest.approx(15 / 6) and capped[(0, 1)] == pytest.approx(3 / 6)


def _clustered_sessions(n_clusters: int, per: int, users: int, seed: int) -> tuple[list[str], list[list[int]]]:
    """Each user buys 4 items from one cluster of `per` items."""
    g = np.random.default_rng(seed)
    names, seqs = [], []
    for u in range(users):
        c = int(g.integers(0, n_clusters))
        seqs.append([int(c * per + k) for k in g.choice(per, size=4, replace=False)])
        names.append(f"u{u}")
    return names, seqs


def test_cooccurring_items_end_closer_than_random_pairs():
    names, seqs = _clustered_sessions(n_clusters=5, per=8, users=300, seed=0)
    n = 40 + 5  # 5 items never bought
    pairs = mine_pairs(names, seqs)
    x = train_item_embeddings(pairs, n, BehaviourParams(dim=16, epochs=20, batch_size=64, seed=0))
    assert x.shape == (n, 16) and x.dtype == np.float32
    assert np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
    sim = x[:40] @ x[:40].T
    same = np.equal.outer(np.arange(40) // 8, np.arange(40) // 8) & ~np.eye(40, dtype=bool)
    assert sim[same].mean() > sim[~same & ~np.eye(40, dtype=bool)].mean() + 0.3
    # items in no pair keep their deterministic start vector
    assert np.allclose(x[40:], random_embeddings(n, 16, 0)[40:], atol=1e-6)


def test_training_is_deterministic_and_respects_init():
    names, seqs = _clustered_sessions(3, 5, 60, seed=1)
    pairs = mine_pairs(names, seqs)
    p = BehaviourParams(dim=8, epochs=2, batch_size=16, seed=3)
    assert np.array_equal(train_item_embeddings(pairs, 16, p), train_item_embeddings(pairs, 16, p))
    init = random_embeddings(16, 12, 99)
    x = train_item_embeddings(pairs, 16, p, init=init)
    assert x.shape == (16, 12) and np.allclose(x[15], init[15], atol=1e-6)  # item 15 never bought


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="n_items"):
        train_item_embeddings(PairSet(np.array([0]), np.array([5]), np.array([1.0], np.float32)), 3)
    with pytest.raises(ValueError, match="one user per row"):
        mine_pairs(["a"], [[1, 2], [3]])
