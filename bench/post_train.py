"""Post-training speed: rollout items/s (in process, and 1 or 2 Ray rollout actors) and learner
steps/s on a trained bundle; resident memory per rollout worker with the decoder tables shared
through the object store and with each worker building its own.

    python -m bench.post_train --bundle runs/demo/train/bundle --data runs/demo/world --out runs/bench/post_speed.json
        [--requests 64] [--rounds 3] [--group 8] [--memory-workers 2]
    python -m bench.post_train --catalogue 200000 --out runs/bench/post_memory_200k.json   # memory only, random bundle

Memory: `memory-workers` Ray rollout actors each generate one batch, then report rss (resident,
shared pages included), uss (pages only that process holds) and pss (shared pages split among
their processes), in MB, averaged over the workers (`memory_mb.own_tables` / `.shared_tables`);
`memory_mb.tables_mb` is the size of the shared tables.

Rollout: `rounds` batches of `requests` train rows, a group of `group` items each by beam sampling
(the generated items counted, old log-probs included). Learner: one update (2 passes, minibatches of
128 items) on such a batch with a constant reward, steps/s = optimiser steps / seconds.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from oxygen.config import PostTrainConfig, RolloutConfig
from oxygen.data.io import load_dataset
from oxygen.model.bundle import Bundle
from oxygen.rl.learner import Learner
from oxygen.rl.rollout import RolloutBatch, RolloutWorker


def rollout_speed(generate, rows, requests: int, rounds: int) -> float:
    """Generated items/s over `rounds` batches (after one warm-up batch)."""
    generate(rows[:requests], 0)
    t0, items = time.perf_counter(), 0
    for r in range(rounds):
        batch: RolloutBatch = generate(rows[r * requests:(r + 1) * requests], r + 1)
        items += int(batch.mask.sum())
    return round(items / (time.perf_counter() - t0), 1)


def ray_speed(bundle_dir: str, cfg: RolloutConfig, rows, requests: int, rounds: int, workers: int) -> float:
    """The same through `workers` Ray rollout actors (one CPU each)."""
    import ray

    from oxygen.rl.actors import RolloutActor, RolloutPool

    ray.init(num_cpus=max(2, workers), include_dashboard=False, log_to_driver=False)
    try:
        pool = RolloutPool([RolloutActor.options(num_cpus=1).remote(bundle_dir, cfg, 1) for _ in range(workers)])
        return rollout_speed(pool.generate, rows, requests, rounds)
    finally:
        ray.shutdown()


def worker_memory(bundle_dir: str, cfg: RolloutConfig, rows, workers: int, share: bool) -> dict[str, float]:
    """Mean rss/uss/pss (MB) of `workers` Ray rollout actors (ray.init first) after one batch each,
    with the decoder tables shared through the object store (`share`) or built by every worker."""
    import ray

    from oxygen.rl.actors import RolloutActor
    from oxygen.rl.rollout import decoder_tables

    tables = ray.put(decoder_tables(Bundle.load(bundle_dir))) if share else None
    actors = [RolloutActor.options(num_cpus=1).remote(bundle_dir, cfg, 1, tables) for _ in range(workers)]
    ray.get([a.generate.remote(rows[:8], k) for k, a in enumerate(actors)])
    mems = ray.get([a.memory.remote() for a in actors])
    for a in actors:
        ray.kill(a)
    return {k: round(float(np.mean([m[k] for m in mems])), 1) for k in mems[0]}


def memory_table(bundle_dir: str, cfg: RolloutConfig, rows, workers: int) -> dict:
    """`memory_mb`: per-worker memory with own and with shared tables, and the tables' size."""
    import ray

    from oxygen.rl.rollout import decoder_tables

    tables_mb = decoder_tables(Bundle.load(bundle_dir)).nbytes / 2 ** 20
    ray.init(num_cpus=max(2, workers), include_dashboard=False, log_to_driver=False)
    try:
        return {"workers": workers, "tables_mb": round(tables_mb, 1),
                "own_tables": worker_memory(bundle_dir, cfg, rows, workers, share=False),
                "shared_tables": worker_memory(bundle_dir, cfg, rows, workers, share=True)}
    finally:
        ray.shutdown()


def catalogue_memory(n_items: int, workers: int, group: int) -> dict:
    """Memory only, on a random-weight bundle of `n_items` items (bench.tiny_bundle.random_bundle)."""
    import tempfile

    from bench.tiny_bundle import random_bundle
    from oxygen.data.schema import Row

    with tempfile.TemporaryDirectory() as tmp:
        bundle = random_bundle(Path(tmp) / "b", n_items)
        ids = bundle.space.item_ids
        rows = [Row(user_id=f"u{k}", history=ids[[k, 2 * k + 1]].tolist(), target=int(ids[k]), scenario="homepage")
                for k in range(8)]
        return {"catalogue_items": n_items, "memory_mb": memory_table(str(Path(tmp) / "b"), RolloutConfig(group=group),
                                                                      rows, workers)}


def main(argv: list[str] | None = None) -> dict:
    """Parse, measure, write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, help="a trained bundle (with --data)")
    ap.add_argument("--data", type=Path, help="the dataset whose train rows the rollouts answer")
    ap.add_argument("--catalogue", type=int, help="memory only, on a random bundle of this many items")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--memory-workers", type=int, default=2)
    a = ap.parse_args(argv)
    if a.catalogue is not None:
        return _write(a.out, catalogue_memory(a.catalogue, a.memory_workers, a.group))
    if a.bundle is None or a.data is None:
        ap.error("give --bundle and --data (a trained bundle and its dataset), or --catalogue N for memory only")
    rows = load_dataset(a.data, splits=("train",)).splits["train"]
    rng = np.random.default_rng(0)
    rows = [rows[i] for i in rng.choice(len(rows), (a.rounds + 1) * a.requests, replace=False)]
    bundle, cfg = Bundle.load(a.bundle), PostTrainConfig(rollout=RolloutConfig(group=a.group))
    worker = RolloutWorker(bundle, cfg.rollout)
    out = {"requests": a.requests, "group": a.group, "rounds": a.rounds,
           "rollout_items_per_s": {"in_process": rollout_speed(worker.generate, rows, a.requests, a.rounds)}}
    for n in (1, 2):
        out["rollout_items_per_s"][f"ray_{n}_workers"] = ray_speed(str(a.bundle), cfg.rollout, rows, a.requests, a.rounds, n)
    batch = worker.generate(rows[:a.requests], 0)
    batch.rewards = np.where(batch.mask, rng.random(batch.items.shape), 0.0)
    batch.target_reward = np.full(len(batch), np.nan)
    learner = Learner(bundle.model, cfg, bundle.space, bundle.collate_cfg)
    t0 = time.perf_counter()
    learner.update(batch)
    out["learner_steps_per_s"] = round(learner.steps / (time.perf_counter() - t0), 2)
    out["learner_items_per_step"] = cfg.minibatch
    out["memory_mb"] = memory_table(str(a.bundle), cfg.rollout, rows, a.memory_workers)
    return _write(a.out, out)


def _write(path: Path, out: dict) -> dict:
    """Write `out` as JSON to `path`, print it, return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
