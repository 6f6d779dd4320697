"""Benchmarks from the command line. `quality`: train a recommender on DIR/train.jsonl, select on
DIR/valid.jsonl, evaluate DIR/test.jsonl, print a table (overall + per scenario) and write JSON
(hr@1/3/5/10, ndcg@3/5/10, recall@10 on test at top level, params, train_seconds, valid metrics,
per-scenario breakdowns, the config and what fitting learnt).

    python -m apps.bench quality --data data/amazon18-office --model sasrec --out /tmp/sasrec.json
    python -m apps.bench quality --data DIR --model markov --set decay=0.5 --set max_back=5 --out m.json
    python -m apps.bench quality --data data/amazon18-office --model oxygen --config configs/office/oxygen.yaml \\
        --set train.epochs=3 --out /tmp/oxygen.json
    python -m apps.bench quality --data DIR --model sasrec --refit --out s.json   # select, then train+valid
"""

from __future__ import annotations

import argparse
from pathlib import Path

from apps.cli import add_common, run, write_report
from oxygen.data.io import load_dataset
from oxygen.eval.ranking import format_table, quality_run
from oxygen.recommenders.registry import MODELS, build
from oxygen.training.curves import save_curves


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line: `quality --data DIR --model NAME [--config FILE] [--set K=V] --out FILE.json`."""
    p = argparse.ArgumentParser(prog="python -m apps.bench", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="bench", required=True)
    q = sub.add_parser("quality", help="offline HR/NDCG/Recall of one model on one dataset")
    q.add_argument("--data", required=True, type=Path, help="dataset folder (items/train/valid/test.jsonl)")
    q.add_argument("--model", required=True, choices=MODELS, help="which recommender to train")
    add_common(q, config="YAML config of the model (defaults if omitted)")
    q.add_argument("--out", required=True, type=Path, help="where to write the JSON result")
    q.add_argument("--k", type=int, default=10, help="length of each recommended list (default 10)")
    q.add_argument("--refit", action="store_true",
                   help="after selecting on valid, retrain on train+valid before the test evaluation")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """Run the chosen benchmark; returns the result dict (also written to --out)."""
    args = parse_args(argv)
    rec = build(args.model, args.config, sets=args.set or [])
    result = quality_run(rec, load_dataset(args.data), k=args.k, refit=args.refit)
    print(format_table(result))
    write_report(args.out, result)
    history = result["fit_info"].get("history")
    if history:
        curve = save_curves(history, args.out.with_suffix(".curve.png"), title=args.model)
        print(f"wrote {args.out}, {curve} (training curve)")
    else:
        print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    run(main)
