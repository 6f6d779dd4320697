"""Generate contextual reasoning instructions for every user of a dataset (slow thinking, offline).

    python -m apps.instructions generate --data runs/demo/world --backend knowledge --out runs/demo/instructions.jsonl
    python -m apps.instructions generate --data DIR --backend vllm --model runs/demo/instructor --out FILE.jsonl --store
    python -m apps.instructions generate --data DIR --backend knowledge --per-row --out rows.jsonl   # for training
    python -m apps.instructions generate --data DIR --backend vllm --model M --per-row --splits valid test \
        --scenarios homepage [--max-rows 3000] --out rows.jsonl    # only the rows an evaluation reads

Each user's state is taken right after their last event (nothing later goes in); the three
branches (spatiotemporal + profile, query rewrite, user-intent reasoning) are prompted, parsed and
combined into one record per user: text, reasons, contributing branches, backend and version (one
JSON line each in --out; the generation stats go to stdout). `--store` also embeds each text with
the item text encoder and writes the records to Redis ($REDIS_URL, else the embedded server),
where serving reads them. `--per-row` writes one record per row instead, from the state strictly
before that row (what `apps.train --set instructions.file=rows.jsonl` attaches to training rows),
for the rows of `--splits` and `--scenarios` (default: every row); the recent queries in a state
come from all rows either way.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from apps.cli import add_common, run
from oxygen.data.io import load_dataset, write_jsonl
from oxygen.eval.ranking import eval_split
from oxygen.instructions.backends import BACKENDS, make_backend
from oxygen.instructions.generator import generate_instructions
from oxygen.instructions.pipeline import CHARS_PER_TOKEN, catalogue_vocabulary, embed, end_states, query_log, row_states
from oxygen.instructions.prompts import Budget
from oxygen.instructions.weather import WeatherFeed
from oxygen.store.instructions import InstructionStore


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options of `generate`."""
    p = argparse.ArgumentParser(prog="python -m apps.instructions", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="one instruction record per user")
    g.add_argument("--data", required=True, type=Path, help="dataset folder (items + train/valid/test rows)")
    g.add_argument("--backend", required=True, choices=BACKENDS)
    g.add_argument("--model", type=Path, default=None, help="causal-LM folder (hf, vllm)")
    g.add_argument("--coverage", type=float, default=0.8, help="share of the rules the knowledge teacher knows")
    g.add_argument("--users", type=int, default=None, help="only the first N users (a quick look)")
    g.add_argument("--batch", type=int, default=64, help="users per backend call")
    g.add_argument("--out", required=True, type=Path, help="JSONL of records, one per user")
    g.add_argument("--store", action="store_true", help="also embed and write the records to Redis")
    g.add_argument("--per-row", action="store_true",
                   help="one record per row instead (its user's state at the row's time; for training, "
                        "GenerativeConfig instructions.file)")
    g.add_argument("--splits", nargs="+", choices=("train", "valid", "test"), default=["train", "valid", "test"],
                   help="--per-row: the splits whose rows get a record")
    g.add_argument("--scenarios", nargs="+", default=None, help="--per-row: only rows of these scenarios")
    g.add_argument("--max-rows", type=int, default=None,
                   help="--per-row: a fixed random sample of N rows per split (after --scenarios): the rows "
                        "bench.instruction_guidance --max-rows N evaluates")
    add_common(g)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """Generate (and optionally store) the records; returns the generation stats."""
    args = parse_args(argv)
    if not 0 < args.coverage <= 1:
        raise ValueError(f"--coverage must be in (0, 1], got {args.coverage}")
    ds = load_dataset(args.data)
    rows = [r for split in ("train", "valid", "test") for r in ds.splits.get(split, [])]
    items = {it.item_id: it for it in ds.items}
    queries, feed = query_log(rows), WeatherFeed.load(args.data)
    if args.per_row:
        wanted = [r for split in args.splits for r in eval_split(
            [r for r in ds.splits.get(split, []) if args.scenarios is None or r.scenario in args.scenarios], args.max_rows)]
        states = row_states(wanted, items, queries, feed)
    else:
        states = end_states(rows, items, queries, feed)
    states = states[: args.users]
    backend = make_backend(args.backend, args.model, args.coverage)
    context = getattr(backend, "context", None)  # an LM's prompt budget, as its training pairs had
    budget = Budget(max_chars=context * CHARS_PER_TOKEN // 2) if context else None
    instrs, stats = generate_instructions(states, backend, batch_size=args.batch, budget=budget,
                                          vocab=catalogue_vocabulary(ds.items))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(args.out, [i.to_dict() for i in instrs])
    out = {"out": str(args.out), "backend": backend.name, "version": backend.version, **stats.to_dict(),
           "users_per_s": round(len(states) / max(stats.seconds, 1e-9), 1)}
    if args.store:
        records = embed(instrs, progress=True)
        InstructionStore.connect().put_many(records)
        out["stored"] = len(records)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    run(main)
