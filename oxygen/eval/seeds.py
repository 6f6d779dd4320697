"""Repeated runs over seeds and the statistics that say whether a gap between two models is real.

A single run's HR@10 on a few thousand test rows has a standard error of ~0.005, and a model's
seed (initialisation, data order, SID k-means) moves it by as much again, so a claim "A beats B"
needs both: the spread over seeds and a paired test over rows.

- `reseed(cfg, seed)`: a copy of any (nested) pydantic config with every `seed` field set to `seed`.
- `mean_std(values)`: mean and sample standard deviation (0 for one value).
- `rank_scores(ranks, k)`: per-row HR@k and NDCG@k from 1-based target ranks (0 = missed).
- `paired_bootstrap(a, b)`: mean of a - b over rows with a 95% bootstrap interval (rows resampled
  with replacement, the same rows for both models) and the share of resamples with a - b <= 0.

    ra = np.mean([rank_scores(r, 10)["hr"] for r in ranks_a_by_seed], axis=0)   # Float[n] per row
    paired_bootstrap(ra, rb)      # {'diff': 0.008, 'lo': 0.003, 'hi': 0.013, 'p_le_0': 0.001}
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel


def reseed(cfg: BaseModel, seed: int) -> BaseModel:
    """`cfg` with every field named `seed` (at any depth of nested configs) set to `seed`."""
    update: dict[str, object] = {}
    for name in type(cfg).model_fields:
        value = getattr(cfg, name)
        if name == "seed":
            update[name] = int(seed)
        elif isinstance(value, BaseModel):
            update[name] = reseed(value, seed)
    return cfg.model_copy(update=update)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """(mean, sample standard deviation with ddof=1; 0.0 for a single value)."""
    v = np.asarray(list(values), dtype=np.float64)
    if v.size == 0:
        raise ValueError("mean_std needs at least one value")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def rank_scores(ranks: Sequence[int] | np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Per-row {'hr': Float[n], 'ndcg': Float[n]} at cut-off k from 1-based ranks (0 = not found)."""
    r = np.asarray(ranks, dtype=np.int64)
    if (r < 0).any():
        raise ValueError(f"ranks must be >= 0 (0 = target not in the list); got min {r.min()}")
    hit = (r >= 1) & (r <= k)
    gain = np.where(hit, 1.0 / np.log2(np.maximum(r, 1) + 1.0), 0.0)
    return {"hr": hit.astype(np.float64), "ndcg": gain}


def bootstrap_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    """Int64[n_boot, n]: row indices drawn with replacement, one resample per line."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def paired_bootstrap(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray,
                     n_boot: int = 2000, seed: int = 0) -> dict[str, float]:
    """Paired bootstrap of mean(a - b) over rows: {'diff', 'lo', 'hi' (95% interval), 'p_le_0'}.

    a, b: Float[n], each row's score under two models (e.g. HR@10 averaged over seeds)."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size == 0:
        raise ValueError(f"paired scores must be two non-empty 1-d arrays of one length; got {x.shape}, {y.shape}")
    d = x - y
    means = d[bootstrap_indices(d.size, n_boot, seed)].mean(axis=1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    return {"diff": float(d.mean()), "lo": float(lo), "hi": float(hi), "p_le_0": float((means <= 0).mean())}
