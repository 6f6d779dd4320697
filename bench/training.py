"""Training benchmark: samples/s and achieved GFLOP/s (MFU = fraction of the device's measured
matmul peak) of THE training loop, in-process (`oxygen.training.loop.fit`, 1 process with all the
threads: the reference) and on 1 and 2 Ray Train workers (`oxygen.training.ray_train.fit_ray`, DDP
over gloo, the threads split between the workers), at the demo model size (configs/world/demo.yaml:
d_model 96, 4 heads, 2+2 layers, d_ff 192) and at a larger one (d_model 256, 4 heads, 4+4 layers,
d_ff 1024).

Data: a generated shop world (`apps.world`, 3k items / 3k users / 60 days by default, ~21k train
rows) collated with random unique 3-level SIDs of the catalogue-sized width (256 per level; no text
encoder), no search-query embeddings; the large size trains on a fixed random subset of the rows so
its epoch also takes tens of seconds. No validation: every epoch is pure training. Each run trains
`epochs` epochs; the first is the warm-up, the steady epoch time is the mean of the others (from the
loop's per-epoch clock, which for Ray includes the per-epoch checkpoint of the previous epoch).
`startup_seconds` is everything else of the wall time: for Ray, `ray.init` + TorchTrainer / worker
start + process group + data shipping + the final checkpoint; ~0 in-process.

FLOPs (analytic, per training sample; a matmul [m, k] x [k, n] counts 2mkn). With d = d_model,
f = d_ff, E_l / D_l encoder / decoder layers, K_l the codebook width of SID level l (L levels),
T = encoder length as collated = profile slots + 1 reasoning token + C candidates + k' IGR items
(k' = min(igr_k, long_len) when IGR is on) + short_len (padded positions are computed too, so the
padded length is the one used), t = decoder length = P instruction-prefix tokens + L - 1 code tokens:

    encoder layer  = 8 T d^2  (q, k, v, out projections)  + 4 T^2 d  (scores Q K^T and weighted sum P V)
                   + 4 T d f  (FFN up and down)
    decoder layer  = 8 t d^2 + 4 t^2 d   (causal self-attention; SDPA computes the full t x t)
                   + 4 t d^2             (cross-attention q and out projections)
                   + 4 T d^2             (cross-attention k, v of the encoder memory)
                   + 4 t T d             (cross-attention scores and weighted sum over the memory)
                   + 4 t d f             (FFN)
    heads          = sum_l 2 d K_l       (one position per level)
    forward F      = E_l * encoder layer + D_l * decoder layer + heads
    train FLOPs    = 3 F                 (backward = 2 x forward: gradients of inputs and weights)

MoE FFNs count moe_active experts per token plus the router (2 d E). Not in F (listed as `extras`,
3% of the total at the demo size, 0.6% at the large one): the instruction MLPs (adapter of the
384-d text embedding, scenario-trigger fusion), the IGR/Q2I query MLP, IGR scoring of the long
history (no gradient) and the Q2I projection / cross-covariance; `flops_per_sample` gives both.
MFU = 3 F x samples/s / peak, peak = the measured matmul GFLOP/s of the device in the training
dtype (bench.peak.machine; on the CPU fp32 with all threads, 1-thread peak reported too; on CUDA
bf16 under `--precision auto`). The loop modes run on `--device` (LoopConfig.device: the loop moves
model and data there once, the forward runs in autocast of `--precision`); the Ray modes on the CPU.
tests/bench/test_training_bench.py checks F + extras against torch.utils.flop_counter.FlopCounterMode
on one forward + backward.

    python -m bench.training --out runs/bench/training.json     # both sizes, loop / 1 / 2 Ray workers
    python -m bench.training --quick                            # demo size, 6k rows, 2 epochs, ~3 min
    python -m bench.training --sizes demo --modes loop,loop1    # + the loop on one thread
    python -m bench.training --device cuda --modes loop         # on a GPU, MFU against its bf16 peak
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from apps.cli import write_report
from bench.peak import machine
from oxygen.config import ModelConfig
from oxygen.data.batch import ModelBatch
from oxygen.data.batching import CollateConfig
from oxygen.device import resolve_device
from oxygen.model import OxygenModel
from oxygen.model.instruction import PREFIX_LEN
from oxygen.training.loop import LoopConfig, Trainable, adamw_cosine, fit

SIZES: dict[str, dict] = {
    "tiny": {"d_model": 32, "n_heads": 2, "enc_layers": 1, "dec_layers": 1, "d_ff": 64},  # dry runs, tests
    "demo": {"d_model": 96, "n_heads": 4, "enc_layers": 2, "dec_layers": 2, "d_ff": 192},
    "large": {"d_model": 256, "n_heads": 4, "enc_layers": 4, "dec_layers": 4, "d_ff": 1024},
}
COMMON = {"dropout": 0.1, "use_item_id": False, "use_q2i": True}  # configs/world/base.yaml
MODES = ("loop", "ray1", "ray2")  # in-process reference (all threads), 1 and 2 Ray Train workers
EXTRA_MODES = ("loop1",)  # on request (--modes): in-process with one thread
WORLD = {"items": 3000, "users": 3000, "days": 60, "seed": 1}  # the demo world (~21k train rows)
ROWS = {"demo": None, "large": 4000}  # rows trained per size (None: all)
OPT = {"lr": 0.002, "weight_decay": 0.01, "warmup_steps": 50}  # configs/world/base.yaml


# ---- FLOPs ----

def sequence_lengths(cfg: ModelConfig, batch: ModelBatch) -> tuple[int, int]:
    """(T encoder length, t decoder length) of `batch` as the model runs it (padded lengths)."""
    H = batch.long_mask.shape[1]
    igr = min(cfg.igr_k, H) if cfg.use_igr and H > 0 else 0
    T = batch.profile.shape[1] + 1 + batch.cand_mask.shape[1] + igr + batch.short_mask.shape[1]
    t = PREFIX_LEN[cfg.instruction_placement] + len(cfg.codebook_sizes) - 1
    return T, t


def flops_per_sample(cfg: ModelConfig, batch: ModelBatch) -> dict[str, float]:
    """Analytic FLOPs per training sample (module docstring): the forward terms, `forward` (F),
    `train` (3 F, what MFU uses), `extras_train` (the small MLPs / IGR / Q2I, fwd + bwd) and
    `total_train` (train + extras_train), with T and t."""
    if cfg.copy_head:
        raise ValueError("the FLOP count does not cover the copy head; benchmark with copy_head off")
    d, f, A, E = cfg.d_model, cfg.d_ff, cfg.adapter_dim, cfg.instr_dim
    T, t = sequence_lengths(cfg, batch)
    H = batch.long_mask.shape[1]
    moe_enc = cfg.moe_experts > 0 and cfg.moe_where in ("encoder", "both")
    moe_dec = cfg.moe_experts > 0 and cfg.moe_where in ("decoder", "both")

    def ffn(n: int, moe: bool) -> float:
        return n * (4 * d * f * cfg.moe_active + 2 * d * cfg.moe_experts) if moe else n * 4 * d * f

    terms = {
        "enc_proj": cfg.enc_layers * 8 * T * d * d,
        "enc_attn": cfg.enc_layers * 4 * T * T * d,
        "enc_ffn": cfg.enc_layers * ffn(T, moe_enc),
        "dec_self_proj": cfg.dec_layers * 8 * t * d * d,
        "dec_self_attn": cfg.dec_layers * 4 * t * t * d,
        "dec_cross_qo": cfg.dec_layers * 4 * t * d * d,
        "dec_cross_kv": cfg.dec_layers * 4 * T * d * d,
        "dec_cross_attn": cfg.dec_layers * 4 * t * T * d,
        "dec_ffn": cfg.dec_layers * ffn(t, moe_dec),
        "heads": sum(2 * d * k for k in cfg.codebook_sizes),
    }
    forward = float(sum(terms.values()))
    # small parts, each with its own backward factor: x3 when its input needs a gradient, x2 when
    # only the weights do (adapter on the fixed text embedding), x1 without gradient (IGR scoring)
    q2i = cfg.use_q2i is not False  # None (unresolved) counts as on, as in the model
    extras = 0
    if cfg.use_reasoning:
        extras += 2 * E * d * 2 + 2 * d * d * 3  # instruction adapter MLP (E -> d -> d)
    if cfg.instruction_placement not in ("two_tokens", "none"):
        extras += (2 * 2 * d * d + 2 * d * d) * 3  # scenario-trigger fusion MLP (2d -> d -> d)
    # query MLP (2d -> d -> A): always run, gradient only through Q2I (IGR scores without one)
    extras += (2 * 2 * d * d + 2 * d * A) * (3 if q2i else 1)
    if cfg.use_igr and H > 0:
        extras += H * (2 * d * A + 2 * A)  # item projection + dot products, no gradient
    if q2i:
        extras += (2 * d * A + 2 * A * A) * 3  # target projection + cross-covariance (per sample)
    return {**{k: float(v) for k, v in terms.items()}, "forward": forward, "train": 3 * forward,
            "extras_train": float(extras), "total_train": 3 * forward + extras, "T": T, "t": t}


def counted_flops(model: OxygenModel, batch: ModelBatch) -> float:
    """FLOPs of one forward + backward of `model` on `batch` as torch.utils.flop_counter counts them
    (SDPA forced onto its math backend, whose matmuls the counter sees; the fused CPU kernels are
    not counted). The slow reference of `flops_per_sample` (x len(batch))."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    model.train()
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as fc:
        model(batch).loss.backward()
    model.zero_grad(set_to_none=True)
    return float(fc.get_total_flops())


