"""`make demo`: the whole system end to end on a laptop CPU with embedded defaults.

    python -m apps.demo [--out runs/demo] [--fresh]

1. generates a small shop world (apps.world), 2. builds text semantic IDs and prints their quality
table (apps.build_sids), 3. slow thinking: the knowledge teacher writes a reasoning instruction
for every row (from the state strictly before it) and for every user (apps.instructions), 4. trains
one model for every scenario with them and prints test HR@10 per scenario with a few
recommendations shown with titles (apps.train), 5. shows homepage lists with and without the
instruction and a noisy search with and without the online query rewrite (the service's core),
6. starts the Ray Serve HTTP service on the trained bundle with the embedded Redis, sends one
request per scenario and stops (apps.serve), 7. near-line: posts a purchase to POST /v1/events,
a near-line worker regenerates the user's instruction when the window closes, and the next
homepage answer reads it (apps.nearline). Each step prints the command that runs it alone.
Takes about 6-8 minutes on a 2-core CPU (plus the install on a fresh machine).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

from apps.cli import add_common, run

WORLD_ARGS = ["--items", "3000", "--users", "3000", "--days", "60", "--seed", "1"]


def step(title: str, command: str) -> float:
    """Print a step banner with the stand-alone command; return the start time."""
    print(f"\n=== {title}\n$ {command}", flush=True)
    return time.perf_counter()


def example_rows(data_dir: Path, n: int = 4) -> list:
    """The first test row of each scenario but checkout (distinct users), at most `n`."""
    from oxygen.data.io import load_dataset

    rows, seen, users = [], set(), set()
    for r in load_dataset(data_dir, splits=("test",)).splits["test"]:
        if r.scenario not in seen and r.scenario != "checkout" and r.user_id not in users:
            seen.add(r.scenario)
            users.add(r.user_id)
            rows.append(r)
    return rows[:n]


def answer_examples(bundle, rows: list, k: int = 5, beam: int = 30, instructions: list | None = None,
                    rewrite: bool = False) -> list:
    """The service's own core answers one request per row: each row's user state (history,
    behaviours, scenarios, profile before the target) and, if given, its instruction record go into
    an embedded Redis, and the request names only the user, scenario, trigger and query, as a
    client would (`rewrite`: search queries go through the query-rewrite branch). Returns the
    RecommendResponses (a RequestError where the service refuses one)."""
    from oxygen.instructions.backends.knowledge import KnowledgeBackend
    from oxygen.serving.core import RecommenderCore, query_rewriter, text_query_encoder
    from oxygen.serving.schemas import RecommendRequest
    from oxygen.serving.stores import Stores
    from oxygen.store.embedded import EmbeddedRedis
    from oxygen.store.instructions import InstructionStore
    from oxygen.store.users import UserState, UserStateStore

    states = [UserState(r.user_id, list(r.history), r.history_behaviours, r.history_scenarios,
                        r.profile.model_dump() if r.profile else None) for r in rows]
    reqs = [RecommendRequest(scenario=r.scenario or "default", user_id=r.user_id, trigger_item=r.trigger,
                             query=r.query, k=k, beam=beam) for r in rows]
    with EmbeddedRedis() as server:
        UserStateStore.connect(server.url).put_many(states)
        InstructionStore.connect(server.url).put_many([rec for rec in instructions or [] if rec is not None])
        encoder = text_query_encoder() if any(r.query for r in rows) else None
        rewriter = query_rewriter(KnowledgeBackend()) if rewrite else None
        return RecommenderCore(bundle, Stores.connect(server.url), encoder, rewriter).recommend_batch(reqs)


def show_examples(result_dir: Path, data_dir: Path, n: int = 4) -> None:
    """Print a few test rows with the service's recommendations (titles) for them."""
    from oxygen.model.bundle import Bundle

    bundle = Bundle.load(result_dir / "bundle")
    rows = example_rows(data_dir, n)
    for r, resp in zip(rows, answer_examples(bundle, rows)):
        extra = f" query={r.query!r}" if r.query else (f" trigger={bundle.titles.get(r.trigger)!r}" if r.trigger else "")
        print(f"- [{r.scenario}] user {r.user_id}{extra}; bought/clicked: {bundle.titles.get(r.target)!r}")
        if not hasattr(resp, "items"):
            print(f"    refused: {resp}")
            continue
        print(f"    reasoning instruction: {resp.reasoning_instruction}")
        for rank, it in enumerate(resp.items, 1):
            mark = " <- the actual next item" if it.item_id == r.target else ""
            print(f"    {rank}. {it.title or it.item_id}{mark}")


