"""Reward benchmarks: does the reward track the shop world's truth, and how fast is the reward actor.

    python -m bench.rewards --data W --bundle B --ranker R/ranker.pt --out runs/bench/rewards.json
        [--requests 1000] [--group 8] [--callers 4] [--seed 0] [--split test|valid]

Validity (evaluation only: the world's feedback model is read here and nowhere in the rewards):
for a seeded sample of test (or, to choose between rewards, valid) requests, groups of G items
come from two sources — `policy` (the SFT bundle's top-G in the request's scenario pool: the groups
post-training will score) and `pool` (G uniform items of that pool: mostly items the user does not
need, whose true values differ only by quality and price fit) — and each item's true expected
value is the feedback model's funnel probabilities mixed exactly as the ranking reward mixes the
ranker's (RewardConfig.value, the same price unit). Per scenario: the mean within-group Spearman
correlation (what group-relative advantages see) and the pooled one, of the ranking reward and of
the mapped total, against the truth; the items' train popularity is the model-free reference.
Throughput: the mapping in process (items/s per batch size, queries already embedded) and the Ray
reward actor with `--callers` concurrent callers sending 16 requests each, cold (every search query
new to the actor: the text encoder runs) and warm.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr
from tqdm.auto import tqdm

from apps.cli import write_report
from oxygen.config import RewardConfig
from oxygen.data.io import load_dataset
from oxygen.data.schema import Row
from oxygen.eval.ab import request_day, user_index
from oxygen.recommenders.bundled import BundleRecommender
from oxygen.rl.rewards import RewardMapping, RewardSources, expected_value, load_mapping
from oxygen.world.world import World


def truth(world: World, rows: list[Row], groups: np.ndarray, cfg: RewardConfig, price_unit: float) -> np.ndarray:
    """Float[B, G]: the feedback model's expected value of each item (NaN for -1)."""
    out = np.full(groups.shape, np.nan)
    price = world.catalogue.price
    for b, row in enumerate(tqdm(rows, desc="truth", leave=False)):
        ok = groups[b] >= 0
        items = groups[b][ok]
        p = world.feedback.probabilities(user_index(row.user_id), request_day(row, world.calendar), row.scenario,
                                         row.trigger, items, row.query)
        out[b, ok] = expected_value(p[None], price[items][None], cfg.value, price_unit)[0]
    return out


def spearman(a: np.ndarray, b: np.ndarray, within: bool) -> float:
    """Mean within-group (rows with >= 3 items and non-constant values) or pooled Spearman rho."""
    if not within:
        ok = ~np.isnan(b)
        return float(spearmanr(a[ok], b[ok]).statistic)
    rhos = []
    for x, y in zip(a, b):
        ok = ~np.isnan(y)
        if ok.sum() >= 3 and np.ptp(y[ok]) > 0 and np.ptp(x[ok]) > 0:
            rhos.append(spearmanr(x[ok], y[ok]).statistic)
    return float(np.mean(rhos)) if rhos else float("nan")


def validity(mapping: RewardMapping, world: World, rows: list[Row], groups: np.ndarray, cfg: RewardConfig,
             popularity: np.ndarray) -> dict:
    """Per scenario (and all): Spearman of the ranking reward, of the mapped total and (a reference
    without a model) of the items' train popularity (`popularity` Float[items]) vs the truth."""
    out = mapping(rows, groups)
    true = truth(world, rows, groups, cfg, mapping.rewards["ranking"].price_unit)
    pop = np.where(groups >= 0, popularity[np.maximum(groups, 0)], 0.0)
    scen = np.array([r.scenario for r in rows])
    report = {}
    for s in ["all", *sorted(set(scen))]:
        sel = np.ones(len(rows), bool) if s == "all" else scen == s
        report[s] = {"groups": int(sel.sum()), "truth_within_std": round(float(np.nanmean(np.nanstd(true[sel], 1))), 4)}
        for name, values in (("ranking", out.parts["ranking"]), ("total", out.total), ("popularity", pop)):
            report[s][f"{name}_spearman_within"] = round(spearman(values[sel], true[sel], True), 4)
            report[s][f"{name}_spearman_pooled"] = round(spearman(values[sel], true[sel], False), 4)
    return report


