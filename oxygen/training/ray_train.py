"""THE training loop under Ray Train: `TorchTrainer` with N workers (DDP over gloo on CPU, NCCL on
GPU), a Ray Train checkpoint after every epoch, and resumption of a killed run.

The job's `LoopConfig.device` picks the workers' hardware (`gpu_workers`): cuda -> one GPU per
worker (`ScalingConfig(use_gpu=True)`, NCCL, the model and each worker's data on its GPU, bf16
autocast under precision auto); cpu -> CPU workers over gloo; auto -> GPUs when the cluster has
one per worker.

Every worker builds the model from the same factory and initial weights, wraps it with
`ray.train.torch.prepare_model` (DDP), and runs `oxygen.training.loop.fit` on its shard of each
global batch (rows rank::world), so gradients averaged by DDP equal the single-process gradient and
both paths give matching results. With a `RowCollator` as the data, the rows arrive instead as
each worker's Ray Data shard (`oxygen.training.ray_data`), are collated there, cut to the
smallest shard's size (DDP steps in lockstep) and stepped in local batches of batch_size / N.
Every worker validates (so all stop together); after each epoch
rank 0 reports the loop's full state (weights, optimiser, schedule, RNG, EMA, best weights) as a
checkpoint. A new run with the same `storage` and `name` finds the latest checkpoint
(`ray.train.get_checkpoint`) and continues from it, so a killed job is resumed by starting it again.

    job = RayJob(factory, init_state, data, optimizer, LoopConfig(...), validate)
    result, state = fit_ray(job, num_workers=2, storage="runs/x/ray_train", name="fit")
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import ray
import ray.train
import torch
from ray.train.torch import TorchConfig, TorchTrainer

from oxygen.data.batch import ModelBatch
from oxygen.device import move, ray_gpus_wanted
from oxygen.training.loop import FitResult, LoopConfig, LoopState, LossFn, Trainable, Validate, fit, model_loss
from oxygen.training.prepare import RowCollator
from oxygen.training.ray_data import init_ray, shard_rows

ModelFactory = Callable[[], torch.nn.Module]
OptimizerFactory = Callable[[torch.nn.Module], tuple[torch.optim.Optimizer, Any]]
LOOP_FILE, FINAL_FILE = "loop.pt", "final.pt"


@dataclass
class RayJob:
    """Everything a worker needs (shipped once through the object store). `data` is the collated
    train batch every worker slices (rows rank::world of each global batch), or a `RowCollator`
    that each worker applies to its own Ray Data shard of the `train` dataset."""

    factory: ModelFactory
    init_state: dict
    data: Any
    optimizer: OptimizerFactory
    loop: LoopConfig
    validate: Validate | None = None
    loss: LossFn = model_loss
    threads: int = 2


def _load(checkpoint: ray.train.Checkpoint | None, name: str) -> Any:
    """The object saved as `name` in a Ray Train checkpoint (None without a checkpoint or file)."""
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as d:
        path = Path(d) / name
        return torch.load(path, weights_only=False, map_location="cpu") if path.exists() else None


def _report(state: LoopState, rank: int, final: dict | None = None) -> None:
    """Report the epoch's metrics from every worker; rank 0 attaches the loop state (and, at the
    end, the selected weights) as the checkpoint."""
    metrics = {**state.history[-1], "done": float(state.done)} if state.history else {"done": 1.0}
    if rank != 0:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as d:
        torch.save(state, Path(d) / LOOP_FILE)
        if final is not None:
            torch.save(final, Path(d) / FINAL_FILE)
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d))


def _worker_loop(config: dict) -> None:
    """Runs on each Ray Train worker: DDP training with checkpoints, resumed when one exists."""
    job: RayJob = ray.get(config["job"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(max(1, job.threads // world))
    torch.manual_seed(job.loop.seed)
    model = job.factory()
    model.load_state_dict(job.init_state)
    if config.get("use_gpu"):  # this worker's GPU; DDP with device_ids over NCCL
        model, device = ray.train.torch.prepare_model(model), str(ray.train.torch.get_device())
    else:
        model, device = ray.train.torch.prepare_model(model, move_to_device=False), "cpu"
    opt, sched = job.optimizer(model)
    data, loop, shard = job.data, replace(job.loop, device=device), (rank, world)
    if isinstance(data, RowCollator):
        data, loop, shard = (_local_shard(data, loop, rank, world), replace(loop, batch_size=max(1, loop.batch_size // world)),
                             (0, 1))
    resume = _load(ray.train.get_checkpoint(), LOOP_FILE)
    if resume is not None and rank == 0:
        print(f"resuming from the checkpoint after epoch {resume.epoch}", flush=True)
    last: list[LoopState] = []

    def on_epoch(state: LoopState) -> None:
        last[:] = [state]
        if not state.done:
            _report(state, rank)

    result = fit(Trainable(model, data, opt, sched, job.loss), loop, job.validate,
                 shard=shard, on_epoch=on_epoch, resume=resume)
    final = {"weights": move(_unwrapped(model).state_dict(), "cpu"), "result": result}
    _report(last[0] if last else resume, rank, final)


def _local_shard(collator: RowCollator, loop: LoopConfig, rank: int, world: int) -> ModelBatch:
    """This worker's Ray Data shard collated here, cut to the smallest shard's size (a fixed random
    subset) so every worker takes the same number of steps (DDP runs them in lockstep)."""
    batch = collator(shard_rows("train"))
    n = torch.tensor([len(batch)], device=loop.device)  # NCCL reduces only tensors on the GPU
    if world > 1:
        torch.distributed.all_reduce(n, op=torch.distributed.ReduceOp.MIN)
    if int(n) < len(batch):
        keep = torch.randperm(len(batch), generator=torch.Generator().manual_seed(loop.seed + rank))[:int(n)]
        batch = batch.select(keep.sort().values)
    return batch


def _unwrapped(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


def gpu_workers(device: str, num_workers: int) -> bool:
    """Whether each Ray Train worker takes a GPU for a job on `device`: cpu -> no; cuda -> yes (a
    DeviceError on a local Ray with fewer GPUs than workers; a cluster's autoscaler may still add
    GPU nodes); auto -> when the cluster has a GPU per worker."""
    return ray_gpus_wanted(device, num_workers, float(ray.cluster_resources().get("GPU", 0)),
                           bool(os.environ.get("RAY_ADDRESS")), f"{num_workers} Ray Train worker(s), one each")


def fit_ray(job: RayJob, num_workers: int, storage: Path | str, name: str = "fit",
            datasets: dict[str, Any] | None = None) -> tuple[FitResult, dict]:
    """Train under Ray Train with `num_workers` workers on the job's device (`gpu_workers`); returns
    (result, selected state dict). `datasets` = {"train": Ray Dataset} when `job.data` is a
    RowCollator (rows stay in Ray Data). A run with the same `storage`/`name` as an unfinished one
    resumes from its last checkpoint."""
    if num_workers < 1:
        raise ValueError(f"num_workers must be >= 1, got {num_workers}")
    if isinstance(job.data, RowCollator) and "train" not in (datasets or {}):
        raise ValueError("job.data is a RowCollator: pass datasets={'train': <Ray Dataset of rows>}")
    init_ray(num_workers)
    use_gpu = gpu_workers(job.loop.device, num_workers)
    trainer = TorchTrainer(
        _worker_loop, train_loop_config={"job": ray.put(job), "use_gpu": use_gpu}, datasets=datasets,
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ray.train.ScalingConfig(num_workers=num_workers, use_gpu=use_gpu),
        run_config=ray.train.RunConfig(storage_path=str(Path(storage).resolve()), name=name,
                                       checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2)))
    out = trainer.fit()
    final = _load(out.checkpoint, FINAL_FILE)
    if final is None:
        raise RuntimeError(f"Ray Train run {name} under {storage} ended without its final checkpoint")
    return final["result"], final["weights"]
