"""THE training loop (no Ray): epochs of shuffled mini-batches, an optimiser step per batch
(optional gradient clipping and LR schedule), an optional EMA of the weights, validation after
each epoch, early stopping on a selection metric with the best weights kept, a per-epoch history,
and a resumable `LoopState`. Every trainer of the project runs it: the generative model's fit and
refit, SASRec's fit and refit, each Ray Train worker (oxygen.training.ray_train) and the small
instruction LM (oxygen.training.instructor).

What is trained is a `Trainable`: a module, its data (a ModelBatch or a row-indexed tensor), an
optimiser (+ scheduler) and a loss function `loss(model, batch, generator)` returning a scalar
tensor or an object with `.loss` (and optionally `.metrics`, a dict of floats). Validation is a
callable `model -> dict` so the loop knows nothing about decoding. `LoopConfig.device` /
`precision` (oxygen.device) say where it trains: the model and the data move there once, each
forward runs in autocast (bf16 on CUDA under auto), and checkpoints are CPU copies.

    t = Trainable(model, data, *adamw_cosine(model, cfg.lr, cfg.weight_decay, cfg.warmup_steps, steps))
    result = fit(t, LoopConfig(epochs=20, batch_size=256, select="valid_hr@10"), validate)
    result = fit(t, LoopConfig(epochs=result.best_epoch, batch_size=256))     # refit: fixed epochs, last weights
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
from tqdm.auto import tqdm

from oxygen.device import autocast, module_device, move, resolve_device
from oxygen.training.ema import Ema, averaged, make_ema

Validate = Callable[[torch.nn.Module], dict[str, float]]
LossFn = Callable[[torch.nn.Module, Any, torch.Generator], Any]
OnEpoch = Callable[["LoopState"], None]


def model_loss(model: torch.nn.Module, batch: Any, generator: torch.Generator) -> Any:
    """The default loss: the model's own forward (`model(batch)` with `.loss`)."""
    return model(batch)


@dataclass
class Trainable:
    """What the loop trains: `model` on `data` (len() rows; ModelBatch.select or tensor indexing)."""

    model: torch.nn.Module
    data: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any = None
    loss: LossFn = model_loss


@dataclass(frozen=True)
class LoopConfig:
    """How long and how to select. `select` names a key of the epoch's history row (e.g.
    'valid_hr@10', or 'train_loss' with maximize=False); None trains exactly `epochs` epochs and
    keeps the last weights (or their EMA), which is what a refit does."""

    epochs: int
    batch_size: int
    patience: int = 3
    seed: int = 0
    ema_decay: float = 0.0
    grad_clip: float | None = None
    select: str | None = None
    maximize: bool = True
    device: str = "auto"  # oxygen.device.resolve_device: auto (CUDA when visible) | cpu | cuda | cuda:N
    precision: str = "auto"  # oxygen.device.autocast of the forward: auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16


