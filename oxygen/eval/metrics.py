"""Ranking metrics: HR@K, NDCG@K, Recall@K from ranked lists (with per-group breakdowns), and AUC / GAUC of scores.

Every function takes `ranked`, the recommended item ids of each row best first: an Int64[n, k]
numpy array padded with -1, or a list of n lists of any lengths (padded here). A row for which the
model returned fewer than K items simply has fewer chances; every row counts, including rows whose
target also appears in the history. Only the first occurrence of an item in a row counts, so a
model that repeats an item gains nothing from it.

- HR@K: 1 if the target is in the top K, else 0, averaged over rows.
- NDCG@K: single relevant item, 1 / log2(rank + 1) with 1-based rank <= K, else 0 (ideal DCG = 1).
- Recall@K: |top K ∩ relevant| / |relevant| per row, for a set of relevant items per row; with one
  relevant item it equals HR@K.

    ranked = np.array([[5, 3, 9], [1, 2, -1]])
    ranking_metrics(ranked, np.array([3, 7]), ks=(1, 3))   # {'hr@1': 0.0, 'hr@3': 0.5, ...}
    metrics_by_group(ranked, targets, groups=["search", "cart"], ks=(10,))

Layer 1: imports nothing from oxygen.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PAD = -1
RankedLike = np.ndarray | Sequence[Sequence[int]]


def as_ranked(ranked: RankedLike) -> np.ndarray:
    """Int64[n, k] array of ranked ids (-1 padded) from an array or a list of lists of any lengths."""
    if isinstance(ranked, np.ndarray):
        if ranked.ndim != 2:
            raise ValueError(f"ranked must be 2-d Int64[n, k]; got shape {ranked.shape}; "
                             "give one list of item ids per row")
        if ranked.size and not np.issubdtype(ranked.dtype, np.integer):
            raise ValueError(f"ranked must hold integer item ids; got dtype {ranked.dtype}")
        return ranked.astype(np.int64, copy=False)
    rows = [list(r) for r in ranked]
    width = max((len(r) for r in rows), default=0)
    out = np.full((len(rows), width), PAD, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def _as_targets(targets: Sequence[int] | np.ndarray, n: int) -> np.ndarray:
    """Int64[n] targets, checked against the number of ranked rows."""
    t = np.asarray(targets, dtype=np.int64).reshape(-1)
    if t.shape[0] != n:
        raise ValueError(f"got {t.shape[0]} targets for {n} ranked rows; give one target per row")
    if (t < 0).any():
        raise ValueError(f"targets must be item ids >= 0; row {int(np.argmax(t < 0))} has {t.min()}")
    return t


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"K must be >= 1; got {k}")


def first_occurrence(ranked: np.ndarray) -> np.ndarray:
    """Bool[n, k]: True where ranked[i, j] is a real id (not -1) seen for the first time in row i."""
    n, k = ranked.shape
    if k == 0:
        return np.zeros((n, 0), dtype=bool)
    order = np.argsort(ranked, axis=1, kind="stable")
    srt = np.take_along_axis(ranked, order, axis=1)
    new = np.ones_like(srt, dtype=bool)
    new[:, 1:] = srt[:, 1:] != srt[:, :-1]
    first = np.zeros_like(new)
    np.put_along_axis(first, order, new, axis=1)
    return first & (ranked != PAD)


def target_ranks(ranked: RankedLike, targets: Sequence[int] | np.ndarray) -> np.ndarray:
    """Int64[n]: 1-based position of each row's target in its ranked list, 0 when absent."""
    r = as_ranked(ranked)
    t = _as_targets(targets, r.shape[0])
    hit = r == t[:, None]
    if hit.shape[1] == 0:
        return np.zeros(r.shape[0], dtype=np.int64)
    return np.where(hit.any(axis=1), hit.argmax(axis=1) + 1, 0).astype(np.int64)


def hit_rate(ranked: RankedLike, targets: Sequence[int] | np.ndarray, k: int) -> float:
    """HR@K: the fraction of rows whose target is among the first K items."""
    _check_k(k)
    ranks = target_ranks(ranked, targets)
    return float(((ranks >= 1) & (ranks <= k)).mean()) if ranks.size else 0.0


def ndcg(ranked: RankedLike, targets: Sequence[int] | np.ndarray, k: int) -> float:
    """NDCG@K with one relevant item per row: mean of 1/log2(rank + 1) over rows, 0 when rank > K."""
    _check_k(k)
    ranks = target_ranks(ranked, targets)
    if not ranks.size:
        return 0.0
    gain = np.where((ranks >= 1) & (ranks <= k), 1.0 / np.log2(np.maximum(ranks, 1) + 1.0), 0.0)
    return float(gain.mean())


