"""Ranker step time: train step and predict time of the list-wise model with and without its
request-distance attention bias (oxygen/rl/ranking.py, `request_bias`), on one dataset's packs.

    python -m bench.ranker_step --data W [--split valid] [--batches 12] [--batch-size 64] [--threads 1]
        [--out runs/bench/ranker_step.json]

Each arm builds the default RankerConfig (with `request_bias` on or off) from one seed, warms up on
two batches, then times `--batches - 2` AdamW steps and as many no-grad predictions. JSON: per arm
`train_step_ms` and `predict_ms` (means), and `bias_cost` (with / without, per measure).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from apps.cli import write_report
from apps.train_ranker import split_requests
from oxygen.config import RankerConfig
from oxygen.data.io import load_dataset
from oxygen.rl.rank_data import RankBatch, RankSpace
from oxygen.rl.rank_fit import build_model, pack

WARMUP = 2


def time_arm(cfg: RankerConfig, space: RankSpace, batches: list[RankBatch]) -> dict[str, float]:
    """Mean ms of one AdamW train step and of one prediction over `batches` after the warm-up ones."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, space)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)

    def step(b: RankBatch) -> None:
        model(b).loss.backward()
        opt.step()
        opt.zero_grad()

    for b in batches[:WARMUP]:
        step(b)
    t = time.perf_counter()
    for b in batches[WARMUP:]:
        step(b)
    train_ms = (time.perf_counter() - t) / len(batches[WARMUP:]) * 1000
    model.eval()
    with torch.no_grad():
        t = time.perf_counter()
        for b in batches[WARMUP:]:
            model.probabilities(b)
    return {"train_step_ms": round(train_ms, 1),
            "predict_ms": round((time.perf_counter() - t) / len(batches[WARMUP:]) * 1000, 1)}


def main(argv: list[str] | None = None) -> dict:
    """Parse, pack the split, time both arms, print and write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--split", default="valid", choices=("train", "valid", "test"))
    ap.add_argument("--batches", type=int, default=12, help=f"batches per arm, the first {WARMUP} warm up")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    if a.batches <= WARMUP or a.batch_size < 1:
        raise SystemExit(f"--batches must exceed the {WARMUP} warm-up batches and --batch-size be >= 1")
    torch.set_num_threads(a.threads)
    ds = load_dataset(a.data)
    cfg = RankerConfig()
    reqs, _ = split_requests(a.data, ds, cfg)
    space = RankSpace.fit(ds.items, ds.splits["train"])
    data = pack(space, reqs[a.split], [r for s in ds.splits.values() for r in s], cfg).batch
    need = a.batches * a.batch_size
    if len(data) < need:
        raise SystemExit(f"{a.data} {a.split}: {len(data)} packed samples, fewer than --batches x --batch-size = "
                         f"{need}; lower either")
    batches = [data.select(torch.arange(k * a.batch_size, (k + 1) * a.batch_size)) for k in range(a.batches)]
    arms = {name: time_arm(cfg.model_copy(update={"request_bias": on}), space, batches)
            for name, on in (("without_bias", False), ("with_bias", True))}
    out = {"data": str(a.data), "split": a.split, "batch_size": a.batch_size, "threads": a.threads, **arms,
           "bias_cost": {k: round(arms["with_bias"][k] / arms["without_bias"][k], 3) for k in arms["with_bias"]}}
    print(json.dumps(out, indent=1))
    if a.out:
        write_report(a.out, out, indent=1)
    return out


if __name__ == "__main__":
    main()
