"""Train the small instruction LM on (prompt -> completion) pairs and write a Hugging Face folder
that the `hf` and `vllm` instruction backends load.

    python -m apps.train_instructor --data runs/demo/world --out runs/demo/instructor [--rows 6000]
    python -m apps.train_instructor --pairs runs/demo/pairs.jsonl --out runs/demo/instructor \\
        [--config FILE] [--set lm.epochs=3 --set lm.hidden=256] [--valid FILE.jsonl]

With --data the pairs are made here: a seeded sample of the train rows, each user's state at the
row's time, every branch prompt answered by the knowledge teacher (`--coverage`), kept where the
answer parses (pseudo-labels, as the paper distils a larger LLM into Qwen3-0.6B); they are also
written to OUT/pairs.jsonl. The rows fall on the train split's days only, so an LM trained on them
alone writes weaker STP needs for the later days it serves; `--stp-contexts N` adds N STP prompts on
days drawn over the rows' span and `--stp-ahead` days after it (each a sampled user's place and
persona, that day's season and holidays from the calendar, weather tags that city has seen).

FILE.jsonl holds one {"prompt": ..., "completion": ...} object per line (other keys are ignored).
Without --valid, `valid_frac` of the pairs (seeded shuffle) are held out for the valid loss that
selects the epoch. --out receives config.json, model.safetensors, the tokenizer with its chat
template, generation_config.json, loss_curve.png and oxygen.json (metadata and the model version).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from apps.cli import add_common, run
from oxygen.config import InstructorConfig, load_config
from oxygen.data.io import DataError, load_dataset, read_jsonl, write_jsonl
from oxygen.instructions.backends.knowledge import KnowledgeBackend
from oxygen.instructions.pipeline import CHARS_PER_TOKEN, calendar_states, query_log, row_states, stp_pairs, teacher_pairs
from oxygen.instructions.prompts import Budget
from oxygen.instructions.weather import WeatherFeed
from oxygen.training.instructor import train_lm

Pairs = list[tuple[str, str]]


class PairRow(BaseModel):
    """One line of a pairs file."""

    model_config = ConfigDict(extra="ignore")
    prompt: str
    completion: str


def read_pairs(path: Path) -> Pairs:
    """(prompt, completion) pairs of a JSONL file; DataError naming file and line on a bad row."""
    pairs = [(r.prompt, r.completion) for r in read_jsonl(path, PairRow)]
    if not pairs:
        raise DataError(path, None, None, 'holds no pairs; write one {"prompt": ..., "completion": ...} per line')
    return pairs


def pair_source(args: argparse.Namespace, budget_chars: int) -> Pairs:
    """The training pairs: --pairs FILE, or the teacher's answers on a sample of --data's train rows
    (prompts cut to `budget_chars`, so they fit the LM's context), also saved to OUT/pairs.jsonl."""
    if args.pairs is not None:
        return read_pairs(args.pairs)
    ds = load_dataset(args.data, splits=("train",))
    rows = ds.splits.get("train", [])
    if not rows:
        raise DataError(args.data, None, None, "has no train rows to make pairs from")
    sample = random.Random(args.seed).sample(rows, min(args.rows, len(rows)))
    items = {it.item_id: it for it in ds.items}
    states = row_states(sample, items, query_log(rows), WeatherFeed.load(args.data))
    teacher = KnowledgeBackend(coverage=args.coverage, seed=args.seed)
    pairs, stats = teacher_pairs(states, teacher, Budget(max_chars=budget_chars))
    seen = {p for p, _ in pairs}
    calendar = [pc for pc in stp_pairs(calendar_states(states, args.stp_contexts, args.stp_ahead, args.seed), teacher)
                if pc[0] not in seen]
    pairs += calendar
    args.out.mkdir(parents=True, exist_ok=True)
    write_jsonl(args.out / "pairs.jsonl", [{"prompt": p, "completion": c} for p, c in pairs])
    print(json.dumps({"pairs": len(pairs), "teacher": stats["parsed"], "stp_cache": stats["stp_cache"],
                      "calendar_stp": len(calendar)}))
    return pairs


def split(pairs: Pairs, valid_frac: float, seed: int) -> tuple[Pairs, Pairs]:
    """(train, valid): a seeded shuffle, `valid_frac` of the pairs (at least one) held out."""
    order = list(range(len(pairs)))
    random.Random(seed).shuffle(order)
    n_valid = max(1, round(len(pairs) * valid_frac))
    if len(pairs) - n_valid < 1:
        raise ValueError(f"{len(pairs)} pair(s) cannot be split into train and valid; give at least 2")
    return [pairs[i] for i in order[n_valid:]], [pairs[i] for i in order[:n_valid]]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; the LM's settings come from --config / --set (InstructorConfig)."""
    p = argparse.ArgumentParser(prog="python -m apps.train_instructor", description=__doc__.split("\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--pairs", type=Path, help='JSONL of {"prompt", "completion"} lines')
    src.add_argument("--data", type=Path, help="dataset folder: pairs from the knowledge teacher on its train rows")
    p.add_argument("--rows", type=int, default=6000, help="train rows sampled for --data pairs")
    p.add_argument("--coverage", type=float, default=0.8, help="the teacher's rule coverage for --data pairs")
    p.add_argument("--seed", type=int, default=0, help="row sample and teacher seed for --data pairs")
    p.add_argument("--stp-contexts", type=int, default=8000,
                   help="extra STP pairs on calendar days (the rows' span and --stp-ahead days after it)")
    p.add_argument("--stp-ahead", type=int, default=90, help="days after the last sampled row that --stp-contexts covers")
    p.add_argument("--valid", type=Path, default=None, help="held-out pairs (else valid_frac of --pairs)")
    p.add_argument("--out", required=True, type=Path, help="output HF model folder")
    add_common(p, config="YAML InstructorConfig")
    args = p.parse_args(argv)
    for name in ("stp_contexts", "stp_ahead"):
        if getattr(args, name) < 0:
            raise ValueError(f"--{name.replace('_', '-')} must be 0 or more (got {getattr(args, name)})")
    return args


def main(argv: list[str] | None = None) -> dict:
    """Read the pairs, train, save; returns the folder's oxygen.json metadata."""
    args = parse_args(argv)
    cfg = load_config(args.config, InstructorConfig, sets=args.set)
    pairs = pair_source(args, budget_chars=cfg.lm.ctx * CHARS_PER_TOKEN // 2)
    if cfg.max_pairs:
        pairs = pairs[: cfg.max_pairs]
    if args.valid is not None:
        train, valid = pairs, read_pairs(args.valid)
    else:
        train, valid = split(pairs, cfg.valid_frac, cfg.lm.seed)
    meta = train_lm(train, valid, args.out, cfg.lm)
    summary = {k: meta[k] for k in ("version", "best_epoch", "valid_loss", "train_pairs", "valid_pairs",
                                    "params", "train_seconds")}
    summary["tokens_per_s"] = sum(h["tokens"] for h in meta["history"]) / sum(h["epoch_seconds"] for h in meta["history"])
    print(json.dumps({"out": str(args.out), **summary}, indent=1))
    return meta


if __name__ == "__main__":
    run(main)
