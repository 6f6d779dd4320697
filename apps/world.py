"""Generate a shop-world dataset folder (items, train/valid/test rows, users, world.json).

    python -m apps.world --out data/shop-world      # default: 20k items, 20k users, 90 days (~265k events, ~1 min)
    python -m apps.world --out /tmp/sw --items 3000 --users 800 --days 60 --seed 1   # small: ~7k events, seconds
    python -m apps.world --out /tmp/sw1m --items 1000000                             # load-test catalogue

Same arguments and seed give byte-identical files. Prints the counts and the calibration
diagnostics (also stored in world.json). See docs/WORLD.md for what the world contains,
oxygen/world/kb/*.yaml for the knowledge base and oxygen/world/ for the simulator.
"""

from __future__ import annotations

import argparse
import json
import time

from apps.cli import add_common, run
from oxygen.config import WorldConfig, load_config
from oxygen.data.io import write_jsonl
from oxygen.world.output import write_dataset
from oxygen.world.world import World


def main(argv: list[str] | None = None) -> dict:
    """Parse arguments, build and simulate the world, write the folder; return world.json's content."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output dataset folder")
    add_common(ap, config="optional YAML WorldConfig")
    ap.add_argument("--items", type=int, default=None, help="catalogue size (default 20000)")
    ap.add_argument("--users", type=int, default=None, help="number of users (default 20000)")
    ap.add_argument("--days", type=int, default=None, help="simulated days (default 90)")
    ap.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    ap.add_argument("--max-history", type=int, default=None, help="history cap per row (default 50)")
    ap.add_argument("--start-date", default=None, help="first simulated day, YYYY-MM-DD (default 2025-10-01)")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    a = ap.parse_args(argv)
    cfg = load_config(a.config, WorldConfig, sets=a.set, items=a.items, users=a.users, days=a.days, seed=a.seed,
                      max_history=a.max_history, start_date=a.start_date)
    t0 = time.perf_counter()
    world = World.build(cfg)
    meta = write_dataset(world, world.simulate(progress=not a.quiet), a.out, write_jsonl, progress=not a.quiet)
    print(json.dumps({**meta["counts"], "seconds": round(time.perf_counter() - t0, 1)}))
    print(json.dumps(meta["diagnostics"], indent=1))
    return meta


if __name__ == "__main__":
    run(main)
