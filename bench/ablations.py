"""Ablations on a dataset with scenarios (the shop world): the paper's Tables 5, 7, 8, 9 in kind.

    python -m bench.ablations --data runs/bench/world-mid --kind placement --config configs/world/ablation.yaml \\
        --out runs/bench/ablation-placement.json [--seed 1]
    python -m bench.ablations --merge runs/bench/ablation-placement.json runs/bench/ablation-placement-s1.json \\
        --out runs/bench/ablation-placement-seeds.json

Kinds: placement, igr_q2i, query, unified, trigger. Prints a markdown table of test HR@10 per
scenario and writes the full report (all metrics, per-row test ranks) as JSON. `--seed` reseeds
the whole run (model init, data order, SID k-means); `--merge` reads the reports of several seeds
of one kind and prints mean ± std per cell (HR@10 and NDCG@10) and each variant's overall gap to
the first variant (paired bootstrap over test rows, seed-averaged).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from apps.cli import add_common, run, write_report
from oxygen.config import GenerativeConfig, load_config
from oxygen.data.io import load_dataset
from oxygen.eval.ablations import mean_report, paired_gaps, run_ablation, to_markdown, to_markdown_mean
from oxygen.eval.seeds import reseed

KINDS = ["placement", "igr_q2i", "query", "unified", "trigger"]


def merge(paths: list[Path], out: Path) -> dict:
    """Mean ± std over the seed reports at `paths` (and paired gaps where ranks exist); written to `out`."""
    reports = [json.loads(p.read_text()) for p in paths]
    mean = mean_report(reports)
    result: dict = {"inputs": [str(p) for p in paths], "mean": mean, "gaps": {}}
    for metric in ("hr@10", "ndcg@10"):
        try:
            result["gaps"][metric] = paired_gaps(reports, metric)
        except ValueError as e:  # e.g. --kind unified: no per-row ranks for the per-scenario models
            print(f"no paired gaps: {e}")
            result["gaps"][metric] = None
        print(f"\n{metric}\n" + to_markdown_mean(mean, result["gaps"][metric], metric))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    return result


def main(argv: list[str] | None = None) -> dict:
    """Run one ablation kind and write its report, or merge several seeds' reports."""
    p = argparse.ArgumentParser(prog="python -m bench.ablations", description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, help="dataset folder (with scenarios)")
    p.add_argument("--kind", choices=KINDS)
    add_common(p, config="base GenerativeConfig YAML")
    p.add_argument("--seed", type=int, default=None, help="reseed every seed of the config")
    p.add_argument("--merge", type=Path, nargs="+", default=None, help="reports of one kind over seeds")
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args(argv)
    if args.merge:
        return merge(args.merge, args.out)
    if args.data is None or args.kind is None:
        p.error("--data and --kind are required unless --merge is given")
    cfg = load_config(args.config, GenerativeConfig, sets=args.set)
    report = run_ablation(args.kind, load_dataset(args.data), cfg if args.seed is None else reseed(cfg, args.seed))
    print(to_markdown(report))
    write_report(args.out, report)
    return report


if __name__ == "__main__":
    run(main)
