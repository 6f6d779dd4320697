"""Residual k-means (RQ-KMeans) with faiss: level l clusters the residual left by levels 1..l-1.

    codes, centroids = residual_kmeans(x, widths=[256, 256, 256], seed=0)
    # codes Int64[N, L]; centroids[l] Float32[K_l, D]; x ≈ sum_l centroids[l][codes[:, l]]

Deterministic given the seed (each level is seeded with seed + level): centroids start from
k-means++ seeding on a subsample (plain faiss random init often merges well-separated clusters),
then faiss.Kmeans (CPU, Lloyd, 20 iterations, at most 256 training points per centroid) refines. When a level
has fewer distinct points than its width K, k-means runs with as many clusters as there are points
and the remaining centroid rows are filled with far-away sentinels (never nearest, still valid
codes for collision resolution in `codebook`).

Default width (`default_width`): K = max(256, next power of two >= 8 * N^(1/L)), so the joint
space K^L is at least 512x the catalogue: 256 for the ~3.5k Amazon Office items (as MiniOneRec),
512 for 100k, 1024 for 1M items.
"""

from __future__ import annotations

import math

import faiss
import numpy as np
from tqdm import tqdm

FAR = 1e4  # sentinel centroid coordinate for unused cluster slots


def default_width(n_items: int, levels: int = 3) -> int:
    """Codebook width per level for a catalogue of `n_items` (rule in the module docstring)."""
    if n_items < 1 or levels < 1:
        raise ValueError(f"need n_items >= 1 and levels >= 1; got {n_items}, {levels}")
    target = 8.0 * n_items ** (1.0 / levels)
    return max(256, 1 << max(0, math.ceil(math.log2(target))))


def assign(x: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid of each row: (index Int64[N], squared distance Float32[N]); ties -> lowest index."""
    index = faiss.IndexFlatL2(centroids.shape[1])
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    dist, idx = index.search(np.ascontiguousarray(x, dtype=np.float32), 1)
    return idx[:, 0].astype(np.int64), dist[:, 0]


def kmeans_pp_init(x: np.ndarray, k: int, seed: int, sample: int = 32) -> np.ndarray:
    """k-means++ seeding, Float32[k, D], on a seeded subsample of at most `sample * k` rows of x."""
    g = np.random.default_rng(seed)
    pts = x[g.choice(len(x), size=min(len(x), sample * k), replace=False)].astype(np.float32)
    cent = np.empty((k, x.shape[1]), dtype=np.float32)
    cent[0] = pts[g.integers(len(pts))]
    d2 = ((pts - cent[0]) ** 2).sum(1)
    for j in range(1, k):
        total = float(d2.sum())
        nxt = int(g.choice(len(pts), p=d2 / total)) if total > 0 else int(g.integers(len(pts)))
        cent[j] = pts[nxt]
        d2 = np.minimum(d2, ((pts - cent[j]) ** 2).sum(1))
    return cent


def kmeans(x: np.ndarray, k: int, seed: int, niter: int = 20) -> np.ndarray:
    """Float32[k, D] centroids of `x` [N, D]; slots beyond the distinct-point count are sentinels."""
    n, d = x.shape
    k_eff = min(k, len(np.unique(x, axis=0)) if n <= 50_000 else n)
    cent = np.full((k, d), FAR, dtype=np.float32)
    for j in range(k - k_eff):
        cent[k_eff + j, j % d] += FAR * (1 + j // d)  # distinct far points
    if k_eff <= 1:
        cent[0] = x.mean(axis=0)
        return cent
    km = faiss.Kmeans(d, k_eff, niter=niter, seed=seed, verbose=False, spherical=False,
                      max_points_per_centroid=256)
    km.train(np.ascontiguousarray(x, dtype=np.float32), init_centroids=kmeans_pp_init(x, k_eff, seed))
    cent[:k_eff] = km.centroids
    return cent


def residual_kmeans(x: np.ndarray, widths: list[int], seed: int = 0,
                    niter: int = 20) -> tuple[np.ndarray, list[np.ndarray]]:
    """Codes Int64[N, L] and per-level centroids [K_l, D] of residual k-means over `x` [N, D]."""
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"embeddings must be a non-empty 2-d array [N, D]; got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("embeddings hold NaN or inf; check the encoder output")
    if not widths or min(widths) < 1:
        raise ValueError(f"widths must be a non-empty list of positive ints; got {widths}")
    residual = np.array(x, dtype=np.float32, copy=True)
    codes = np.zeros((x.shape[0], len(widths)), dtype=np.int64)
    centroids: list[np.ndarray] = []
    for level, k in enumerate(tqdm(widths, desc="rq-kmeans levels")):
        cent = kmeans(residual, k, seed + level, niter)
        idx, _ = assign(residual, cent)
        codes[:, level] = idx
        residual -= cent[idx]
        centroids.append(cent)
    return codes, centroids
