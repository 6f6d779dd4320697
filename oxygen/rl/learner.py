"""The learner: `epochs` passes of the group policy objective over each rollout batch, run by THE
training loop (oxygen.training.loop.fit), with the optimiser's state kept across iterations.

`PolicyData` flattens a rollout batch to its N real generated items: each item's request row (the
collated ModelBatch repeated per item), its SID path Long[N, L], the generating policy's log-probs
Float[N, L], its advantage Float[N] (group-normalised over the request's real items, then Gamma-
thresholded for SA-GCPO) and, with KL on, the frozen reference's log-probs Float[N, L].
`PolicyObjective` is the module the loop trains: it wraps the policy, computes the new log-probs
and the configured objective, and keeps the policy in eval mode (no dropout, so the ratio is
exactly 1 on the first step after a rollout and moves only as the weights do). `Learner` holds
the policy, the reference, the optimiser and the weight version; `state()` is what it publishes.

    learner = Learner(bundle.model, PostTrainConfig())
    metrics = learner.update(batch)               # batch: a RolloutBatch with rewards
    worker.set_weights(learner.state(), learner.version)
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from oxygen.config import PostTrainConfig
from oxygen.data.batch import ModelBatch
from oxygen.data.batching import CollateConfig, FeatureSpace, collate
from oxygen.device import autocast, module_device, move, resolve_device
from oxygen.rl.objectives import Objective, gamma_threshold, group_advantages, policy_loss
from oxygen.rl.policy import token_log_probs
from oxygen.rl.rollout import RolloutBatch
from oxygen.training.loop import LoopConfig, Trainable, fit
from oxygen.training.prepare import QueryCache


@dataclass
class PolicyData:
    """N generated items (see the module docstring); `select` and len() for the training loop."""

    rows: ModelBatch
    codes: torch.Tensor
    old_logp: torch.Tensor
    adv: torch.Tensor
    ref_logp: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.codes)

    def select(self, index: torch.Tensor) -> PolicyData:
        """The items at `index` (Long[n])."""
        ref = self.ref_logp[index] if self.ref_logp is not None else None
        return PolicyData(self.rows.select(index), self.codes[index], self.old_logp[index], self.adv[index], ref)


def advantages(batch: RolloutBatch, use_gamma: bool, std_floor: float = 0.0) -> np.ndarray:
    """Float[B, G]: group-normalised advantages over each request's real items (0 elsewhere; the
    group std floored at `std_floor`), Gamma-thresholded by the real target's reward when `use_gamma`."""
    rewards = torch.as_tensor(batch.rewards, dtype=torch.float64, device="cpu")
    adv = group_advantages(rewards, mask=torch.as_tensor(batch.mask, device="cpu"), std_floor=std_floor)
    if use_gamma:
        adv = gamma_threshold(adv, rewards, torch.as_tensor(batch.target_reward, dtype=torch.float64, device="cpu"))
    return adv.numpy()


class PolicyObjective(nn.Module):
    """What the loop trains: forward(PolicyData) -> Objective of the wrapped policy."""

    def __init__(self, policy: nn.Module, cfg: PostTrainConfig) -> None:
        super().__init__()
        self.policy, self.cfg = policy, cfg

    def train(self, mode: bool = True) -> PolicyObjective:
        """The policy stays in eval mode (no dropout) whatever the loop asks."""
        super().train(mode)
        self.policy.eval()
        return self

    def forward(self, data: PolicyData) -> Objective:
        logp = token_log_probs(self.policy, data.rows, data.codes)
        mask = torch.ones_like(data.codes, dtype=torch.bool)
        return policy_loss(logp, data.old_logp, mask, data.adv, self.cfg.objective, data.ref_logp)


class Learner:
    """The policy being post-trained (see the module docstring)."""

    def __init__(self, model: nn.Module, cfg: PostTrainConfig, space: FeatureSpace, collate_cfg: CollateConfig) -> None:
        self.cfg, self.space, self.collate_cfg = cfg, space, collate_cfg
        self.policy = model.to(resolve_device(cfg.device))
        self.reference = copy.deepcopy(model).eval() if cfg.objective.kl_beta > 0 else None
        self.objective = PolicyObjective(model, cfg)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.queries, self.version, self.steps = QueryCache(), 0, 0

    def data(self, batch: RolloutBatch) -> PolicyData:
        """The rollout batch as PolicyData over its real generated items."""
        b_idx, g_idx = np.nonzero(batch.mask)
        rows = collate(batch.rows, self.space, self.collate_cfg, self.queries.lookup(batch.rows), with_targets=False)
        rows = rows.select(torch.as_tensor(b_idx, device="cpu"))
        codes = torch.as_tensor(batch.codes[b_idx, g_idx], device="cpu")
        adv = advantages(batch, self.cfg.use_gamma, self.cfg.objective.std_floor)
        adv = torch.as_tensor(adv[b_idx, g_idx], dtype=torch.float32, device="cpu")
        ref = None
        if self.reference is not None:
            dev = module_device(self.reference)
            with torch.no_grad(), autocast(dev, self.cfg.precision):
                ref = token_log_probs(self.reference, rows.to(dev), codes.to(dev)).float().cpu()
        return PolicyData(rows, codes, torch.as_tensor(batch.old_logp[b_idx, g_idx], device="cpu"), adv, ref)

    def update(self, batch: RolloutBatch) -> dict[str, float]:
        """`cfg.epochs` passes over `batch` in minibatches of `cfg.minibatch` items; the new version's
        training metrics (means over its steps)."""
        if batch.rewards is None:
            raise ValueError("the rollout batch has no rewards; score it first (oxygen.rl.rollout.with_rewards)")
        data = self.data(batch)
        if not len(data):
            return {"items": 0.0}
        loop = LoopConfig(epochs=self.cfg.epochs, batch_size=self.cfg.minibatch, seed=self.cfg.seed + self.version,
                          grad_clip=self.cfg.grad_clip, device=str(module_device(self.policy)), precision=self.cfg.precision)
        result = fit(Trainable(self.objective, data, self.optimizer), loop)
        self.version += 1
        self.steps += self.cfg.epochs * -(-len(data) // self.cfg.minibatch)
        last = {k.removeprefix("train_"): v for k, v in result.history[-1].items() if k.startswith("train_")}
        return {"items": float(len(data)), "version": float(self.version), **last}

    def state(self) -> dict[str, torch.Tensor]:
        """The policy's weights (what rollout workers install)."""
        return {k: v.detach().to("cpu", copy=True) for k, v in self.policy.state_dict().items()}

    def save(self, path: Path | str) -> Path:
        """A resumable checkpoint: weights, optimiser, version, steps."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"policy": move(self.policy.state_dict(), "cpu"), "optimizer": move(self.optimizer.state_dict(), "cpu"),
                    "version": self.version, "steps": self.steps}, path)
        return path

    def load(self, path: Path | str) -> None:
        """Continue from a checkpoint `save` wrote."""
        blob = torch.load(Path(path), weights_only=False, map_location="cpu")
        self.policy.load_state_dict(blob["policy"])
        self.optimizer.load_state_dict(blob["optimizer"])
        self.version, self.steps = int(blob["version"]), int(blob["steps"])
