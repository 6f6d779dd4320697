"""Train the small instruction LM on (prompt -> completion) pairs and write a Hugging Face folder
that the `hf` and `vllm` instruction backends load.

    python -m apps.train_instructor --pairs runs/demo/pairs.jsonl --out runs/demo/instructor \\
        [--config FILE] [--set lm.epochs=3 --set lm.hidden=256] [--valid FILE.jsonl]

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
from oxygen.data.io import DataError, read_jsonl
from oxygen.instructions.lm import train_lm

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


def pair_source(args: argparse.Namespace) -> Pairs:
    """Where the training pairs come from: today --pairs FILE (a --data DIR source that asks the
    teacher slots in here)."""
    return read_pairs(args.pairs)


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
    p.add_argument("--pairs", required=True, type=Path, help='JSONL of {"prompt", "completion"} lines')
    p.add_argument("--valid", type=Path, default=None, help="held-out pairs (else valid_frac of --pairs)")
    p.add_argument("--out", required=True, type=Path, help="output HF model folder")
    add_common(p, config="YAML InstructorConfig")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """Read the pairs, train, save; returns the folder's oxygen.json metadata."""
    args = parse_args(argv)
    cfg = load_config(args.config, InstructorConfig, sets=args.set)
    pairs = pair_source(args)
    if cfg.max_pairs:
        pairs = pairs[: cfg.max_pairs]
    if args.valid is not None:
        train, valid = pairs, read_pairs(args.valid)
    else:
        train, valid = split(pairs, cfg.valid_frac, cfg.lm.seed)
    meta = train_lm(train, valid, args.out, cfg.lm)
    summary = {k: meta[k] for k in ("version", "best_epoch", "valid_loss", "train_pairs", "valid_pairs",
                                    "params", "train_seconds")}
    summary["tokens_per_s"] = sum(h["tokens"] for h in meta["history"]) / sum(h["seconds"] for h in meta["history"])
    print(json.dumps({"out": str(args.out), **summary}, indent=1))
    return meta


if __name__ == "__main__":
    run(main)
