"""Residual k-means: shapes, determinism, residual reconstruction, width rule, tiny catalogues."""

from __future__ import annotations

import numpy as np
import pytest

from oxygen.semantic_ids.rq_kmeans import assign, default_width, residual_kmeans


def _blobs(n: int, d: int, centers: int, seed: int) -> np.ndarray:
    g = np.random.default_rng(seed)
    c = g.standard_normal((centers, d)) * 5
    return (c[g.integers(0, centers, n)] + g.standard_normal((n, d)) * 0.3).astype(np.float32)


def test_codes_shapes_and_range():
    x = _blobs(400, 8, 6, 0)
    codes, cents = residual_kmeans(x, [6, 4, 3], seed=0)
    assert codes.shape == (400, 3) and codes.dtype == np.int64
    assert [c.shape for c in cents] == [(6, 8), (4, 8), (3, 8)]
    assert (codes >= 0).all() and (codes < np.array([6, 4, 3])).all()


def test_each_level_is_nearest_centroid_of_the_residual():
    x = _blobs(300, 5, 4, 1)
    codes, cents = residual_kmeans(x, [4, 4], seed=0)
    r = x.astype(np.float64)
    for level, c in enumerate(cents):
        d = ((r[:, None, :] - c[None].astype(np.float64)) ** 2).sum(-1)   # slow reference
        chosen = d[np.arange(len(r)), codes[:, level]]
        assert np.allclose(chosen, d.min(1), rtol=1e-4, atol=1e-4)
        r = r - c[codes[:, level]]
    # the first level explains well-separated blobs (centres 10 apart on the axes)
    g = np.random.default_rng(0)
    y = (np.eye(5)[g.integers(0, 4, 400)] * 10 + g.standard_normal((400, 5)) * 0.3).astype(np.float32)
    c1, cy = residual_kmeans(y, [4], seed=0)
    assert ((y - cy[0][c1[:, 0]]) ** 2).sum() < 0.05 * ((y - y.mean(0)) ** 2).sum()


def test_deterministic_with_seed():
    x = _blobs(500, 6, 10, 2)
    a, ca = residual_kmeans(x, [8, 8, 8], seed=5)
    b, cb = residual_kmeans(x, [8, 8, 8], seed=5)
    assert np.array_equal(a, b) and all(np.array_equal(p, q) for p, q in zip(ca, cb))


def test_fewer_points_than_width_and_identical_points():
    x = np.ones((5, 4), dtype=np.float32)
    codes, cents = residual_kmeans(x, [16, 16], seed=0)
    assert codes.shape == (5, 2) and (codes < 16).all()
    assert len({tuple(r) for r in codes.tolist()}) == 1        # identical points, one path
    x2 = _blobs(10, 4, 10, 3)
    codes2, cents2 = residual_kmeans(x2, [32], seed=0)
    assert len(set(codes2[:, 0].tolist())) >= 5 and cents2[0].shape == (32, 4)


def test_assign_matches_brute_force():
    g = np.random.default_rng(0)
    x, c = g.standard_normal((50, 3)).astype(np.float32), g.standard_normal((7, 3)).astype(np.float32)
    idx, dist = assign(x, c)
    d = ((x[:, None] - c[None]) ** 2).sum(-1)
    assert np.array_equal(idx, d.argmin(1)) and np.allclose(dist, d.min(1), atol=1e-5)


def test_default_width_rule():
    assert default_width(3459) == 256 and default_width(10) == 256
    assert default_width(100_000) == 512 and default_width(1_000_000) == 1024
    assert default_width(1_000_000, levels=2) == 8192
    with pytest.raises(ValueError):
        default_width(0)


def test_bad_embeddings_raise():
    with pytest.raises(ValueError, match="NaN"):
        residual_kmeans(np.full((4, 2), np.nan, dtype=np.float32), [2])
    with pytest.raises(ValueError, match="2-d"):
        residual_kmeans(np.zeros(4, dtype=np.float32), [2])
