"""SID quality metrics (coverage, purity, collisions, load balance) and a printable table.

Definitions (N items, L levels, widths K_1..K_L; a level-l cluster is a distinct code prefix of
length l). The OxygenREC paper names these quantities without formulas; ours are:
- coverage@l     = distinct length-l prefixes / (K_1 * ... * K_l)          (joint path occupancy)
- coverage_n@l   = distinct length-l prefixes / min(N, K_1 * ... * K_l)   (1.0 = as spread as possible)
- purity@l/cat_d = over items with a category at depth d, the fraction whose depth-d category equals
                   the majority depth-d category of their level-l cluster (ties: smallest name).
                   `purity_l1_top` = purity of level-1 clusters w.r.t. the top category.
- collisions (BEFORE resolution, on raw codes): for every occupied full code path, the number of
  items on it; quantiles P90/P99/P999 of that count, plus the share of items that shared a path
  and the maximum group size.
- load balance: items per occupied level-1 cluster and per occupied level-2 prefix, P25/P75/P90.
Quantiles are nearest-rank: the value at sorted position ceil(q * n) - 1 (numpy "inverted_cdf").

    m = sid_metrics(final_codes, widths, raw_codes=raw, categories=[["Office", "Paper"], ...])
    print(format_table(m))
"""

from __future__ import annotations

from collections import Counter

import numpy as np

QUANTILES = {"p90": 0.90, "p99": 0.99, "p999": 0.999}
BALANCE = {"p25": 0.25, "p75": 0.75, "p90": 0.90}


def nearest_rank(values: np.ndarray, q: float) -> float:
    """Nearest-rank quantile q in (0, 1] of a non-empty 1-d array."""
    return float(np.quantile(np.asarray(values), q, method="inverted_cdf"))


def prefix_ids(codes: np.ndarray, length: int) -> np.ndarray:
    """Int64[N] id of each row's code prefix of `length` (rows with equal prefixes share an id)."""
    _, inv = np.unique(codes[:, :length], axis=0, return_inverse=True)
    return inv.reshape(-1).astype(np.int64)


def coverage(codes: np.ndarray, widths: list[int]) -> dict[str, float]:
    """coverage@l and coverage_n@l for l = 1..L (definitions in the module docstring)."""
    n = codes.shape[0]
    out: dict[str, float] = {}
    space = 1
    for l in range(1, codes.shape[1] + 1):
        space *= int(widths[l - 1])
        distinct = len(np.unique(codes[:, :l], axis=0))
        out[f"coverage@{l}"] = distinct / space
        out[f"coverage_n@{l}"] = distinct / min(n, space)
    return out


def purity(codes: np.ndarray, categories: list[list[str]], max_depth: int = 3) -> dict[str, float]:
    """purity@l/cat_d for code level l and category depth d (items without depth-d category skipped)."""
    out: dict[str, float] = {}
    depth = min(max_depth, max((len(c) for c in categories), default=0))
    for l in range(1, codes.shape[1] + 1):
        cluster = prefix_ids(codes, l)
        for d in range(1, depth + 1):
            groups: dict[int, Counter] = {}
            for k, cats in zip(cluster.tolist(), categories):
                if len(cats) >= d:
                    groups.setdefault(k, Counter())[cats[d - 1]] += 1
            total = sum(sum(c.values()) for c in groups.values())
            if total:
                majority = sum(max(c.values()) for c in groups.values())
                out[f"purity@{l}/cat{d}"] = majority / total
    if "purity@1/cat1" in out:
        out["purity_l1_top"] = out["purity@1/cat1"]
    return out


def collisions(raw_codes: np.ndarray) -> dict[str, float]:
    """Items-per-full-path quantiles before resolution, share of colliding items, largest group."""
    _, counts = np.unique(raw_codes, axis=0, return_counts=True)
    out = {f"collision_{k}": nearest_rank(counts, q) for k, q in QUANTILES.items()}
    out["collision_max"] = float(counts.max())
    out["collision_item_share"] = float(counts[counts > 1].sum() / raw_codes.shape[0])
    out["collision_paths"] = float((counts > 1).sum())
    return out


def load_balance(codes: np.ndarray) -> dict[str, float]:
    """Items per occupied level-1 cluster and level-2 prefix: P25/P75/P90 and max."""
    out: dict[str, float] = {}
    for l in range(1, min(2, codes.shape[1]) + 1):
        _, counts = np.unique(codes[:, :l], axis=0, return_counts=True)
        for k, q in BALANCE.items():
            out[f"load@{l}_{k}"] = nearest_rank(counts, q)
        out[f"load@{l}_max"] = float(counts.max())
    return out


def sid_metrics(codes: np.ndarray, widths: list[int], raw_codes: np.ndarray | None = None,
                categories: list[list[str]] | None = None) -> dict[str, float]:
    """All metrics of final `codes` Int64[N, L] (collisions from `raw_codes`, purity if categories)."""
    if codes.ndim != 2 or codes.shape[1] != len(widths):
        raise ValueError(f"codes must be [N, {len(widths)}] for widths {widths}; got {codes.shape}")
    out: dict[str, float] = {"n_items": float(codes.shape[0]), "levels": float(codes.shape[1])}
    out.update(coverage(codes, widths))
    out.update(collisions(raw_codes if raw_codes is not None else codes))
    out.update(load_balance(codes))
    if categories is not None:
        if len(categories) != codes.shape[0]:
            raise ValueError(f"{len(categories)} category paths for {codes.shape[0]} items; give one per item")
        out.update(purity(codes, categories))
    return out


def format_table(metrics: dict[str, float], title: str = "SID metrics") -> str:
    """Plain two-column text table of the metrics (fractions as percentages)."""
    lines = [title, "-" * 40]
    for k, v in metrics.items():
        if k.startswith(("coverage", "purity", "collision_item_share")):
            text = f"{100 * v:.2f}%"
        elif float(v).is_integer():
            text = f"{int(v)}"
        else:
            text = f"{v:.4g}"
        lines.append(f"{k:<28}{text:>12}")
    return "\n".join(lines)
