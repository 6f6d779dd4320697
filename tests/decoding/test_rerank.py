"""Re-ranking (oxygen.decoding.rerank): the mixture score against a brute-force reference, the two extremes, pools."""

from __future__ import annotations

import numpy as np
import pytest

from oxygen.decoding.rerank import rerank


def _reference(items, logp, dist, w, k):
    """Brute force: score every item of the union, sort by (-score, beam rank, then item id)."""
    union = [i for i in items.tolist() if i >= 0] + sorted(dist)
    first = {}
    for n, i in enumerate(union):
        first.setdefault(i, n if n < len(items) else len(items) + i)
    beam = {i: float(np.exp(lp)) for i, lp in zip(items.tolist(), logp.tolist()) if i >= 0}
    score = {i: (1 - w) * beam.get(i, 0.0) + w * dist.get(i, 0.0) for i in first}
    return sorted(first, key=lambda i: (-score[i], first[i]))[:k]


def _top(items, logp, dists, w, k, allowed=None):
    return rerank(items, logp, (w, dists), k, allowed)[0]


def test_matches_reference_on_random_cases():
    g = np.random.default_rng(0)
    for _ in range(50):
        items = g.choice(30, size=(1, 8), replace=False)
        logp = np.sort(np.log(g.dirichlet(np.ones(8))))[::-1][None].copy()
        dist = {int(i): float(p) for i, p in zip(g.choice(30, 5, replace=False), g.dirichlet(np.ones(5)))}
        w = float(g.uniform())
        got = _top(items, logp, [dist], w, 6)[0].tolist()
        assert got == _reference(items[0], logp[0], dist, w, 6)


def test_extremes_pools_and_padding():
    items, logp = np.array([[5, 3, -1]]), np.log(np.array([[0.6, 0.3, 1e-9]]))
    dist = {7: 0.9, 3: 0.1}
    assert _top(items, logp, [dist], 0.0, 3).tolist() == [[5, 3, -1]]  # w = 0: the beam as is
    assert _top(items, logp, [dist], 1.0, 3).tolist() == [[7, 3, 5]]  # w = 1: transitions first
    assert _top(items, logp, [dist], 0.5, 3, [{3, 5}]).tolist() == [[5, 3, -1]]  # 7 not in the pool
    assert _top(items, logp, [{}], 0.5, 2).tolist() == [[5, 3]]
    with pytest.raises(ValueError, match="mixture weights"):
        _top(items, logp, [dist], 1.5, 3)


def test_scores_are_the_mixture_and_per_request_weights_and_pools():
    items = np.array([[5, 3], [5, 3]])
    logp = np.log(np.array([[0.6, 0.3], [0.6, 0.3]]))
    ids, scores = rerank(items, logp, (np.array([0.0, 0.5]), [{7: 1.0}, {7: 1.0}]), 3, [None, {3, 5, 7}])
    assert ids.tolist() == [[5, 3, -1], [7, 5, 3]]
    assert np.allclose(scores[0, :2], [0.6, 0.3]) and np.isneginf(scores[0, 2])
    assert np.allclose(scores[1], [0.5, 0.3, 0.15])