def main(argv: list[str] | None = None) -> None:
    """Run the demo steps in order, reusing finished steps unless --fresh."""
    p = argparse.ArgumentParser(prog="python -m apps.demo", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/demo"))
    p.add_argument("--fresh", action="store_true", help="delete --out first")
    add_common(p)
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.fresh and args.out.exists():
        shutil.rmtree(args.out)
    world, sids, train = args.out / "world", args.out / "sids", args.out / "train"
    instr = args.out / "instructions"
    t0 = time.perf_counter()

    step("1/7 shop world", f"python -m apps.world --out {world} {' '.join(WORLD_ARGS)}")
    from apps import world as world_app
    world_app.main(["--out", str(world), *WORLD_ARGS, "--quiet"])

    step("2/7 semantic IDs (text, residual k-means, collisions resolved)",
         f"python -m apps.build_sids --data {world} --out {sids} --source text")
    from apps import build_sids
    build_sids.main(["--data", str(world), "--out", str(sids), "--source", "text"])

    slow_thinking_step(world, instr)
    step("4/7 train the instruction-following model (one model, every scenario)",
         f"python -m apps.train --data {world} --sids {sids} --out {train} --config configs/world/demo.yaml "
         f"--set instructions.file={instr / 'rows.jsonl'}")
    from apps import train as train_app
    result = train_app.main(["--data", str(world), "--sids", str(sids), "--out", str(train),
                             "--config", "configs/world/demo.yaml", "--set", f"instructions.file={instr / 'rows.jsonl'}"])
    print("\ntest HR@10 per scenario:", json.dumps({s: round(m["hr@10"], 4) for s, m in
                                                   result["test"].get("by_scenario", {}).items()}))
    show_examples(train, world)
    step("5/7 what the instructions change (the service core, embedded Redis)", "(shown here only)")
    from apps.demo_slow import show_slow_thinking
    show_slow_thinking(train, world, instr / "rows.jsonl")
    serve_step(train / "bundle", world, instr / "users.jsonl")
    step("7/7 near-line: an event in, the user's instruction regenerated after the window, the next answer",
         f"python -m apps.nearline --data {world} --set window_s=5")
    from apps.demo_nearline import show_nearline
    show_nearline((train / "bundle").resolve(), world)
    print(f"\ndemo finished in {time.perf_counter() - t0:.0f}s; outputs under {args.out}/")


def slow_thinking_step(world: Path, instr: Path) -> None:
    """The knowledge teacher writes an instruction per row (for training) and per user (now)."""
    from apps import instructions as instructions_app
    from apps.demo_slow import show_users

    step("3/7 slow thinking: contextual reasoning instructions (knowledge teacher, 3 branches)",
         f"python -m apps.instructions generate --data {world} --backend knowledge --per-row --out {instr / 'rows.jsonl'}")
    for extra, name in ((["--per-row"], "rows.jsonl"), ([], "users.jsonl")):
        out = instructions_app.main(["generate", "--data", str(world), "--backend", "knowledge", *extra,
                                     "--out", str(instr / name)])
        print(f"{name}: {out['records']} records for {out['users']} states, {out['users_per_s']:.0f}/s, "
              f"STP cache hit rate {out['stp_cache']['hit_rate']:.2f}")
    show_users(instr / "users.jsonl")


def serve_step(bundle: Path, world: Path, instructions: Path) -> None:
    """Start the HTTP service on the bundle (users' states and instructions in the embedded Redis),
    send one request per scenario, stop."""
    step("6/7 serve over HTTP (Ray Serve + embedded Redis), one request per scenario",
         f"python -m apps.serve --bundle {bundle} --users-from {world} --instructions {instructions} --smoke")
    from apps.serve import run_smoke
    codes = run_smoke(bundle, world, port=8011, instructions=instructions)
    if any(c != 200 for c in codes):
        raise SystemExit(f"serving smoke check failed: HTTP {codes}")


if __name__ == "__main__":
    run(main)
