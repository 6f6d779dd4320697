"""Pre-train the generative recommender on a dataset and write a servable bundle.

    python -m apps.train --data runs/demo/world --sids runs/demo/sids --out runs/demo/train \\
        [--config configs/world/demo.yaml] [--set train.patience=5] [--variant oxygen|tiger] [--epochs N] [--refit]
    python -m apps.train ... --workers 2        # the same loop on 2 Ray Train workers (DDP), resumable;
                                                # train rows read, validated and sharded by Ray Data

Trains on DIR/train.jsonl with early stopping on DIR/valid.jsonl, evaluates DIR/test.jsonl (overall
and per scenario), and writes into --out (with --refit the model is retrained on train+valid for the selected number
of epochs before the test evaluation and the bundle): `bundle/` (model + SIDs + pools + titles, what
`apps.serve` loads), `curve.png` (training curve), `result.json` (metrics and fit info).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from apps.cli import add_common, run
from oxygen.config import GenerativeConfig, load_config
from oxygen.data.io import SPLITS, find_file, load_dataset
from oxygen.eval.ranking import format_table, quality_run
from oxygen.recommenders.generative import GenerativeRecommender
from oxygen.training.curves import save_curves
from oxygen.training.ray_data import RaySplit


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; unset ones come from --config, then GenerativeConfig defaults."""
    p = argparse.ArgumentParser(prog="python -m apps.train", description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, type=Path, help="dataset folder (items/train/valid/test.jsonl)")
    p.add_argument("--sids", type=Path, default=None, help="codebook folder from apps.build_sids (else built)")
    p.add_argument("--out", required=True, type=Path, help="output folder (bundle/, curve.png, result.json)")
    add_common(p, config="YAML GenerativeConfig")
    p.add_argument("--variant", choices=["oxygen", "tiger"], default=None)
    p.add_argument("--epochs", type=int, default=None, help="override train.epochs")
    p.add_argument("--refit", action="store_true", help="after selecting on valid, retrain on train+valid")
    p.add_argument("--workers", type=int, default=None,
                   help="data-parallel Ray Train workers (DDP; checkpoints under OUT/ray_train, and starting "
                        "the same job again resumes it); overrides train.workers")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """Train, evaluate, save; returns the result dict."""
    args = parse_args(argv)
    flags = [f"train.{k}={v}" for k, v in (("epochs", args.epochs), ("workers", args.workers)) if v]
    cfg = load_config(args.config, GenerativeConfig, sets=[*flags, *args.set], variant=args.variant,
                      sid_dir=str(args.sids) if args.sids else None)
    ds = load_dataset(args.data, splits=("valid", "test") if cfg.train.workers > 1 else SPLITS)
    if cfg.train.workers > 1:  # train rows read and validated by Ray Data, collated on the workers
        ds.splits["train"] = RaySplit(find_file(args.data, "train") or args.data / "train.jsonl", frozenset(ds.item_ids))
    rec = GenerativeRecommender(cfg, run_dir=args.out)
    result = quality_run(rec, ds, k=10, refit=args.refit)
    print(format_table(result))
    save_curves(rec.fit_info["history"], args.out / "curve.png", title=cfg.variant)
    titles = {it.item_id: it.title for it in ds.items if it.title}
    bundle = rec.to_bundle(titles, categories=ds.leaf_categories()).save(args.out / "bundle")
    (args.out / "result.json").write_text(json.dumps(result, indent=2, default=str))
    print(f"wrote {bundle} (servable), {args.out / 'curve.png'}, {args.out / 'result.json'}")
    return result


if __name__ == "__main__":
    run(main)
