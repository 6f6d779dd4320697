"""Train the unified list-wise ranking model and its point-wise baselines on logged impressions.

    python -m apps.train_ranker --data runs/demo/world --out runs/ranker [--models listwise,pointwise,per_scenario]
        [--seeds 0,1,2] [--config configs/ranker.yaml] [--set epochs=4]

Models (all selected on valid AUC, reported once on test): `listwise` (one model for every
scenario, a user's requests packed with the causal request mask: the reward model), `pointwise`
(one model for every scenario, each candidate scored alone), `per_scenario` (one point-wise model
per scenario). Writes OUT/ranker.pt (the list-wise model: what the reward service loads),
OUT/metrics.json (test AUC and GAUC per model, scenario and head; valid selection; seconds; with
`--seeds 0,1,2` every seed's reports and, per scenario, a paired bootstrap over test users of the
list-wise model's click AUC minus each baseline's, each user's AUC averaged over the seeds) and
OUT/curves.png. Each finished (seed, model) is kept in OUT/seeds/seed{N}/ ({model}.json: report
and per-user AUCs with the settings it ran under; the list-wise model's ranker.pt and curves);
a later run with the same --out, data and config reuses it, so seeds and models can run as
separate processes or sessions (`--seeds 1 --models pointwise`, ...) and one run with `--seeds
0,1,2` then merges them (`--fresh` retrains). OUT/ranker.pt and OUT/curves.* are copies of the
config seed's (or, when --seeds leaves it out, the first seed's). A dataset without
impressions.jsonl (Amazon) trains on its rows' logged positives with `negatives` sampled negatives
each.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

from apps.cli import add_common, run
from apps.kept import keep, load_kept
from oxygen.config import RankerConfig, load_config
from oxygen.data.io import load_dataset, load_impressions
from oxygen.data.schema import SCENARIOS
from oxygen.eval.seeds import paired_bootstrap
from oxygen.rl.rank_data import RankSpace, Request, negative_weights, requests_from_impressions, requests_from_rows
from oxygen.rl.rank_fit import Packed, evaluate, fit_ranker, pack, save_ranker, user_aucs
from oxygen.rl.ranking import FORMAT
from oxygen.training.curves import save_curves

MODELS = ("listwise", "pointwise", "per_scenario")


def split_requests(root: Path, ds, cfg: RankerConfig) -> tuple[dict[str, list[Request]], str]:
    """Requests per split: the logged impressions, or rows + sampled negatives without them."""
    if any((root / f"impressions{ext}").exists() for ext in (".jsonl", ".parquet")):
        imps = load_impressions(root, known_items=set(ds.item_ids))
        return {s: requests_from_impressions([i for i in imps if i.split == s]) for s in ("train", "valid", "test")}, \
            "impressions"
    weights = negative_weights(ds.splits["train"], ds.item_ids, cfg.negative_power)
    return {s: requests_from_rows(ds.splits[s], ds.item_ids, cfg.negatives, cfg.seed + k, weights)
            for k, s in enumerate(("train", "valid", "test"))}, "rows + sampled negatives"


def train_one(cfg: RankerConfig, space: RankSpace, packed: dict[str, Packed]) -> tuple:
    """Fit on train, select on valid; (model, fit result, test report, test per-user click AUCs)."""
    model, result = fit_ranker(cfg, space, packed["train"], packed["valid"])
    return model, result, evaluate(model, packed["test"]), user_aucs(model, packed["test"])


def per_scenario(cfg: RankerConfig, space: RankSpace, reqs: dict[str, list[Request]], rows) -> tuple[dict, dict]:
    """One point-wise model per scenario: each scenario's test report and selection (a scenario
    without requests in some split is reported as skipped, saying which), and its per-user AUCs."""
    out, users = {}, {}
    for s in SCENARIOS:
        sub = {k: [r for r in v if r.scenario == s] for k, v in reqs.items()}
        if missing := [k for k, v in sub.items() if not v]:
            out[s] = {"skipped": f"no {s} requests in {', '.join(missing)}"}
            continue
        packed = {k: pack(space, r, rows, cfg) for k, r in sub.items()}
        _, result, report, per_user = train_one(cfg.model_copy(update={"listwise": False}), space, packed)
        out[s] = {**report["by_scenario"][s], "best_epoch": result.best_epoch}
        users[s] = per_user[s]
    return out, users


def paired(users: dict[str, list[dict]], a: str, b: str) -> dict:
    """Per scope: paired bootstrap over users of (model a - model b) test click AUC, each user's
    AUC averaged over the seeds (users with an AUC under both models in every seed)."""
    out = {}
    for scope in sorted(set.intersection(*(set(d) for d in users[a] + users[b]))):
        common = sorted(set.intersection(*(set(d[scope]) for d in users[a] + users[b])))
        if len(common) >= 2:
            mean = {m: np.array([np.mean([d[scope][u] for d in users[m]]) for u in common]) for m in (a, b)}
            out[scope] = {"users": len(common), **paired_bootstrap(mean[a], mean[b])}
    return out


LISTWISE_ONLY = {"request_bias"}  # settings the point-wise models ignore


def model_key(data: Path, model: str, cfg: RankerConfig) -> dict:
    """What a kept (seed, model) result must match to be reused: data folder, model and config
    (bar the seed, which names the file, the thread count and, for a point-wise model, the list-wise
    only settings) and the model format."""
    skip = {"seed", "threads"} | (LISTWISE_ONLY if model != "listwise" else set())
    return {"data": str(data.resolve()), "model": model, "format": FORMAT, "config": cfg.model_dump(exclude=skip)}


def seed_result(cfg: RankerConfig, space: RankSpace, reqs: dict[str, list[Request]], rows, models: list[str],
                data: Path, seed_dir: Path, fresh: bool) -> tuple[dict, dict]:
    """One seed's (reports, users) by model: each model's kept SEED_DIR/{model}.json unless
    `fresh` (the list-wise one only with its SEED_DIR/ranker.pt), else trained now and kept."""
    reports, users, packed = {}, {}, {}
    for name in models:
        path, key = seed_dir / f"{name}.json", model_key(data, name, cfg)
        kept = None if fresh else load_kept(path, key, f"seed {cfg.seed} {name}")
        if kept is not None and name == "listwise" and not (seed_dir / "ranker.pt").exists():
            print(f"{seed_dir / 'ranker.pt'}: missing beside the kept list-wise result; retraining it")
            kept = None
        if kept is None:
            if name != "per_scenario" and not packed:
                packed = {s: pack(space, r, rows, cfg) for s, r in reqs.items()}
            kept = run_model(cfg, space, reqs, rows, name, packed, seed_dir)
            keep(path, key, kept)
        reports[name], users[name] = kept["report"], kept["users"]
    return reports, users


def run_model(cfg: RankerConfig, space: RankSpace, reqs: dict[str, list[Request]], rows, name: str,
              packed: dict[str, Packed], seed_dir: Path) -> dict:
    """One model at `cfg.seed`: {"report": test report with selection and seconds, "users":
    per-user click AUCs} (the list-wise checkpoint and curves go to `seed_dir`)."""
    t0 = time.time()
    if name == "per_scenario":
        by_scenario, users = per_scenario(cfg, space, reqs, rows)
        report = {"by_scenario": by_scenario}
    else:
        model, result, report, users = train_one(cfg.model_copy(update={"listwise": name == "listwise"}),
                                                 space, packed)
        report = {**report, "best_epoch": result.best_epoch, "best_valid": result.best_valid}
        if name == "listwise":
            save_ranker(model, space, seed_dir / "ranker.pt")
            save_curves(result.history, seed_dir / "curves.png", title=f"unified list-wise ranker, seed {cfg.seed}")
    return {"report": {**report, "seconds": round(time.time() - t0, 1)}, "users": users}


def main(argv: list[str] | None = None) -> dict:
    """Parse, train the requested models for each seed, write the checkpoint, metrics and curves."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, type=Path, help="dataset folder (a shop world writes impressions)")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {MODELS}")
    ap.add_argument("--seeds", default=None, help="comma-separated seeds (default: the config's seed); with "
                    "several, metrics.json adds each seed's reports and paired tests over users")
    ap.add_argument("--fresh", action="store_true", help="retrain seeds kept in OUT/seeds/ by an earlier run")
    add_common(ap, config="optional YAML RankerConfig")
    a = ap.parse_args(argv)
    models = [m.strip() for m in a.models.split(",") if m.strip()]
    if bad := [m for m in models if m not in MODELS]:
        raise SystemExit(f"--models: unknown {bad}; choose from {MODELS}")
    cfg = load_config(a.config, RankerConfig, sets=a.set)
    seeds = [int(x) for x in a.seeds.split(",")] if a.seeds else [cfg.seed]
    ds = load_dataset(a.data)
    rows = [r for s in ds.splits.values() for r in s]
    space = RankSpace.fit(ds.items, ds.splits["train"])
    reqs, source = split_requests(a.data, ds, cfg)
    out: dict = {"data": str(a.data), "source": source, "config": cfg.model_dump(), "seeds": seeds,
                 "requests": {s: len(r) for s, r in reqs.items()}}
    main_seed = cfg.seed if cfg.seed in seeds else seeds[0]
    runs = [seed_result(cfg.model_copy(update={"seed": seed}), space, reqs, rows, models, a.data,
                        a.out / "seeds" / f"seed{seed}", a.fresh) for seed in seeds]
    if "listwise" in models:  # the reward service's checkpoint: the main seed's
        for name in ("ranker.pt", "curves.png", "curves.json"):
            shutil.copyfile(a.out / "seeds" / f"seed{main_seed}" / name, a.out / name)
    out["models"] = {m: {**runs[0][0][m], "by_seed": [r[m] for r, _ in runs]} for m in models}
    users = {m: [u[m] for _, u in runs] for m in models}
    out["paired_click_auc"] = {f"listwise_vs_{m}": paired(users, "listwise", m) for m in models
                               if m != "listwise" and "listwise" in models}
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "metrics.json").write_text(json.dumps(out, indent=1))
    print(json.dumps({m: v.get("all", {}) for m, v in out["models"].items()}, indent=1))
    return out


if __name__ == "__main__":
    run(main)
