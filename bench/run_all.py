"""`make bench`: run every benchmark whose figures docs/benchmarks.md records, one after another.

    python -m bench.run_all [--only quality,decoding] [--list]

Each entry is the exact command recorded in docs/benchmarks.md or in a dated note it links (docs/notes/,
runs a later one superseded); outputs land in runs/bench/.
Heavy: the full set takes well over an hour on a 2-core CPU; use --only to pick groups.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time

PY = sys.executable
OFFICE = "--config configs/office/base.yaml"
# the first Office session (docs/notes/2026-11-23-office-first-session.md): catalogue-sized SID width, Q2I on, no EMA, 14 epochs
FIRST = (f"{OFFICE} --set sid.width=null --set model.use_q2i=true --set train.epochs=14 --set train.patience=3 "
         "--set train.max_valid_rows=2000 --set train.ema_decay=0")
W64 = ("--set model.dropout=0.2 --set model.use_q2i=true --set train.patience=4 --set train.max_valid_rows=2000 "
       "--set train.ema_decay=0")  # the w64 row of the valid sweep (docs/notes/2026-11-23-office-valid-sweep.md)
GROUPS: dict[str, list[str]] = {
    "world": [
        f"{PY} -m apps.world --out runs/bench/world-default",
        f"{PY} -m apps.world --out runs/bench/world-1m --items 1000000",
    ],
    "sids": [
        f"{PY} -m apps.build_sids --data data/amazon18-office --out runs/bench/sids-office-{s} --source {s}"
        for s in ("text", "behaviour", "fused")
    ] + [f"{PY} -m apps.build_sids --data runs/bench/world-default --out runs/bench/sids-world-text --source text"],
    "quality": [
        f"{PY} -m apps.bench quality --data data/amazon18-office --model {m} {cfg} --out runs/bench/{m}_office.json"
        for m, cfg in (("pop", ""), ("markov", ""), ("sasrec", ""),
                       ("tiger", f"{FIRST} --set variant=tiger --set sid.source=text"),
                       ("oxygen", f"{FIRST} --set sid.source=text"))
    ],
    "quality-refit": [
        f"{PY} -m apps.bench quality --data data/amazon18-office --model {m} {cfg} --refit --out runs/bench/{m}_office_refit.json"
        for m, cfg in (("pop", ""), ("markov", ""), ("sasrec", "--config configs/office/sasrec.yaml"),
                       ("tiger", f"{OFFICE} --set variant=tiger {W64}"),
                       ("oxygen", f"{OFFICE} --set model.dropout=0.2 --set train.ema_decay=0"))
    ] + [f"{PY} -m apps.bench quality --data data/amazon18-office --model {m} --config configs/office/{m}.yaml "
         f"--refit --out runs/bench/{m}_office_fusion.json" for m in ("tiger", "oxygen")],
    "ablations": [
        f"{PY} -m apps.world --out runs/demo/world --items 3000 --users 3000 --days 60 --seed 1",
        f"{PY} -m apps.world --out runs/bench/world-long --items 3000 --users 1000 --days 180 --seed 1",
    ] + [f"{PY} -m bench.ablations --data runs/demo/world --kind {k} --config configs/world/ablation.yaml "
         f"--out runs/bench/ablation_{k}.json" for k in ("placement", "igr_q2i", "query", "trigger")]
      + [f"{PY} -m bench.ablations --data runs/bench/world-long --kind igr_q2i --config configs/world/ablation.yaml "
         "--out runs/bench/ablation_igr_q2i_long.json",
         f"{PY} -m bench.ablations --data runs/demo/world --kind unified --config configs/world/converged.yaml "
         "--out runs/bench/ablation_unified_converged.json",
         f"{PY} -m bench.ablations --data runs/demo/world --kind placement --config configs/world/converged.yaml "
         "--out runs/bench/ablation_placement_converged.json",
         f"{PY} -m bench.ablations --data runs/bench/world-long --kind igr_q2i --config configs/world/converged.yaml "
         "--out runs/bench/ablation_igr_q2i_long_converged.json"],
    "seeds": [  # Office and the shop world over 3 seeds, Table 7 over 3 seeds (docs: significance)
        f"{PY} -m apps.world --out runs/demo/world --items 3000 --users 3000 --days 60 --seed 1",
        f"{PY} -m apps.world --out runs/bench/world-long --items 3000 --users 1000 --days 180 --seed 1",
    ] + [
        f"{PY} -m bench.seeds run --data data/amazon18-office --model {m} {cfg} --refit --seeds {seeds} "
        "--dir runs/bench/seeds_office"
        for m, cfg, seeds in (("markov", "", "0"), ("pop", "", "0"),
                              ("sasrec", "--config configs/office/sasrec.yaml", "0 1 2"),
                              ("tiger", "--config configs/office/tiger.yaml", "0 1 2"),
                              ("oxygen", "--config configs/office/oxygen.yaml", "0 1 2"),
                              ("oxygen", "--config configs/office/oxygen_copy.yaml --label oxygen-copy", "0 1 2"),
                              ("tiger", "--config configs/office/tiger_copy.yaml --label tiger-copy", "0 1 2"))
    ] + [f"{PY} -m bench.seeds summary --dir runs/bench/seeds_office --reference markov tiger sasrec "
         "--out runs/bench/seeds_office.json --plot docs/img/seeds_office.png --published TIGER=0.1408 MiniOneRec=0.1634"]
      + [f"{PY} -m bench.seeds run --data runs/demo/world --model {m} {cfg} --seeds {seeds} --dir runs/bench/seeds_world"
         for m, cfg, seeds in (("markov", "", "0"), ("pop", "", "0"), ("sasrec", "", "0 1 2"),
                               ("tiger", "--config configs/world/converged.yaml", "0 1 2"),
                               ("oxygen", "--config configs/world/converged.yaml", "0 1 2"))]
      + [f"{PY} -m bench.seeds summary --dir runs/bench/seeds_world --reference oxygen markov --out runs/bench/seeds_world.json "
         "--plot docs/img/seeds_world.png"]
      + [f"{PY} -m bench.ablations --data runs/bench/world-long --kind igr_q2i --config configs/world/converged.yaml "
         f"--seed {s} --out runs/bench/ablation_igr_q2i_long_converged_s{s}.json" for s in (0, 1, 2)]
      + [f"{PY} -m bench.ablations --merge "
         + " ".join(f"runs/bench/ablation_igr_q2i_long_converged_s{s}.json" for s in (0, 1, 2))
         + " --out runs/bench/ablation_igr_q2i_long_converged_seeds.json"],
    "decoding": [f"{PY} -m bench.decoding --out runs/bench/decoding.json"],
    "training": [f"{PY} -m bench.training --out runs/bench/training.json"],
    "serving": [f"{PY} -m bench.serving --bundle runs/demo/train/bundle --users-from runs/demo/world --clients 8 "
                "--seconds 20 --out runs/bench/serving.json --plot docs/img/serving_open_loop.png",
                f"{PY} -m bench.serve_deploy --bundle runs/demo/train/bundle --users-from runs/demo/world "
                "--instructions runs/demo/instructions/users.jsonl --out runs/bench/serve_deploy.json"],  # after make demo
    "nearline": [f"{PY} -m bench.nearline --data runs/bench/world-default --speedup 2000 --max-wall-s 240 "
                 "--out runs/bench/nearline_default.json --plot docs/img/nearline_load_default.png",
                 f"{PY} -m bench.instruction_ceiling --data runs/bench/world-default --out runs/bench/ceiling_default.json"],
    "ranking": [  # the reward mapping (docs: ranking, ab_test); the demo world and bundle come from `make demo`
        f"{PY} -m apps.train_ranker --data runs/demo/world --out runs/ranker_demo --seeds 0,1,2 --set epochs=15 "
        "--set batch_size=32 --set patience=3",
        f"{PY} -m bench.rewards --data runs/demo/world --bundle runs/demo/train/bundle --ranker runs/ranker_demo/ranker.pt "
        "--out runs/bench/rewards_demo.json",
        f"{PY} -m apps.ab_test --data runs/demo/world --arms pop,markov,sasrec,sft=bundle:runs/demo/train/bundle,oracle "
        "--out runs/ab_demo/ab_sft.json",
        f"{PY} -m apps.train_ranker --data runs/bench/world-default --out runs/bench/ranker_default",
        f"{PY} -m bench.ranker_step --data runs/bench/world-default --out runs/bench/ranker_step.json",
    ],
    "post_training": [  # docs: post_training (first runs; needs the ranking group's ranker)
        f"{PY} -m apps.post_train --bundle runs/demo/train/bundle --data runs/demo/world --ranker runs/ranker_demo/ranker.pt "
        f"--algo sa_gcpo --out runs/post/sa{k} --set iterations=40 {extra} --set threads=1"
        for k, extra in ((1, "--set lr=1e-4"), (2, "--set lr=5e-5 --set objective.kl_beta=0.1"))
    ] + [f"{PY} -m apps.ab_test --data runs/demo/world --arms sft=bundle:runs/demo/train/bundle,"
         "sa1=bundle:runs/post/sa1/bundle,sa2=bundle:runs/post/sa2/bundle --control sft --out runs/ab_demo/ab_post.json"],
}


def main(argv: list[str] | None = None) -> int:
    """Run the chosen groups; returns the number of failed commands."""
    p = argparse.ArgumentParser(prog="python -m bench.run_all", description=__doc__.split("\n")[0])
    p.add_argument("--only", default=",".join(GROUPS), help=f"comma-separated groups of {list(GROUPS)}")
    p.add_argument("--list", action="store_true", help="print the commands and exit")
    args = p.parse_args(argv)
    chosen = [g.strip() for g in args.only.split(",") if g.strip()]
    unknown = [g for g in chosen if g not in GROUPS]
    if unknown:
        p.error(f"unknown group(s) {unknown}; choose from {list(GROUPS)}")
    failed = 0
    for group in chosen:
        for cmd in GROUPS[group]:
            print(f"\n[{group}] $ {cmd}", flush=True)
            if args.list:
                continue
            t0 = time.perf_counter()
            rc = subprocess.call(shlex.split(cmd))
            print(f"[{group}] exit {rc} in {time.perf_counter() - t0:.0f}s", flush=True)
            failed += rc != 0
    return failed


if __name__ == "__main__":
    sys.exit(main())
