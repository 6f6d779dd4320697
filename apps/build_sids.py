"""Build semantic IDs for a dataset in the shared schema and write the codebook + metrics.

    python -m apps.build_sids --data data/amazon18-office --out runs/sids/office --source auto
    python -m apps.build_sids --data DIR --out DIR --source behaviour --levels 3 --width 256 --seed 0

Loads `DIR/items.jsonl` and `DIR/train.jsonl` (behaviour pairs come from the TRAIN split only), embeds
items (text, behaviour, fused, or auto = fused when items have text), runs residual k-means, makes
every code path unique, saves `codes.npy`, `codebook.npz`, `meta.json` and `metrics.json` into --out
and prints the metrics table. Options may also come from a YAML `--config` (SIDConfig).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from apps.cli import add_common, run
from oxygen.config import SIDConfig, load_config
from oxygen.data.adapters import catalogue_input as to_catalogue_input
from oxygen.data.io import load_dataset
from oxygen.semantic_ids.build import build_codebook
from oxygen.semantic_ids.embeddings import CatalogueInput
from oxygen.semantic_ids.metrics import format_table


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (unset ones fall back to the YAML config, then SIDConfig defaults)."""
    p = argparse.ArgumentParser(prog="python -m apps.build_sids", description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="dataset folder holding items.jsonl (+ train.jsonl)")
    p.add_argument("--out", required=True, help="output folder for the codebook and metrics.json")
    add_common(p, config="optional YAML file of SIDConfig fields")
    p.add_argument("--source", choices=["text", "behaviour", "fused", "auto"], default=None)
    p.add_argument("--levels", type=int, default=None, help="code levels (default 3)")
    p.add_argument("--width", type=int, default=None, help="codes per level (default: sized to catalogue)")
    p.add_argument("--encoder", default=None, help="sentence-transformers folder (default all-MiniLM-L6-v2)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None, help="behaviour training epochs")
    return p.parse_args(argv)


def catalogue_input(data_dir: str) -> CatalogueInput:
    """Items and TRAIN rows of a dataset folder as plain SID-building inputs."""
    ds = load_dataset(data_dir, splits=("train",))
    return to_catalogue_input(ds.items, ds.splits.get("train", []))


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Build, save and print; returns the metrics dict."""
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cfg = load_config(args.config, SIDConfig, sets=args.set, source=args.source, levels=args.levels, width=args.width,
                      encoder=args.encoder, seed=args.seed, behaviour_epochs=args.epochs)
    cat = catalogue_input(args.data)
    cb, metrics = build_codebook(cfg, cat)
    cb.meta["data"] = str(Path(args.data).resolve())
    out = cb.save(args.out)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(format_table(metrics, f"SIDs of {args.data} ({cb.meta['source']}, {cb.levels}x{cb.widths[0]})"))
    print(f"wrote {out}/codes.npy, codebook.npz, meta.json, metrics.json")
    return metrics


if __name__ == "__main__":
    run(main)
