"""Ablations of the paper's tables, reproduced in kind on any dataset with scenarios (the shop world):

- Table 5  instruction placement: none / right_of_bos / replace_bos / add_to_bos / left_of_bos / two_tokens
- Table 7  IGR and Q2I on/off
- query    query-derived reasoning instruction for search on/off
- Table 8  one unified model vs one model per scenario
- Table 9  the trigger replaced by the default trigger at inference

Every variant trains with the same GenerativeConfig apart from its switch, selects its epoch on valid
and reports test HR@10 / NDCG@10 per scenario.

    report = run_ablation("placement", dataset, base_cfg)      # {variant: {scenario: metrics}}
    mean = mean_report([report_seed0, report_seed1])            # {variant: {scenario: {metric: [mean, std]}}}
"""

from __future__ import annotations

import math
from typing import Callable

from oxygen.config import GenerativeConfig
from oxygen.data.io import Dataset
from oxygen.data.schema import Row
from oxygen.eval.ranking import evaluate_rows
from oxygen.eval.seeds import mean_std, paired_bootstrap, rank_scores
from oxygen.recommenders.base import Recommender
from oxygen.recommenders.registry import build

PLACEMENTS = ("none", "right_of_bos", "replace_bos", "add_to_bos", "left_of_bos", "two_tokens")
Report = dict[str, dict[str, dict[str, float]]]


def with_model(cfg: GenerativeConfig, **switches: object) -> GenerativeConfig:
    """`cfg` with model switches changed."""
    return cfg.model_copy(update={"model": cfg.model.model_copy(update=switches)})


def _scores(rec: Recommender, rows: list[Row]) -> dict[str, dict[str, float]]:
    """{'overall': metrics + 'ranks' (per-row test ranks, for paired tests), scenario: metrics}."""
    out = evaluate_rows(rec, rows, k=10, keep_ranks=True)
    return {"overall": {**out["overall"], "ranks": out["ranks"]}, **out["by_scenario"]}


def _train(cfg: GenerativeConfig, ds: Dataset, keep: Callable[[Row], bool] = lambda r: True) -> Recommender:
    """The generative model of `cfg` (built by the registry) fitted on the kept train/valid rows."""
    train = [r for r in ds.splits["train"] if keep(r)]
    valid = [r for r in ds.splits["valid"] if keep(r)]
    return build(cfg.variant, cfg).fit(train, valid, ds.items)


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


def mean_report(reports: list[Report]) -> dict[str, dict[str, dict[str, list[float]]]]:
    """{variant: {scenario: {metric: [mean, std]}}} over the reports of several seeds (the same
    variants and scenarios in each; per-row ranks are left out)."""
    if not reports:
        raise ValueError("mean_report needs at least one report")
    out: dict[str, dict[str, dict[str, list[float]]]] = {}
    for name, by in reports[0].items():
        if any(name not in r for r in reports):
            raise ValueError(f"variant '{name}' is missing from some seeds' reports; rerun them with one --kind")
        out[name] = {}
        for col, metrics in by.items():
            keys = [m for m, v in metrics.items() if isinstance(v, (int, float))]
            out[name][col] = {m: list(mean_std([r[name][col][m] for r in reports])) for m in keys}
    return out


def paired_gaps(reports: list[Report], metric: str = "hr@10") -> dict[str, dict[str, float]]:
    """Overall `metric` gap of every variant to the first one: paired bootstrap over test rows of the
    seed-averaged per-row scores ({variant: {'diff', 'lo', 'hi', 'p_le_0'}})."""
    kind, k = metric.split("@")
    names = list(reports[0])

    def per_row(name: str):
        return sum(rank_scores(r[name]["overall"]["ranks"], int(k))[kind] for r in reports) / len(reports)

    if any("ranks" not in r[n].get("overall", {}) for r in reports for n in names):
        raise ValueError("paired gaps need every variant's per-row test ranks ('overall'.'ranks'); "
                         "the per-scenario models of --kind unified have none")
    first = per_row(names[0])
    return {name: paired_bootstrap(per_row(name), first) for name in names[1:]}


def to_markdown_mean(mean: dict, gaps: dict[str, dict[str, float]] | None = None, metric: str = "hr@10") -> str:
    """A variants x scenarios table of `metric` as mean ± std, with the overall gap to the first
    variant [95% CI] when `gaps` is given."""
    cols = sorted({c for v in mean.values() for c in v if c != "overall"}) + ["overall"]
    head = cols + ([f"overall gap to '{next(iter(mean))}' [95% CI]"] if gaps is not None else [])
    lines = ["| variant | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
    for name, by in mean.items():
        cells = [f"{by[c][metric][0]:.4f} ± {by[c][metric][1]:.4f}" if c in by and metric in by[c] else "" for c in cols]
        if gaps is not None:
            g = gaps.get(name)
            cells.append(f"{g['diff']:+.4f} [{g['lo']:+.4f}, {g['hi']:+.4f}]" if g else "")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