# ---- data ----

def random_codebook(item_ids: np.ndarray, width: int, levels: int = 3, seed: int = 0):
    """A Codebook of random unique `levels`-level codes (each < width) for `item_ids`."""
    from oxygen.semantic_ids.codebook import Codebook

    rng = np.random.default_rng(seed)
    space = width ** levels
    flat = rng.choice(space, len(item_ids), replace=False) if space < 10 ** 7 else \
        np.unique(rng.integers(0, space, 2 * len(item_ids)))[:len(item_ids)]
    flat = rng.permutation(flat)
    codes = np.stack(np.unravel_index(flat, (width,) * levels), axis=1).astype(np.int64)
    return Codebook(item_ids=np.asarray(item_ids), codes=codes, widths=[width] * levels)


def make_data(world: dict = WORLD, directory: Path | str | None = None, long_len: int = 40):
    """A generated shop world (apps.world with `world`'s sizes, written to `directory` or a temp dir)
    collated with random unique SIDs (width rq_kmeans.default_width(N)) -> oxygen.training.prepare's
    Prepared (train split only; `model_config(prep, size)` gives a size's ModelConfig)."""
    from apps import world as world_app
    from oxygen.data.io import load_dataset
    from oxygen.semantic_ids.rq_kmeans import default_width
    from oxygen.training.prepare import prepare

    d = Path(directory or tempfile.mkdtemp(prefix="bench-training-world-"))
    if not (d / "train.jsonl").exists():
        world_app.main(["--out", str(d), "--items", str(world["items"]), "--users", str(world["users"]),
                        "--days", str(world["days"]), "--seed", str(world["seed"]), "--quiet"])
    ds = load_dataset(d, splits=("train",))
    ids = np.array(sorted(it.item_id for it in ds.items))
    cb = random_codebook(ids, default_width(len(ids)))
    return prepare(ds, cb, CollateConfig(long_len=long_len), use_queries=False)


