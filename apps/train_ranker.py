"""Train the unified list-wise ranking model and its point-wise baselines on logged impressions.

    python -m apps.train_ranker --data runs/demo/world --out runs/ranker [--models listwise,pointwise,per_scenario]
        [--config configs/ranker.yaml] [--set epochs=4]

Models (all selected on valid AUC, reported once on test): `listwise` (one model for every
scenario, a user's requests packed with the causal request mask: the reward model), `pointwise`
(one model for every scenario, each candidate scored alone), `per_scenario` (one point-wise model
per scenario). Writes OUT/ranker.pt (the list-wise model: what the reward service loads),
OUT/metrics.json (test AUC and GAUC per model, scenario and head; valid selection; seconds) and
OUT/curves.png. A dataset without impressions.jsonl (Amazon) trains on its rows' logged positives
with `negatives` sampled negatives each.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from apps.cli import add_common, run
from oxygen.config import RankerConfig, load_config
from oxygen.data.io import load_dataset, load_impressions
from oxygen.data.schema import SCENARIOS
from oxygen.rl.rank_data import RankSpace, Request, requests_from_impressions, requests_from_rows
from oxygen.rl.rank_fit import evaluate, fit_ranker, pack, save_ranker
from oxygen.training.curves import save_curves

MODELS = ("listwise", "pointwise", "per_scenario")


def split_requests(root: Path, ds, cfg: RankerConfig) -> tuple[dict[str, list[Request]], str]:
    """Requests per split: the logged impressions, or rows + sampled negatives without them."""
    if any((root / f"impressions{ext}").exists() for ext in (".jsonl", ".parquet")):
        imps = load_impressions(root, known_items=set(ds.item_ids))
        return {s: requests_from_impressions([i for i in imps if i.split == s]) for s in ("train", "valid", "test")}, \
            "impressions"
    return {s: requests_from_rows(ds.splits[s], ds.item_ids, cfg.negatives, cfg.seed + k)
            for k, s in enumerate(("train", "valid", "test"))}, "rows + sampled negatives"


def train_one(cfg: RankerConfig, space: RankSpace, reqs: dict[str, list[Request]], rows) -> tuple:
    """Fit on train, select on valid; (model, fit result, test report)."""
    packed = {s: pack(space, r, rows, cfg) for s, r in reqs.items()}
    model, result = fit_ranker(cfg, space, packed["train"], packed["valid"])
    return model, result, evaluate(model, packed["test"])


def per_scenario(cfg: RankerConfig, space: RankSpace, reqs: dict[str, list[Request]], rows) -> dict:
    """One point-wise model per scenario: each scenario's test report and its selection (a scenario
    without requests in some split is reported as skipped, saying which)."""
    out = {}
    for s in SCENARIOS:
        sub = {k: [r for r in v if r.scenario == s] for k, v in reqs.items()}
        if missing := [k for k, v in sub.items() if not v]:
            out[s] = {"skipped": f"no {s} requests in {', '.join(missing)}"}
            continue
        _, result, report = train_one(cfg.model_copy(update={"listwise": False}), space, sub, rows)
        out[s] = {**report["by_scenario"][s], "best_epoch": result.best_epoch}
    return out


def main(argv: list[str] | None = None) -> dict:
    """Parse, train the requested models, write the checkpoint, metrics and curves."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, type=Path, help="dataset folder (a shop world writes impressions)")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {MODELS}")
    add_common(ap, config="optional YAML RankerConfig")
    a = ap.parse_args(argv)
    models = [m.strip() for m in a.models.split(",") if m.strip()]
    if bad := [m for m in models if m not in MODELS]:
        raise SystemExit(f"--models: unknown {bad}; choose from {MODELS}")
    cfg = load_config(a.config, RankerConfig, sets=a.set)
    ds = load_dataset(a.data)
    rows = [r for s in ds.splits.values() for r in s]
    space = RankSpace.fit(ds.items, ds.splits["train"])
    reqs, source = split_requests(a.data, ds, cfg)
    out: dict = {"data": str(a.data), "source": source, "config": cfg.model_dump(),
                 "requests": {s: len(r) for s, r in reqs.items()}, "models": {}}
    for name in models:
        t0 = time.time()
        if name == "per_scenario":
            out["models"][name] = {"by_scenario": per_scenario(cfg, space, reqs, rows)}
        else:
            model, result, report = train_one(cfg.model_copy(update={"listwise": name == "listwise"}), space, reqs, rows)
            out["models"][name] = {**report, "best_epoch": result.best_epoch, "best_valid": result.best_valid}
            if name == "listwise":
                save_ranker(model, space, a.out / "ranker.pt")
                save_curves(result.history, a.out / "curves.png", title="unified list-wise ranker")
        out["models"][name]["seconds"] = round(time.time() - t0, 1)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "metrics.json").write_text(json.dumps(out, indent=1))
    print(json.dumps({m: v.get("all", {}) for m, v in out["models"].items()}, indent=1))
    return out


if __name__ == "__main__":
    run(main)
