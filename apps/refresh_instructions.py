"""The daily full refresh: regenerate the instruction of every user active in the day before --date.

    python -m apps.refresh_instructions --data runs/demo/world --date 2025-11-20 [--backend knowledge]
        [--model DIR] [--redis-url URL] [--batch-size 256] [--actors 1] [--out summary.json]
    ray job submit --working-dir . -- python -m apps.refresh_instructions --data /mnt/data/world --date 2025-11-20

On Ray Data (oxygen.instructions.nearline.refresh): STP once per distinct (time bucket, place,
persona), the per-user branches and the embedding in batches on an actor pool, one pipelined Redis
write per batch. Written as of the date's 00:00 UTC: a fresher near-line record is kept. A run
killed midway and started again skips the users it already wrote for that date. Prints a summary
(users, usable share, written, kept because fresher, time).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from apps.cli import add_common, run, write_report


def main(argv: list[str] | None = None) -> dict:
    """Run the refresh; print and return the summary."""
    p = argparse.ArgumentParser(prog="python -m apps.refresh_instructions", description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, type=Path, help="dataset folder (items, train/valid/test rows)")
    p.add_argument("--date", required=True, help="YYYY-MM-DD: users active in the day before it are refreshed")
    p.add_argument("--backend", default="knowledge", choices=("knowledge", "hf", "vllm"))
    p.add_argument("--model", default=None, help="LM folder for hf / vllm (apps.train_instructor)")
    p.add_argument("--coverage", type=float, default=0.8, help="the knowledge teacher's coverage")
    p.add_argument("--redis-url", default=None, help="default: $REDIS_URL or the embedded server")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--actors", type=int, default=1, help="generation actors (each loads the backend)")
    p.add_argument("--gpus-per-actor", type=float, default=0.0, help="1 for --backend vllm on a GPU cluster")
    p.add_argument("--out", type=Path, default=None, help="write the summary JSON here too")
    add_common(p)
    args = p.parse_args(argv)
    from oxygen.data.io import load_dataset
    from oxygen.instructions.nearline.refresh import RefreshSettings, cutoff_of, refresh
    from oxygen.instructions.weather import WeatherFeed
    from oxygen.store.embedded import redis_url
    from oxygen.training.ray_data import init_ray

    cutoff_of(args.date)  # a bad date fails before anything loads
    ds = load_dataset(args.data)
    rows = [r for s in ("train", "valid", "test") for r in ds.splits.get(s, [])]
    settings = RefreshSettings(redis_url=args.redis_url or redis_url(), backend=args.backend, model=args.model,
                               coverage=args.coverage, batch_size=args.batch_size, actors=args.actors,
                               actor_gpus=args.gpus_per_actor)
    init_ray(num_workers=args.actors + 1)
    summary = refresh(rows, {it.item_id: it for it in ds.items}, WeatherFeed.load(args.data), args.date, settings)
    print(json.dumps(summary, indent=1))
    if args.out:
        write_report(args.out, summary, indent=1)
    return summary


if __name__ == "__main__":
    run(main)
