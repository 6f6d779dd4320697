"""Run the near-line instruction workers: events on the Redis stream -> one regeneration per user
window -> the instruction store, with the worker count following the backlog.

    python -m apps.nearline --data runs/demo/world [--config deployments/nearline.yaml] [--set window_s=60]
        [--redis-url URL | --redis-dir runs/nearline/redis] [--users-from runs/demo/world] [--seconds N]

Without --redis-url (or $REDIS_URL) it starts the embedded Redis with its append-only file in
--redis-dir, so the stream, its consumer group and pending events survive a restart of this
command. `--users-from DIR` loads every user's latest state first (as apps.serve does). Events come
in through `POST /v1/events` of the service (`python -m apps.serve ... --redis-url` the same URL) or
`oxygen.store.events.EventLog.ingest`. Prints the workers and the backlog every few seconds.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from apps.cli import add_common, run
from oxygen.config import NearlineConfig, load_config


def status_line(status: dict) -> str:
    """One line: workers, the latest backlog, windows regenerated so far."""
    last = status["history"][-1] if status["history"] else {}
    done = sum(s.get("regenerations", 0) for s in [*status["running"].values(), *status["finished"]])
    return (f"workers {status['workers']}  open windows {last.get('open', 0)}  due {last.get('due', 0)}  "
            f"unread {last.get('unread', 0)}  pending {last.get('pending', 0)}  dead {last.get('dead', 0)}  "
            f"regenerated {done}")


def main(argv: list[str] | None = None) -> None:
    """Start the workers and report until Ctrl-C or --seconds."""
    p = argparse.ArgumentParser(prog="python -m apps.nearline", description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, type=Path, help="dataset folder (items.jsonl, calendar.jsonl)")
    p.add_argument("--redis-url", default=None, help="default: $REDIS_URL or the embedded server")
    p.add_argument("--redis-dir", type=Path, default=Path("runs/nearline/redis"),
                   help="data folder of the embedded Redis (append-only file)")
    p.add_argument("--users-from", type=Path, default=None, help="dataset folder to load user states from")
    p.add_argument("--seconds", type=float, default=None, help="stop after this long (default: Ctrl-C)")
    add_common(p, config="YAML NearlineConfig (default deployments/nearline.yaml)")
    args = p.parse_args(argv)
    cfg = load_config(args.config or "deployments/nearline.yaml", NearlineConfig, sets=args.set)
    from oxygen.data.io import find_file
    if find_file(args.data, "items") is None:
        raise FileNotFoundError(f"{args.data}/items.jsonl not found; pass the dataset folder the model was trained on")
    from apps.serve import load_users
    from oxygen.serving.local import start_nearline_local, stop_local
    from oxygen.serving.nearline import nearline_status, stop_nearline
    from oxygen.store.embedded import EmbeddedRedis

    server = None
    url = args.redis_url or os.environ.get("REDIS_URL")
    if not url:
        args.redis_dir.mkdir(parents=True, exist_ok=True)
        server = EmbeddedRedis(aof=True, data_dir=str(args.redis_dir)).start()
        url = server.url
        print(f"embedded Redis at {url} (append-only file in {args.redis_dir})")
    try:
        if args.users_from:
            print(f"loaded {len(load_users(url, args.users_from))} user states")
        sup = start_nearline_local(args.data, url, cfg)
        print(f"near-line workers started (window {cfg.window_s:g} s, backend {cfg.backend}); Ctrl-C to stop")
        end = time.time() + args.seconds if args.seconds else float("inf")
        try:
            while time.time() < end:
                time.sleep(min(5.0, max(end - time.time(), 0.1)))
                print(status_line(nearline_status(sup)), flush=True)
        except KeyboardInterrupt:
            pass
        stop_nearline(sup)
        stop_local()
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    run(main)