def pool_groups(rec: BundleRecommender, rows: list[Row], g: int, seed: int) -> np.ndarray:
    """Int[B, G]: G distinct uniform items of each row's scenario pool."""
    rng = np.random.default_rng(seed)
    pools = {s: np.asarray(spec.pool) for s, spec in rec.bundle.scenarios.items()}
    everything = rec.bundle.space.item_ids
    return np.stack([rng.choice(pools.get(r.scenario, everything), g, replace=False) for r in rows])


def in_process(mapping: RewardMapping, rows: list[Row], groups: np.ndarray) -> dict:
    """Items/s of the mapping called directly, per batch size (warm: the queries are embedded)."""
    out = {}
    for bs in (16, 64, 256):
        n = min(len(rows), 4 * bs)
        t0 = time.perf_counter()
        for a in range(0, n, bs):
            mapping(rows[a:a + bs], groups[a:a + bs])
        out[str(bs)] = round(n * groups.shape[1] / (time.perf_counter() - t0), 1)
    return out


def through_actor(sources: RewardSources, cfg: RewardConfig, rows: list[Row], groups: np.ndarray,
                  callers: int) -> dict:
    """Items/s through the Ray reward actor with `callers` concurrent callers of 16 requests."""
    import ray

    from oxygen.rl.actors import start_reward_actor

    ray.init(num_cpus=max(2, callers), include_dashboard=False, log_to_driver=False)
    try:
        actor = start_reward_actor(sources, cfg)
        parts = [(rows[a:a + 16], groups[a:a + 16]) for a in range(0, len(rows) - 15, 16)]
        items = sum(g.size for _, g in parts)
        out = {"callers": callers, "items": items}
        for name in ("cold", "warm"):  # cold: every search query is new to the actor (text encoder runs)
            t0 = time.perf_counter()
            pending = []
            for p in parts:
                pending.append(actor.score.remote(*p))
                if len(pending) >= callers:
                    ray.get(pending.pop(0))
            ray.get(pending)
            out[f"{name}_items_per_s"] = round(items / (time.perf_counter() - t0), 1)
        stats = ray.get(actor.stats.remote())
    finally:
        ray.shutdown()
    return {**out, "mean_batch_requests": round(stats["mean_batch"], 1), "batches": stats["batches"]}


def main(argv: list[str] | None = None) -> dict:
    """Parse, measure, write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--bundle", required=True, type=Path)
    ap.add_argument("--ranker", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--callers", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--split", default="test", choices=("valid", "test"), help="valid: to choose between rewards")
    a = ap.parse_args(argv)
    cfg = RewardConfig()
    sources = RewardSources(str(a.data), str(a.bundle), str(a.ranker))
    world, ds = World.load(a.data), load_dataset(a.data, splits=("train", a.split))
    test = ds.splits[a.split]
    popularity = np.bincount([r.target for r in ds.splits["train"]], minlength=world.catalogue.n).astype(float)
    rng = np.random.default_rng(a.seed)
    rows = [test[i] for i in np.sort(rng.choice(len(test), min(a.requests, len(test)), replace=False))]
    mapping = load_mapping(sources, cfg)
    rec = BundleRecommender(mapping.rewards["relevance"].bundle)
    groups = {"policy": rec.recommend(rows, a.group), "pool": pool_groups(rec, rows, a.group, a.seed)}
    report = {"data": str(a.data), "split": a.split, "bundle": str(a.bundle), "ranker": str(a.ranker), "requests": len(rows),
              "group": a.group, "config": cfg.model_dump(),
              "validity": {src: validity(mapping, world, rows, g, cfg, popularity) for src, g in groups.items()},
              "in_process_items_per_s": in_process(mapping, rows, groups["policy"]),
              "actor": through_actor(sources, cfg, rows, groups["policy"], a.callers)}
    write_report(a.out, report, indent=1)
    print(json.dumps({k: report[k] for k in ("validity", "in_process_items_per_s", "actor")}, indent=1))
    return report


if __name__ == "__main__":
    main()