@dataclass
class FitResult:
    """What `fit` returns: per-epoch history, the best epoch and its validation metrics."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_valid: dict[str, float] = field(default_factory=dict)
    train_seconds: float = 0.0


@dataclass
class LoopState:
    """Everything needed to continue a run after epoch `epoch` (a checkpoint's content)."""

    epoch: int = 0
    done: bool = False
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_score: float = -math.inf
    best_valid: dict[str, float] = field(default_factory=dict)
    best_state: dict | None = None
    bad: int = 0
    seconds: float = 0.0
    weights: dict | None = None
    optimizer: dict | None = None
    scheduler: dict | None = None
    generator: torch.Tensor | None = None
    rng: torch.Tensor | None = None
    ema: dict | None = None


def adamw_cosine(model: torch.nn.Module, lr: float, weight_decay: float, warmup_steps: int, total_steps: int):
    """AdamW (no decay on 1-d params: biases, norms) + linear warmup then cosine decay to 0.1 lr."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    rest = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                             {"params": rest, "weight_decay": 0.0}], lr=lr)

    def schedule(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        frac = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, schedule)


def batch_order(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Shuffled index batches Long[<=batch_size] covering 0..n-1 once."""
    perm = torch.randperm(n, generator=generator, device="cpu")
    for i in range(0, n, batch_size):
        yield perm[i:i + batch_size]


def take(data: Any, index: torch.Tensor, device: torch.device | None = None) -> Any:
    """Rows `index` of `data` (ModelBatch.select, or tensor indexing), on `device` when given (a
    no-op for data the loop already moved there)."""
    rows = data[index.to(data.device)] if isinstance(data, torch.Tensor) else data.select(index)
    return rows if device is None else move(rows, device)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DistributedDataParallel wrapper (or the module itself)."""
    return model.module if hasattr(model, "module") else model


def train_step(t: Trainable, batch: Any, clip: float | None, generator: torch.Generator,
               precision: tuple[torch.device, str] = (torch.device("cpu"), "fp32")) -> dict[str, float]:
    """One optimiser step on `batch`, the forward in autocast `precision` (device, setting);
    returns the loss terms as floats."""
    t.model.train()
    with autocast(*precision):
        out = t.loss(t.model, batch, generator)
    loss = out if isinstance(out, torch.Tensor) else out.loss
    t.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip is not None:
        torch.nn.utils.clip_grad_norm_(t.model.parameters(), clip)
    t.optimizer.step()
    if t.scheduler is not None:
        t.scheduler.step()
    metrics = {"loss": float(loss.detach())}
    metrics.update({k: float(v) for k, v in getattr(out, "metrics", {}).items()})
    return metrics


def run_epoch(t: Trainable, cfg: LoopConfig, generator: torch.Generator, shard: tuple[int, int] = (0, 1),
              ema: Ema | None = None) -> dict[str, float]:
    """One pass over `t.data` in shuffled global batches; returns the mean of each loss term.
    `ema` (if given) is updated after every step.

    With `shard=(rank, world)` (data-parallel workers holding the same data) every worker draws the
    same global batch order and takes rows rank::world of each global batch, so DDP's gradient
    average reproduces the single-process step on the whole batch."""
    rank, world = shard
    sums: dict[str, float] = {}
    dev = resolve_device(cfg.device)
    order = list(batch_order(len(t.data), cfg.batch_size, generator))
    bar = tqdm(order, desc=f"train (worker {rank})" if world > 1 else "train", leave=False, disable=rank != 0)
    for idx in bar:
        m = train_step(t, take(t.data, idx[rank::world], dev), cfg.grad_clip, generator, (dev, cfg.precision))
        if ema is not None:
            ema.update()
        for k, v in m.items():
            sums[k] = sums.get(k, 0.0) + v
        bar.set_postfix(loss=f"{m['loss']:.3f}")
    return {k: v / max(1, len(order)) for k, v in sums.items()}


def fit(t: Trainable, cfg: LoopConfig, validate: Validate | None = None, shard: tuple[int, int] = (0, 1),
        on_epoch: OnEpoch | None = None, resume: LoopState | None = None) -> FitResult:
    """Train `t` for up to `cfg.epochs` epochs (see LoopConfig for selection); the model ends with
    the selected weights. With EMA on, validation sees and the model keeps the averaged weights.
    `on_epoch(state)` gets a full LoopState after every epoch (a checkpoint); `resume` continues
    from one. The global torch RNG (dropout) is the caller's to seed. The model and the data go to
    `cfg.device` once, here; checkpoints (`on_epoch`) hold CPU copies, so they load anywhere."""
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    dev = resolve_device(cfg.device)
    t.model.to(dev)
    t.data = move(t.data, dev)
    ema = make_ema(unwrap(t.model), cfg.ema_decay)
    state = resume or LoopState()
    if resume is not None:
        _restore(t, state, gen, ema)
    t0 = time.time() - state.seconds
    for epoch in range(state.epoch, cfg.epochs if not state.done else state.epoch):
        row = {"epoch": epoch + 1, **{f"train_{k}": v for k, v in run_epoch(t, cfg, gen, shard, ema).items()}}
        if validate is not None:
            unwrap(t.model).eval()
            with torch.no_grad(), averaged(ema):
                row.update({f"valid_{k}": v for k, v in validate(unwrap(t.model)).items()})
        row["seconds"] = time.time() - t0
        state.history.append(row)
        if shard[0] == 0:
            tqdm.write(" ".join(f"{k}={v:.4g}" for k, v in row.items()))
        stop = _select(state, cfg, row, unwrap(t.model), ema)
        state.epoch, state.seconds, state.done = epoch + 1, row["seconds"], stop or epoch + 1 == cfg.epochs
        if on_epoch is not None:
            on_epoch(_snapshot(t, state, gen, ema))
        if stop:
            break
    return _finish(t, cfg, state, ema)


def _select(state: LoopState, cfg: LoopConfig, row: dict[str, float], model: torch.nn.Module,
            ema: Ema | None) -> bool:
    """Keep the weights of an epoch that improves `cfg.select`; True when patience has run out."""
    if cfg.select is None:
        return False
    if cfg.select not in row:
        raise ValueError(f"selection metric '{cfg.select}' is not among the epoch's {sorted(row)}; "
                         "validate must return it (valid_ + its key) or select a train_ key")
    score = row[cfg.select] if cfg.maximize else -row[cfg.select]
    if score > state.best_score:
        state.best_score, state.best_epoch, state.bad = score, int(row["epoch"]), 0
        state.best_valid = {k[6:]: v for k, v in row.items() if k.startswith("valid_")}
        state.best_state = ema.state_dict() if ema is not None else copy.deepcopy(model.state_dict())
        return False
    state.bad += 1
    return state.bad >= cfg.patience


def _finish(t: Trainable, cfg: LoopConfig, state: LoopState, ema: Ema | None) -> FitResult:
    """Load the selected weights (or the EMA of the last ones) and summarise the run."""
    model = unwrap(t.model)
    if cfg.select is not None and state.best_state is not None:
        model.load_state_dict(state.best_state)
    elif cfg.select is None:
        if ema is not None:
            ema.copy_to_module()
        state.best_epoch = state.epoch
    model.eval()
    return FitResult(state.history, state.best_epoch, state.best_valid, state.seconds)


def _snapshot(t: Trainable, state: LoopState, gen: torch.Generator, ema: Ema | None) -> LoopState:
    """`state` with the model, optimiser, scheduler, RNG and EMA states filled in (copies)."""
    return move(copy.deepcopy(LoopState(
        **{**state.__dict__, "weights": unwrap(t.model).state_dict(), "optimizer": t.optimizer.state_dict(),
           "scheduler": t.scheduler.state_dict() if t.scheduler is not None else None,
           "generator": gen.get_state(), "rng": torch.get_rng_state(),
           "ema": {"shadow": ema.shadow, "updates": ema.updates} if ema is not None else None})), "cpu")


def _restore(t: Trainable, state: LoopState, gen: torch.Generator, ema: Ema | None) -> None:
    """Put a snapshot's model, optimiser, scheduler, RNG and EMA states back."""
    unwrap(t.model).load_state_dict(state.weights)
    t.optimizer.load_state_dict(state.optimizer)
    if t.scheduler is not None and state.scheduler is not None:
        t.scheduler.load_state_dict(state.scheduler)
    gen.set_state(state.generator)
    torch.set_rng_state(state.rng)
    if ema is not None and state.ema is not None:
        ema.shadow, ema.updates = move(state.ema["shadow"], module_device(ema.module)), state.ema["updates"]
