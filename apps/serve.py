"""Run the Ray Serve HTTP service locally (local Ray, embedded Redis unless --redis-url is given).

    python -m apps.serve --bundle runs/demo/train/bundle [--port 8000] [--users-from runs/demo/world]
    python -m apps.serve --bundle runs/demo/train/bundle --users-from runs/demo/world --smoke

`--users-from DIR` loads every user's latest state (history, behaviours, profile) from a dataset
folder into Redis, so requests may name only the user; `--instructions FILE` (from `apps.instructions
generate`) embeds and stores every user's reasoning instruction, which answers then show with reasons.
`--smoke` sends one request per scenario
(search with a query, homepage, channel and cart with a trigger), prints the answers and stops.
On a cluster use `serve deploy deployments/serve.yaml` instead (docs/cluster.md).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import httpx

from apps.cli import add_common, run

SMOKE_SCENARIOS = ("search", "homepage", "channel", "cart")


def load_users(redis_url: str, data_dir: Path, splits: tuple[str, ...] = ("train", "valid", "test")) -> dict[str, dict]:
    """Write each user's latest state (from `splits`, by timestamp order: history with behaviours,
    scenarios and times, their search queries, profile) into Redis; return {user_id: last row as
    dict} for building example requests."""
    from oxygen.data.io import load_dataset
    from oxygen.instructions.pipeline import after, query_log
    from oxygen.store.users import UserState, UserStateStore

    ds = load_dataset(data_dir)
    rows = [r for split in splits for r in ds.splits.get(split, [])]
    last = {r.user_id: r for r in rows}
    queries = query_log(rows)
    states = []
    for u, r in last.items():
        a = after(r)  # the last row's own event appended to its history
        states.append(UserState(u, list(a.history), a.history_behaviours, a.history_scenarios,
                                r.profile.model_dump() if r.profile else None, a.history_timestamps,
                                [[ts, q] for ts, q in queries.get(u, [])] or None))
    UserStateStore.connect(redis_url).put_many(states)
    return {u: r.model_dump() for u, r in last.items()}


def example_requests(users: dict[str, dict]) -> list[dict]:
    """One request per smoke scenario, built from users whose last event was in that scenario."""
    reqs = []
    for s in SMOKE_SCENARIOS:
        row = next((r for r in users.values() if r["scenario"] == s), next(iter(users.values())))
        req = {"scenario": s, "user_id": row["user_id"], "k": 5}
        if s == "search":
            req["query"] = row.get("query") or "wireless earbuds"
        if s in ("channel", "cart"):
            req["trigger_item"] = row.get("trigger") if row.get("trigger") is not None else row["target"]
        reqs.append(req)
    return reqs


def print_answer(req: dict, resp: httpx.Response) -> None:
    """Show one request and its recommendations."""
    extra = f" query={req['query']!r}" if "query" in req else (f" trigger={req['trigger_item']}" if "trigger_item" in req else "")
    print(f"POST /v1/recommend [{req['scenario']}] user={req['user_id']}{extra} -> HTTP {resp.status_code}")
    if resp.status_code != 200:
        print(f"    {resp.text}")
        return
    body = resp.json()
    print(f"    reasoning instruction: {body['reasoning_instruction']}; model {body['model_version']}; "
          f"{body['latency_ms']:.0f} ms server-side")
    if body.get("instruction"):
        print(f"    instruction: {body['instruction']['text']}")
        for reason in body["instruction"]["reasons"][:2]:
            print(f"      because {reason}")
    if body.get("query_used") and body["query_used"] != req.get("query"):
        print(f"    query read as: {body['query_used']!r}")
    for i, it in enumerate(body["items"], 1):
        print(f"    {i}. [{it['item_id']} {'-'.join(map(str, it['semantic_id']))}] {it['title']}  ({it['score']:.2f})")


def load_instructions(redis_url: str, path: Path) -> int:
    """Embed and store the instruction records of `path` (one per user); returns how many."""
    from oxygen.instructions.pipeline import read_instructions, stored_records
    from oxygen.store.instructions import InstructionStore

    records = stored_records(read_instructions(path))
    InstructionStore.connect(redis_url).put_many(records)
    return len(records)


def run_smoke(bundle: Path, data_dir: Path, port: int = 8011, instructions: Path | None = None,
              device: str = "auto") -> list[int]:
    """Start everything, send one request per scenario, print, stop; return the HTTP status codes."""
    from oxygen.serving.local import start_local, stop_local
    from oxygen.store.embedded import EmbeddedRedis

    with EmbeddedRedis() as redis_server:
        users = load_users(redis_server.url, data_dir)
        if instructions is not None:
            print(f"stored {load_instructions(redis_server.url, instructions)} reasoning instructions")
        url = start_local(bundle, redis_server.url, port, device=device)
        print(f"service ready at {url} (OpenAPI: {url}/docs); scenarios: "
              f"{httpx.get(f'{url}/v1/scenarios', timeout=10).json()}")
        codes = []
        try:
            for req in example_requests(users):
                resp = httpx.post(f"{url}/v1/recommend", json=req, timeout=60)
                print_answer(req, resp)
                codes.append(resp.status_code)
        finally:
            stop_local()
    print("service stopped")
    return codes


def main(argv: list[str] | None = None) -> None:
    """Serve until Ctrl-C, or run the smoke check with --smoke."""
    p = argparse.ArgumentParser(prog="python -m apps.serve", description=__doc__.split("\n")[0])
    p.add_argument("--bundle", required=True, type=Path, help="bundle folder from apps.train")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--redis-url", default=None, help="default: $REDIS_URL or an embedded server")
    p.add_argument("--users-from", type=Path, default=None, help="dataset folder to load user states from")
    p.add_argument("--instructions", type=Path, default=None,
                   help="instruction records (apps.instructions generate --out FILE) to store for serving")
    p.add_argument("--smoke", action="store_true", help="one request per scenario, then stop")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where the model runs (auto: a GPU when Ray has one; cuda without one stops with the fix)")
    add_common(p)
    args = p.parse_args(argv)
    if args.smoke:
        if args.users_from is None:
            p.error("--smoke needs --users-from DIR (the dataset the bundle was trained on)")
        codes = run_smoke(args.bundle, args.users_from, args.port, args.instructions, args.device)
        raise SystemExit(0 if all(c == 200 for c in codes) else 1)
    from oxygen.store.embedded import redis_url
    url_redis = args.redis_url or redis_url()
    if args.users_from:
        load_users(url_redis, args.users_from)
    if args.instructions:
        load_instructions(url_redis, args.instructions)
    from oxygen.serving.local import start_local
    url = start_local(args.bundle, url_redis, args.port, device=args.device)
    print(f"serving at {url} (OpenAPI {url}/docs); Ctrl-C to stop")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    run(main)
