"""Ablations on a dataset with scenarios (the shop world): the paper's Tables 5, 7, 8, 9 in kind.

    python -m bench.ablations --data runs/bench/world-mid --kind placement --config configs/ablation.yaml \\
        --out runs/bench/ablation-placement.json

Kinds: placement, igr_q2i, query, unified, trigger. Prints a markdown table of test HR@10 per
scenario and writes the full report (all metrics) as JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from oxygen.config import GenerativeConfig, load_config
from oxygen.data.io import load_dataset
from oxygen.eval.ablations import run_ablation, to_markdown


def main(argv: list[str] | None = None) -> dict:
    """Run one ablation kind and write its report."""
    p = argparse.ArgumentParser(prog="python -m bench.ablations", description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--kind", required=True, choices=["placement", "igr_q2i", "query", "unified", "trigger"])
    p.add_argument("--config", type=Path, default=None, help="base GenerativeConfig YAML")
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args(argv)
    report = run_ablation(args.kind, load_dataset(args.data), load_config(args.config, GenerativeConfig))
    print(to_markdown(report))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
