"""Evaluate any `Recommender` that returns ranked item lists: per split, overall and per scenario,
and the whole quality run behind `python -m apps.bench quality` (fit on train, select on valid,
report test) with its printable table.

    report = evaluate_rows(rec, test_rows)            # {'rows', 'overall': {...}, 'by_scenario'}
    result = quality_run(rec, load_dataset(dir))      # JSON-ready dict: test metrics at top level
    print(format_table(result))
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from oxygen.data.io import Dataset
from oxygen.data.schema import Row
from oxygen.eval.metrics import metrics_by_group, ranking_metrics, target_ranks
from oxygen.recommenders.base import Recommender

KS: tuple[int, ...] = (1, 3, 5, 10)
REPORT_KEYS: tuple[str, ...] = ("hr@1", "hr@3", "hr@5", "hr@10", "ndcg@3", "ndcg@5", "ndcg@10",
                                "recall@10")


def recommend_checked(rec: Recommender, rows: Sequence[Row], k: int) -> np.ndarray:
    """rec.recommend(rows, k), checked to be Int64[len(rows), k]; a clear error naming rec otherwise."""
    out = rec.recommend(rows, k)
    if not isinstance(out, np.ndarray) or out.shape != (len(rows), k):
        shape = getattr(out, "shape", type(out).__name__)
        raise ValueError(f"{type(rec).__name__}.recommend returned {shape}; it must return a numpy "
                         f"Int64[{len(rows)}, {k}] array of item ids padded with -1")
    if not np.issubdtype(out.dtype, np.integer):
        raise ValueError(f"{type(rec).__name__}.recommend returned dtype {out.dtype}; use int64 ids")
    return out.astype(np.int64, copy=False)


def _pick(metrics: dict[str, float]) -> dict[str, float]:
    return {key: metrics[key] for key in REPORT_KEYS if key in metrics}


def eval_split(rows: Sequence, n: int | None) -> list:
    """The rows a metric is measured on: all of them, or a fixed random sample of `n` in their
    order (seed 0, so every run asking for `n` of the same rows sees the same ones, and their ranks
    pair up)."""
    if n is None or n >= len(rows):
        return list(rows)
    return [rows[i] for i in np.sort(np.random.default_rng(0).choice(len(rows), n, replace=False))]


def evaluate_rows(rec: Recommender, rows: Sequence[Row], k: int = 10, keep_ranks: bool = False) -> dict:
    """{'rows': n, 'overall': metrics, 'by_scenario': {scenario: metrics + 'rows'}} on `rows`.

    `by_scenario` is empty when no row has a scenario; K values above k are skipped. With
    `keep_ranks`, 'ranks' holds each row's 1-based target rank in its top k (0 = missed), for paired
    statistics across models (oxygen.eval.seeds).
    """
    if not rows:
        raise ValueError("no rows to evaluate; the split is empty")
    ks = tuple(x for x in KS if x <= k)
    ranked = recommend_checked(rec, rows, k)
    targets = np.array([r.target for r in rows], dtype=np.int64)
    groups = [r.scenario for r in rows]
    by = {}
    if any(g is not None for g in groups):
        by = {g: {"rows": int(m["rows"]), **_pick(m)}
              for g, m in metrics_by_group(ranked, targets, groups, ks).items()}
    out = {"rows": len(rows), "overall": _pick(ranking_metrics(ranked, targets, ks)), "by_scenario": by}
    if keep_ranks:
        out["ranks"] = target_ranks(ranked, targets).tolist()
    return out


def quality_run(rec: Recommender, ds: Dataset, k: int = 10, refit: bool = False, keep_ranks: bool = False) -> dict:
    """Fit `rec` on train (valid for selection), evaluate valid and test; a JSON-ready dict with the
    test metrics at top level, 'params', 'train_seconds', 'valid', 'test', 'fit_info', 'config'.

    With `refit`, after selection (and the valid report of the selected model) the model is
    retrained on train + valid (`Recommender.refit`) before the one test evaluation. `keep_ranks`
    keeps the per-row test ranks (result['test']['ranks'])."""
    for split in ("train", "test"):
        if not ds.splits.get(split):
            raise ValueError(f"{ds.root}: {split}.jsonl is missing or empty; a quality run needs "
                             "train.jsonl and test.jsonl (valid.jsonl for model selection)")
    valid = ds.splits.get("valid", [])
    if refit and not valid:
        raise ValueError(f"{ds.root}: refit needs valid.jsonl (it selects on valid, then retrains on "
                         "train + valid); add valid rows or drop --refit")
    t0 = time.perf_counter()
    rec.fit(ds.splits["train"], valid, ds.items)
    train_seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    valid_report = evaluate_rows(rec, valid, k) if valid else None
    eval_seconds = time.perf_counter() - t1
    if refit:
        t0 = time.perf_counter()
        rec.refit(ds.splits["train"] + list(valid), ds.items)  # a list, or a split kept in Ray Data
        train_seconds += time.perf_counter() - t0
    t1 = time.perf_counter()
    test_report = evaluate_rows(rec, ds.splits["test"], k, keep_ranks)
    cfg = getattr(rec, "cfg", None)
    return {
        "model": rec.name, "data": str(ds.root), **test_report["overall"],
        "params": int(rec.num_params()), "train_seconds": round(train_seconds, 3),
        "eval_seconds": round(eval_seconds + time.perf_counter() - t1, 3), "refit": refit,
        "test": test_report, "valid": valid_report,
        "config": cfg.model_dump() if hasattr(cfg, "model_dump") else None,
        "fit_info": rec.fit_info,
    }


def _table_lines(title: str, report: dict) -> list[str]:
    keys = [key for key in REPORT_KEYS if key in report["overall"]]
    lines = [f"{title} ({report['rows']} rows)",
             f"{'':>12} " + " ".join(f"{key:>9}" for key in keys)]
    groups = [("overall", report["overall"])] + sorted(report["by_scenario"].items())
    for name, m in groups:
        lines.append(f"{name:>12} " + " ".join(f"{m[key]:>9.4f}" for key in keys))
    return lines


def format_table(result: dict) -> str:
    """Printable table of a `quality_run` result: test (and valid) overall and per scenario."""
    head = (f"model {result['model']}  params {result['params']:,}  "
            f"train {result['train_seconds']:.1f}s  data {result['data']}")
    lines = [head]
    lines += _table_lines("test", result["test"])
    if result.get("valid"):
        lines += _table_lines("valid", result["valid"])
    return "\n".join(lines)