def model_config(prep, size: str) -> ModelConfig:
    """The ModelConfig of size `size` (SIZES + COMMON) with the data-dependent sizes of `prep`."""
    from oxygen.training.prepare import model_config_for

    return model_config_for(prep, ModelConfig(**SIZES[size], **COMMON))


def subset(batch: ModelBatch, rows: int | None, seed: int = 0) -> ModelBatch:
    """A fixed random subset of `rows` rows of `batch` (all of it when rows is None or larger)."""
    if rows is None or rows >= len(batch):
        return batch
    idx = np.sort(np.random.default_rng(seed).choice(len(batch), rows, replace=False))
    return batch.select(torch.from_numpy(idx))


# ---- runs ----

@dataclass
class Run:
    """What one (size, mode) run measured: per-epoch seconds (the loop's clock), wall time, Ray start."""

    epoch_seconds: list[float]
    wall_seconds: float
    ray_init_seconds: float = 0.0


def _epochs(history: list[dict]) -> list[float]:
    """Per-epoch seconds from the loop history's cumulative `seconds`."""
    marks = [0.0] + [h["seconds"] for h in history]
    return [b - a for a, b in zip(marks, marks[1:])]


def _optimizer(cfg: ModelConfig, data: ModelBatch, batch_size: int, epochs: int):
    steps = epochs * -(-len(data) // batch_size)
    return partial(adamw_cosine, lr=OPT["lr"], weight_decay=OPT["weight_decay"],
                   warmup_steps=OPT["warmup_steps"], total_steps=steps)


def run_loop(cfg: ModelConfig, data: ModelBatch, epochs: int, batch_size: int = 256, threads: int = 2,
             seed: int = 0, device: str = "auto", precision: str = "auto") -> Run:
    """THE loop in this process with `threads` torch threads, `epochs` epochs, no validation, on
    `device` in `precision` (LoopConfig's: the loop moves model and data there once)."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        t0 = time.perf_counter()
        torch.manual_seed(seed)
        model = OxygenModel(cfg)
        opt, sched = _optimizer(cfg, data, batch_size, epochs)(model)
        loop = LoopConfig(epochs=epochs, batch_size=batch_size, seed=seed, grad_clip=1.0, device=device,
                          precision=precision)
        result = fit(Trainable(model, data, opt, sched), loop)
        return Run(_epochs(result.history), time.perf_counter() - t0)
    finally:
        torch.set_num_threads(old)


def run_ray(cfg: ModelConfig, data: ModelBatch, epochs: int, workers: int, batch_size: int = 256,
            threads: int = 2, seed: int = 0) -> Run:
    """The same loop on `workers` Ray Train workers (`threads` torch threads split between them);
    Ray is started here (timed) and shut down afterwards, as `apps.train --workers N` does it."""
    import ray

    from oxygen.training.ray_train import RayJob, fit_ray

    if ray.is_initialized():
        ray.shutdown()
    t0 = time.perf_counter()
    ray.init(num_cpus=max(2, workers), include_dashboard=False, log_to_driver=True)
    ray_init = time.perf_counter() - t0
    try:
        torch.manual_seed(seed)
        model = OxygenModel(cfg)
        job = RayJob(factory=partial(OxygenModel, cfg), init_state=model.state_dict(), data=data,
                     optimizer=_optimizer(cfg, data, batch_size, epochs),
                     loop=LoopConfig(epochs=epochs, batch_size=batch_size, seed=seed, grad_clip=1.0, device="cpu"),
                     threads=threads)
        with tempfile.TemporaryDirectory(prefix="bench-training-ray-") as storage:
            result, _ = fit_ray(job, workers, storage, name=f"bench-{workers}")
        return Run(_epochs(result.history), time.perf_counter() - t0, ray_init)
    finally:
        ray.shutdown()


def record(size: str, mode: str, run: Run, rows: int, flops: dict, peak: float, threads: int) -> dict:
    """One JSON record of a run: steady-state epoch time (epochs after the first), samples/s, GFLOP/s
    (3 F per sample) and MFU against `peak`, start-up, and the first (warm-up) epoch."""
    steady = run.epoch_seconds[1:] or run.epoch_seconds
    epoch_s = float(np.mean(steady))
    sps = rows / epoch_s
    workers = 2 if mode == "ray2" else 1
    return {"size": size, "mode": mode, "workers": workers, "threads": threads,
            "threads_per_worker": max(1, threads // workers), "rows": rows,
            "samples_per_s": sps, "gflops_per_s": sps * flops["train"] / 1e9,
            "mfu": sps * flops["train"] / 1e9 / peak, "gflops_per_s_with_extras": sps * flops["total_train"] / 1e9,
            "epoch_seconds": epoch_s, "epoch_seconds_all": run.epoch_seconds, "first_epoch_seconds": run.epoch_seconds[0],
            "startup_seconds": run.wall_seconds - sum(run.epoch_seconds), "ray_init_seconds": run.ray_init_seconds,
            "wall_seconds": run.wall_seconds, "gflop_per_sample": flops["train"] / 1e9}


def run_benchmark(sizes: list[str], modes: list[str], epochs: int = 3, world: dict = WORLD,
                  rows: dict | None = None, threads: int = 2, batch_size: int = 256,
                  world_dir: Path | str | None = None, device: str = "auto", precision: str = "auto") -> dict:
    """The grid: {'machine': `machine(...)`, 'flops': {size: flops_per_sample}, 'records': [record
    per (size, mode)], 'load_start', 'load_end'}; the loop modes run on `device` in `precision` (MFU
    against the device's peak in that dtype), the Ray modes on the CPU only."""
    dev = resolve_device(device)
    if dev.type != "cpu" and any(m.startswith("ray") for m in modes):
        raise ValueError(f"the Ray modes run on the CPU here; use --modes loop,loop1 with --device {device}")
    rows = {**ROWS, **(rows or {})}
    load_start = os.getloadavg()
    mach = machine(dev, precision, threads)
    peak = mach["peak_gflops"]
    prep = make_data(world, world_dir)
    data = prep.batches["train"]
    out = {"machine": mach, "world": world, "epochs": epochs, "batch_size": batch_size, "flops": {}, "records": []}
    bar = tqdm([(s, m) for s in sizes for m in modes], desc="training bench")
    for size, mode in bar:
        bar.set_postfix(size=size, mode=mode)
        cfg = model_config(prep, size)
        part = subset(data, rows.get(size))
        flops = flops_per_sample(cfg, part)
        out["flops"][size] = {**flops, "params": OxygenModel(cfg).num_parameters}
        if mode in ("loop", "loop1"):
            run = run_loop(cfg, part, epochs, batch_size, threads if mode == "loop" else 1, device=str(dev),
                           precision=precision)
        else:
            run = run_ray(cfg, part, epochs, {"ray1": 1, "ray2": 2}[mode], batch_size, threads)
        out["records"].append(record(size, mode, run, len(part), flops, peak, 1 if mode == "loop1" else threads))
        tqdm.write(table({"records": out["records"][-1:]}).splitlines()[-1])
    out["load_start"], out["load_end"] = list(load_start), list(os.getloadavg())
    return out


def table(result: dict) -> str:
    """Markdown table of the records."""
    lines = ["| size | mode | workers x threads | rows | samples/s | GFLOP/s | MFU | steady epoch s | "
             "first epoch s | start-up s |", "|" + "---|" * 10]
    for r in result["records"]:
        lines.append(f"| {r['size']} | {r['mode']} | {r['workers']} x {r['threads_per_worker']} | {r['rows']} | "
                     f"{r['samples_per_s']:.0f} | {r['gflops_per_s']:.1f} | {r['mfu']:.1%} | "
                     f"{r['epoch_seconds']:.1f} | {r['first_epoch_seconds']:.1f} | {r['startup_seconds']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    """CLI: run the grid, print the FLOP counts and the markdown table, optionally write the JSON."""
    ap = argparse.ArgumentParser(prog="python -m bench.training", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, help="write the result JSON here")
    ap.add_argument("--sizes", default="demo,large", help=f"comma-separated of {list(SIZES)}")
    ap.add_argument("--modes", default=",".join(MODES), help=f"comma-separated of {list(MODES + EXTRA_MODES)}")
    ap.add_argument("--epochs", type=int, default=3, help="epochs per run (the first is the warm-up)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads in all (split between Ray workers)")
    ap.add_argument("--batch-size", type=int, default=256, help="global batch (split between Ray workers)")
    ap.add_argument("--world", type=Path, help="reuse/write the generated world in this folder")
    ap.add_argument("--quick", action="store_true", help="demo size only, 6k rows, 2 epochs")
    ap.add_argument("--device", default="cpu", help="cpu (default: the documented CPU tables) | auto | cuda | cuda:N "
                    "(the loop modes; the Ray modes run on the CPU)")
    ap.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                    help="autocast of the forward: auto = bf16 on CUDA, fp32 on the CPU")
    args = ap.parse_args(argv)
    sizes, modes = args.sizes.split(","), args.modes.split(",")
    for s in sizes:
        if s not in SIZES:
            ap.error(f"unknown size {s!r}; choose from {list(SIZES)}")
    for m in modes:
        if m not in MODES + EXTRA_MODES:
            ap.error(f"unknown mode {m!r}; choose from {list(MODES + EXTRA_MODES)}")
    rows, epochs = None, args.epochs
    if args.quick:
        sizes, rows, epochs = ["demo"], {"demo": 6000}, 2
    result = run_benchmark(sizes, modes, epochs, rows=rows, threads=args.threads, batch_size=args.batch_size,
                           world_dir=args.world, device=args.device, precision=args.precision)
    for size, fl in result["flops"].items():
        print(f"{size}: T={fl['T']} t={fl['t']} params={fl['params']:,} train GFLOP/sample={fl['train'] / 1e9:.4f} "
              f"(+{fl['extras_train'] / fl['train']:.1%} extras)")
    m = result["machine"]
    one = f", {m['peak_gflops_1_thread']:.1f} with 1" if m["peak_gflops_1_thread"] else ""
    print(f"peak {m['peak_dtype']} matmul on {m['device_name']}: {m['peak_gflops']:.1f} GFLOP/s "
          f"with {m['threads']} threads{one}")
    print(table(result))
    print(f"load average start {result['load_start']} end {result['load_end']}")
    if args.out:
        write_report(args.out, result)
    return result


if __name__ == "__main__":
    main()
