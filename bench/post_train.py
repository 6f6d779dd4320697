"""Post-training speed: rollout items/s (in process, and 1 or 2 Ray rollout actors) and learner
steps/s on a trained bundle.

    python -m bench.post_train --bundle runs/demo/train/bundle --data runs/demo/world --out runs/bench/post_speed.json
        [--requests 64] [--rounds 3] [--group 8]

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


def main(argv: list[str] | None = None) -> dict:
    """Parse, measure, write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", required=True, type=Path)
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--group", type=int, default=8)
    a = ap.parse_args(argv)
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
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