def as_relevant(relevant: np.ndarray | Sequence[Sequence[int]] | Sequence[int], n: int) -> np.ndarray:
    """Int64[n, m] relevant ids (-1 padded, duplicates removed) from targets, lists or sets per row."""
    if isinstance(relevant, np.ndarray) and relevant.ndim == 1:
        return _as_targets(relevant, n)[:, None]
    if isinstance(relevant, np.ndarray):
        relevant = [[int(x) for x in row if x != PAD] for row in relevant.reshape(len(relevant), -1)]
    rows = [sorted({int(x) for x in r}) if not np.isscalar(r) else [int(r)] for r in relevant]
    if len(rows) != n:
        raise ValueError(f"got {len(rows)} relevant sets for {n} ranked rows; give one per row")
    for i, r in enumerate(rows):
        if not r or r[0] < 0:
            raise ValueError(f"row {i}: relevant set must hold at least one item id >= 0; got {r}")
    out = np.full((n, max((len(r) for r in rows), default=1)), PAD, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def recall(ranked: RankedLike, relevant: np.ndarray | Sequence[Sequence[int]] | Sequence[int],
           k: int) -> float:
    """Recall@K: mean over rows of |first K items ∩ relevant| / |relevant| (duplicates count once).

    `relevant` is Int64[n] (one target per row), Int64[n, m] padded with -1, or n lists/sets.
    """
    _check_k(k)
    r = as_ranked(ranked)
    rel = as_relevant(relevant, r.shape[0])
    top = r[:, :k]
    fresh = first_occurrence(top)
    match = (top[:, :, None] == rel[:, None, :]) & (rel[:, None, :] != PAD) & fresh[:, :, None]
    found = match.any(axis=2).sum(axis=1)
    size = (rel != PAD).sum(axis=1)
    return float((found / size).mean()) if r.shape[0] else 0.0


def ranking_metrics(ranked: RankedLike, targets: Sequence[int] | np.ndarray,
                    ks: Sequence[int] = (1, 3, 5, 10)) -> dict[str, float]:
    """{'hr@K', 'ndcg@K', 'recall@K'} for every K in `ks` (one target per row)."""
    r = as_ranked(ranked)
    out: dict[str, float] = {}
    for k in ks:
        out[f"hr@{k}"] = hit_rate(r, targets, k)
    for k in ks:
        out[f"ndcg@{k}"] = ndcg(r, targets, k)
    for k in ks:
        out[f"recall@{k}"] = recall(r, np.asarray(targets, dtype=np.int64), k)
    return out


def metrics_by_group(ranked: RankedLike, targets: Sequence[int] | np.ndarray,
                     groups: Sequence[str | None], ks: Sequence[int] = (1, 3, 5, 10)
                     ) -> dict[str, dict[str, float]]:
    """`ranking_metrics` of each group's rows (e.g. per scenario), plus 'rows' = the group's size.

    Rows whose group is None are left out of the breakdown (they still count in the overall figure).
    """
    r = as_ranked(ranked)
    t = _as_targets(targets, r.shape[0])
    if len(groups) != r.shape[0]:
        raise ValueError(f"got {len(groups)} group labels for {r.shape[0]} rows; give one per row")
    labels = np.array(["" if g is None else str(g) for g in groups], dtype=object)
    out: dict[str, dict[str, float]] = {}
    for g in sorted({str(g) for g in groups if g is not None}):
        mask = labels == g
        out[g] = {"rows": float(mask.sum()), **ranking_metrics(r[mask], t[mask], ks)}
    return out


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of Float[n] `scores` for Bool/0-1[n] `labels` (ties count half);
    NaN when only one class is present.

    >>> auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]))
    0.75
    """
    y = np.asarray(labels).astype(bool)
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    s = np.asarray(scores)[order]
    ranks = np.empty(len(s))
    _, start, counts = np.unique(s, return_index=True, return_counts=True)
    for a, c in zip(start, counts):  # average rank within ties
        ranks[a:a + c] = a + (c + 1) / 2
    r = np.empty(len(s))
    r[order] = ranks
    return float((r[y].sum() - pos * (pos + 1) / 2) / (pos * neg))


def group_aucs(scores: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> dict:
    """{group: (AUC, size)} for every group that holds both classes.

    >>> group_aucs(np.array([0.1, 0.9, 0.8, 0.2, 0.5]), np.array([0, 1, 0, 1, 1]), np.array([0, 0, 1, 1, 2]))
    {0: (1.0, 2), 1: (0.0, 2)}
    """
    groups, scores, labels = np.asarray(groups), np.asarray(scores), np.asarray(labels)
    order = np.argsort(groups, kind="stable")
    bounds = np.flatnonzero(np.diff(groups[order])) + 1
    out = {}
    for part in np.split(order, bounds) if len(order) else []:
        a = auc(scores[part], labels[part])
        if not np.isnan(a):
            out[groups[part[0]].item()] = (a, len(part))
    return out


def gauc(scores: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> float:
    """Group AUC: the mean of per-group AUCs weighted by group size, over the groups (e.g. users)
    that hold both classes; NaN when none does.

    >>> gauc(np.array([0.1, 0.9, 0.8, 0.2]), np.array([0, 1, 0, 1]), np.array([0, 0, 1, 1]))
    0.5
    """
    per = group_aucs(scores, labels, groups).values()
    weight = sum(n for _, n in per)
    return float(sum(a * n for a, n in per) / weight) if weight else float("nan")
