"""The pre-training loop under Ray Train: `TorchTrainer` with N CPU workers (DDP over gloo).

Every worker builds the model from the same factory and the same initial weights, wraps it with
`ray.train.torch.prepare_model` (DDP), and runs `oxygen.training.loop.run_epoch` on its shard of
each global batch (rows rank::world), so gradients averaged by DDP equal the single-process
gradient and both paths give matching results. Rank 0 validates after each epoch and reports the
metrics and (at the end) a checkpoint of the best weights.

    result = fit_ray(factory, init_state, data, validate, TrainConfig(), num_workers=2, storage=...)
"""

from __future__ import annotations

import copy
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import ray
import ray.train
import torch
from ray.train.torch import TorchTrainer

from oxygen.config import TrainConfig
from oxygen.data.batch import ModelBatch
from oxygen.training.ema import averaged, make_ema
from oxygen.training.loop import FitResult, Validate, make_optimizer, run_epoch

ModelFactory = Callable[[], torch.nn.Module]


@dataclass
class RayJob:
    """Everything a worker needs (shipped once through the object store)."""

    factory: ModelFactory
    init_state: dict
    data: ModelBatch
    validate: Validate | None
    cfg: TrainConfig
    metric: str = "hr@10"


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


def _worker_loop(config: dict) -> None:
    """Runs on each Ray Train worker: DDP training with rank-0 validation and checkpointing."""
    job: RayJob = ray.get(config["job"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(max(1, job.cfg.threads // world))
    torch.manual_seed(job.cfg.seed)
    model = job.factory()
    model.load_state_dict(job.init_state)
    model = ray.train.torch.prepare_model(model, move_to_device=False)
    gen = torch.Generator().manual_seed(job.cfg.seed)
    steps = job.cfg.epochs * math.ceil(len(job.data) / job.cfg.batch_size)
    opt, sched = make_optimizer(model, job.cfg, steps)
    ema = make_ema(_unwrap(model), job.cfg.ema_decay)
    best, best_state, bad = -1.0, None, 0
    for epoch in range(job.cfg.epochs):
        train_m = run_epoch(model, job.data, opt, sched, job.cfg, gen, (rank, world), ema=ema)
        metrics = {"epoch": epoch + 1, **{f"train_{k}": v for k, v in train_m.items()}}
        stop = False
        if job.validate is not None:
            _unwrap(model).eval()
            with torch.no_grad(), averaged(ema):
                valid = job.validate(_unwrap(model))
            metrics.update({f"valid_{k}": v for k, v in valid.items()})
            if valid[job.metric] > best:
                best, bad = valid[job.metric], 0
                best_state = ema.state_dict() if ema is not None else copy.deepcopy(_unwrap(model).state_dict())
            else:
                bad += 1
                stop = bad >= job.cfg.patience
        last = stop or epoch + 1 == job.cfg.epochs
        final = ema.state_dict() if ema is not None else _unwrap(model).state_dict()
        _report(metrics, best_state or final, rank, last)
        if stop:  # every worker computes the same validation result, so all stop together
            break


def _report(metrics: dict, state: dict, rank: int, last: bool) -> None:
    """Report metrics each epoch; on the last one rank 0 attaches the best weights as a checkpoint."""
    if not (last and rank == 0):
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as d:
        torch.save(state, Path(d) / "state.pt")
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d))


def fit_ray(job: RayJob, num_workers: int, storage: Path) -> tuple[FitResult, dict]:
    """Train under Ray Train with `num_workers` CPU workers; returns (result, best state dict)."""
    if num_workers < 1:
        raise ValueError(f"num_workers must be >= 1, got {num_workers}")
    if not ray.is_initialized():
        ray.init(num_cpus=max(2, num_workers), include_dashboard=False, log_to_driver=False)
    trainer = TorchTrainer(
        _worker_loop, train_loop_config={"job": ray.put(job)},
        scaling_config=ray.train.ScalingConfig(num_workers=num_workers, use_gpu=False),
        run_config=ray.train.RunConfig(storage_path=str(Path(storage).resolve()), name="pretrain"))
    t0 = time.time()
    out = trainer.fit()
    with out.checkpoint.as_directory() as d:
        state = torch.load(Path(d) / "state.pt", weights_only=True)
    result = FitResult(history=[out.metrics], train_seconds=time.time() - t0)
    return result, state
