"""The plain pre-training loop (no Ray): epochs of shuffled mini-batches, AdamW with warmup and
cosine decay, gradient clipping, validation after each epoch, early stopping on the validation
metric, the best weights kept, and a per-epoch history for the training-curve plot.

The model is any `torch.nn.Module` whose `forward(batch)` returns an object with a scalar `.loss`
(and optionally a `.metrics` dict of floats). Validation is a callable `model -> dict` so this loop
knows nothing about decoding. The same `run_epoch` is what each Ray Train worker runs
(`oxygen.training.ray_train`), so both paths share one implementation.

    result = fit(model, train_batch, validate, TrainConfig(epochs=5))
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
from tqdm.auto import tqdm

from oxygen.config import TrainConfig
from oxygen.data.batch import ModelBatch
from oxygen.training.ema import Ema, averaged, make_ema

Validate = Callable[[torch.nn.Module], dict[str, float]]


@dataclass
class FitResult:
    """What `fit` returns: per-epoch history, the best epoch and its validation metrics."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_valid: dict[str, float] = field(default_factory=dict)
    train_seconds: float = 0.0


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, total_steps: int):
    """AdamW (no decay on biases/norms/embeddings' 1-d params) + linear warmup, cosine decay."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    rest = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": rest, "weight_decay": 0.0}], lr=cfg.lr)

    def schedule(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        frac = (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, schedule)


def batch_order(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Shuffled index batches Long[<=batch_size] covering 0..n-1 once."""
    perm = torch.randperm(n, generator=generator)
    for i in range(0, n, batch_size):
        yield perm[i:i + batch_size]


def train_step(model: torch.nn.Module, batch: ModelBatch, opt, sched, clip: float) -> dict[str, float]:
    """One optimiser step on `batch`; returns the loss terms as floats."""
    model.train()
    out = model(batch)
    opt.zero_grad(set_to_none=True)
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    sched.step()
    metrics = {"loss": float(out.loss.detach())}
    metrics.update({k: float(v) for k, v in getattr(out, "metrics", {}).items()})
    return metrics


def run_epoch(model: torch.nn.Module, data: ModelBatch, opt, sched, cfg: TrainConfig,
              generator: torch.Generator, shard: tuple[int, int] = (0, 1),
              ema: Ema | None = None) -> dict[str, float]:
    """One pass over `data` in shuffled global batches; returns the mean of each loss term.
    `ema` (if given) is updated after every step.

    With `shard=(rank, world)` (data-parallel workers) every worker draws the same global batch
    order and takes rows rank::world of each global batch, so DDP's gradient average reproduces
    the single-process step on the whole batch."""
    rank, world = shard
    sums: dict[str, float] = {}
    steps = 0
    order = list(batch_order(len(data), cfg.batch_size, generator))
    bar = tqdm(order, desc=f"train (worker {rank})" if world > 1 else "train", leave=False,
               disable=rank != 0)
    for idx in bar:
        m = train_step(model, data.select(idx[rank::world]), opt, sched, cfg.grad_clip)
        if ema is not None:
            ema.update()
        for k, v in m.items():
            sums[k] = sums.get(k, 0.0) + v
        steps += 1
        bar.set_postfix(loss=f"{m['loss']:.3f}")
    return {k: v / max(1, steps) for k, v in sums.items()}


def fit(model: torch.nn.Module, data: ModelBatch, validate: Validate, cfg: TrainConfig,
        metric: str = "hr@10") -> FitResult:
    """Train with early stopping on `validate(model)[metric]`; the model ends with the best weights
    (with `cfg.ema_decay` > 0, validation sees and the model keeps the EMA weights)."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    steps = cfg.epochs * math.ceil(len(data) / cfg.batch_size)
    opt, sched = make_optimizer(model, cfg, steps)
    ema = make_ema(model, cfg.ema_decay)
    result, best_state, bad, t0 = FitResult(), None, 0, time.time()
    for epoch in range(cfg.epochs):
        train_m = run_epoch(model, data, opt, sched, cfg, gen, ema=ema)
        model.eval()
        with torch.no_grad(), averaged(ema):
            valid_m = validate(model)
        row = {"epoch": epoch + 1, **{f"train_{k}": v for k, v in train_m.items()},
               **{f"valid_{k}": v for k, v in valid_m.items()}, "seconds": time.time() - t0}
        result.history.append(row)
        tqdm.write(" ".join(f"{k}={v:.4g}" for k, v in row.items()))
        if valid_m[metric] > result.best_valid.get(metric, -1.0):
            result.best_epoch, result.best_valid, bad = epoch + 1, valid_m, 0
            best_state = ema.state_dict() if ema is not None else copy.deepcopy(model.state_dict())
        else:
            bad += 1
            if bad >= cfg.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    result.train_seconds = time.time() - t0
    return result
