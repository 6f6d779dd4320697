"""Ablations of the paper's tables, reproduced in kind on any dataset with scenarios (the shop world):

- Table 5  instruction placement: none / right_of_bos / replace_bos / add_to_bos / left_of_bos / two_tokens
- Table 7  IGR and Q2I on/off
- query    query-derived reasoning instruction for search on/off
- Table 8  one unified model vs one model per scenario
- Table 9  the trigger replaced by the default trigger at inference

Every variant trains with the same GenerativeConfig apart from its switch, selects its epoch on valid
and reports test HR@10 / NDCG@10 per scenario.

    report = run_ablation("placement", dataset, base_cfg)      # {variant: {scenario: metrics}}
"""

from __future__ import annotations

import math
from typing import Callable

from oxygen.config import GenerativeConfig
from oxygen.data.io import Dataset
from oxygen.data.schema import Row
from oxygen.eval.ranking import evaluate_rows
from oxygen.training.generative import GenerativeRecommender

PLACEMENTS = ("none", "right_of_bos", "replace_bos", "add_to_bos", "left_of_bos", "two_tokens")
Report = dict[str, dict[str, dict[str, float]]]


def with_model(cfg: GenerativeConfig, **switches: object) -> GenerativeConfig:
    """`cfg` with model switches changed."""
    return cfg.model_copy(update={"model": cfg.model.model_copy(update=switches)})


def _scores(rec: GenerativeRecommender, rows: list[Row]) -> dict[str, dict[str, float]]:
    out = evaluate_rows(rec, rows, k=10)
    return {"overall": out["overall"], **out["by_scenario"]}


def _train(cfg: GenerativeConfig, ds: Dataset, keep: Callable[[Row], bool] = lambda r: True):
    train = [r for r in ds.splits["train"] if keep(r)]
    valid = [r for r in ds.splits["valid"] if keep(r)]
    return GenerativeRecommender(cfg).fit(train, valid, ds.items)


def variants(kind: str, base: GenerativeConfig) -> dict[str, GenerativeConfig]:
    """The configs compared by one ablation kind (placement, igr_q2i, query)."""
    if kind == "placement":
        return {p: with_model(base, instruction_placement=p) for p in PLACEMENTS}
    if kind == "igr_q2i":
        return {f"igr={i} q2i={q}": with_model(base, use_igr=i, use_q2i=q)
                for i in (True, False) for q in (True, False)}
    if kind == "query":
        return {"query I_r on": base, "query I_r off": base.model_copy(update={"use_queries": False})}
    raise ValueError(f"unknown ablation '{kind}'; choose placement, igr_q2i, query, unified, trigger")


def run_ablation(kind: str, ds: Dataset, base: GenerativeConfig) -> Report:
    """Train and evaluate every variant of `kind`; {variant: {scenario or 'overall': metrics}}."""
    test = ds.splits["test"]
    if kind == "unified":
        return unified_vs_per_scenario(ds, base)
    if kind == "trigger":
        rec = _train(base, ds)
        no_trigger = [r.model_copy(update={"trigger": None}) for r in test]
        return {"trigger given": _scores(rec, test), "default trigger": _scores(rec, no_trigger)}
    return {name: _scores(_train(cfg, ds), test) for name, cfg in variants(kind, base).items()}


def equal_steps(base: GenerativeConfig, all_rows: int, rows: int) -> GenerativeConfig:
    """`base` with its epoch budget scaled so `rows` train rows get the optimiser steps that
    `all_rows` get in base.train.epochs epochs."""
    if rows < 1:
        raise ValueError("a per-scenario model needs at least one train row of its scenario")
    epochs = math.ceil(base.train.epochs * all_rows / rows)
    return base.model_copy(update={"train": base.train.model_copy(update={"epochs": epochs})})


def unified_vs_per_scenario(ds: Dataset, base: GenerativeConfig) -> Report:
    """Table 8: one model on all scenarios vs one model trained on each scenario's rows alone.

    Each per-scenario model gets as many optimiser steps as the unified one (its epoch budget is
    scaled by all rows / its rows; early stopping on its own valid rows still applies), so a small
    scenario's model is not simply under-trained."""
    test, train = ds.splits["test"], ds.splits["train"]
    report: Report = {"unified": _scores(_train(base, ds), test), "per-scenario": {}}
    for s in sorted({r.scenario for r in test if r.scenario}):
        cfg = equal_steps(base, len(train), sum(r.scenario == s for r in train))
        rec = _train(cfg, ds, keep=lambda r, s=s: r.scenario == s)
        report["per-scenario"][s] = {**_scores(rec, [r for r in test if r.scenario == s])["overall"],
                                     "epochs_budget": cfg.train.epochs, "best_epoch": rec.fit_info["best_epoch"]}
    return report


def to_markdown(report: Report, metric: str = "hr@10") -> str:
    """A variants x scenarios table of `metric`."""
    cols = sorted({c for v in report.values() for c in v if c != "overall"}) + ["overall"]
    lines = ["| variant | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, by in report.items():
        cells = [f"{by[c][metric]:.4f}" if c in by and metric in by[c] else "" for c in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
