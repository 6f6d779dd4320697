"""Post-training in one process: the driver loop over the roles (the Ray wiring runs the same roles
as actors). Each iteration samples requests (real rows, whose target gives SA-GCPO's threshold, and
synthetic ones), a rollout worker generates a group per request, the reward mapping scores it, the
learner updates the policy and the worker installs the new version.

Synthetic requests (the paper's synthetic data) keep a logged user's profile and history but ask
for another scenario: one of homepage / channel / cart / checkout with the user's last history item
as trigger and no query; they have no real target (no threshold), their items are scored by the
reward mapping only.

With a `validate` function (a policy state -> its valid score) the loop scores the model before
post-training and every `cfg.valid_every` iterations, and the run keeps the best version
(`run.best`; a tie keeps the earlier one, so a run that never beats the SFT model returns it).

    learn, valid = learning_rows(ds.splits, cfg.learn_on)                           # whose rows
    run = post_train(bundle, mapping, learn, PostTrainConfig(iterations=20))        # in process
    run = drive(Roles(rollout, rewards, learner), learn, cfg, n_pool)               # any roles (oxygen.rl.actors)
    run.learner.policy, run.history, chosen_state(run)
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from oxygen.config import PostTrainConfig
from oxygen.data.schema import Row
from oxygen.model.bundle import Bundle
from oxygen.rl.learner import Learner
from oxygen.rl.rewards import RewardMapping, Scorer
from oxygen.rl.rollout import RolloutBatch, RolloutWorker, with_rewards

SYNTHETIC_SCENARIOS = ("homepage", "channel", "cart", "checkout")


def synthetic(row: Row, scenario: str) -> Row:
    """`row`'s user and history asking for `scenario` (trigger: the last history item; no query)."""
    trigger = row.history[-1] if scenario != "homepage" and row.history else None
    return row.model_copy(update={"scenario": scenario, "trigger": trigger, "query": None, "truth": None})


def learning_rows(splits: dict[str, Sequence[Row]], learn_on: str) -> tuple[list[Row], list[Row]]:
    """(rows requests are drawn from, valid rows that choose and report the version) for `learn_on`:
    'train' -> (train, valid); 'valid_early' -> valid cut in two by time (its timestamps, else its
    order) at the middle: (the earlier half, the later half). The SFT model never saw valid, so the
    earlier half has what its train rows lack: targets it did not memorise."""
    if learn_on == "train":
        return list(splits["train"]), list(splits["valid"])
    if learn_on != "valid_early":
        raise ValueError(f"learn_on={learn_on!r}: use 'train' or 'valid_early'")
    valid = list(splits["valid"])
    if len(valid) < 2:
        raise ValueError(f"learn_on='valid_early' needs at least 2 valid rows to cut in two; the dataset has {len(valid)}")
    if all(r.timestamp is not None for r in valid):
        valid = [valid[i] for i in np.argsort([r.timestamp for r in valid], kind="stable")]
    half = len(valid) // 2
    return valid[:half], valid[half:]


def sample_requests(rows: Sequence[Row], n: int, ratio: float, rng: np.random.Generator) -> tuple[list[Row], np.ndarray]:
    """`n` requests drawn from `rows`, a `ratio` share of them synthetic; (requests, real Bool[n])."""
    picks = rng.choice(len(rows), size=n, replace=len(rows) < n)
    real = rng.random(n) >= ratio
    out = []
    for k, i in enumerate(picks):
        row = rows[int(i)]
        if not real[k]:
            usable = [s for s in SYNTHETIC_SCENARIOS if s == "homepage" or row.history]
            row = synthetic(row, usable[int(rng.integers(len(usable)))])
        out.append(row)
    return out, real


def monitors(batch: RolloutBatch, n_pool: int) -> dict[str, float]:
    """What to watch per iteration: each reward part and the total (means over real items), the
    mean within-group reward std (what the advantages divide by), the real targets' reward, the
    entropy of the generated first SID level, distinct items / pool."""
    m = batch.mask
    out = {"reward": float(batch.rewards[m].mean()) if m.any() else 0.0}
    stds = [batch.rewards[b][m[b]].std() for b in range(len(m)) if m[b].sum() > 1]
    out["reward_group_std"] = float(np.mean(stds)) if stds else 0.0
    out.update({f"reward_{k}": float(v[m].mean()) for k, v in batch.parts.items() if m.any()})
    t = batch.target_reward[~np.isnan(batch.target_reward)]
    out["target_reward"] = float(t.mean()) if len(t) else float("nan")
    first = batch.codes[..., 0][m]
    p = np.bincount(first) / max(len(first), 1)
    out["sid1_entropy"] = float(-(p[p > 0] * np.log(p[p > 0])).sum())
    out["coverage"] = len(np.unique(batch.items[m])) / max(n_pool, 1)
    return out


class Rollout(Protocol):
    """What generates groups: one RolloutWorker in process, or the Ray actors behind a proxy."""

    def generate(self, rows: Sequence[Row], seed: int = 0) -> RolloutBatch: ...

    def set_weights(self, state: dict, version: int) -> None: ...


class Updater(Protocol):
    """What learns: the Learner in process, or the learner actor behind a proxy."""

    version: int

    def update(self, batch: RolloutBatch) -> dict[str, float]: ...

    def state(self) -> dict: ...


@dataclass
class Roles:
    """The three roles the driver loop drives, wherever they run."""

    rollout: Rollout
    rewards: Scorer
    learner: Updater


Validate = Callable[[Any], float]  # a policy state (what the learner's state() returns) -> valid score


@dataclass
class Best:
    """The best policy version on valid so far (iteration 0: the model before post-training)."""

    iteration: int
    score: float
    state: Any


@dataclass
class PostTrainRun:
    """The roles after training (the learner holds the last policy), one monitor row per iteration
    and, when validated, the best version on valid."""

    roles: Roles
    history: list[dict[str, float]] = field(default_factory=list)
    best: Best | None = None

    @property
    def learner(self) -> Updater:
        return self.roles.learner

    def offer(self, iteration: int, score: float, state: Any) -> float:
        """Keep `state` if it scores above the best so far (a tie keeps the earlier); returns `score`."""
        if self.best is None or score > self.best.score:
            self.best = Best(iteration, score, state)
        return score


def chosen_state(run: PostTrainRun) -> Any:
    """The policy state a run ships: the best on valid when it was validated, else the last."""
    return run.best.state if run.best is not None else run.learner.state()


def validation_due(iteration: int, cfg: PostTrainConfig) -> bool:
    """Whether the policy after `iteration` (1-based) is scored on valid: every `valid_every`, and the last."""
    return cfg.valid_every is not None and (iteration % cfg.valid_every == 0 or iteration == cfg.iterations)


def drive(roles: Roles, rows: Sequence[Row], cfg: PostTrainConfig, n_pool: int,
          on_iteration: Callable[[int, dict[str, float]], None] | None = None,
          validate: Validate | None = None) -> PostTrainRun:
    """THE post-training loop: `cfg.iterations` rounds of sample -> roll out -> reward -> update ->
    publish, on requests drawn from `rows`; with `validate` (and cfg.valid_every) the starting
    policy and every `valid_every`-th version are scored and the best kept (`run.best`)."""
    rng, run = np.random.default_rng(cfg.seed), PostTrainRun(roles)
    validate = validate if cfg.valid_every is not None else None
    if validate is not None:
        start = roles.learner.state()
        run.offer(0, validate(start), start)
    for it in tqdm(range(cfg.iterations), desc=f"post-train {cfg.objective.algo}", unit="iter"):
        reqs, real = sample_requests(rows, cfg.requests, cfg.synthetic_ratio, rng)
        batch = with_rewards(roles.rollout.generate(reqs, seed=cfg.seed * 100_003 + it), roles.rewards, real,
                             cfg.target_bonus)
        row = {"iteration": it + 1, **monitors(batch, n_pool), **roles.learner.update(batch)}
        state = roles.learner.state()
        roles.rollout.set_weights(state, roles.learner.version)
        if validate is not None and validation_due(it + 1, cfg):
            row["valid_score"] = run.offer(it + 1, validate(state), state)
        run.history.append(row)
        if on_iteration is not None:
            on_iteration(it, row)
    return run


def post_train(bundle: Bundle, mapping: RewardMapping, rows: Sequence[Row], cfg: PostTrainConfig,
               on_iteration: Callable[[int, dict[str, float]], None] | None = None,
               validate: Validate | None = None) -> PostTrainRun:
    """`drive` with every role in this process; the bundle's own model is left untouched (the
    learner trains a copy)."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    learner = Learner(copy.deepcopy(bundle.model), cfg, bundle.space, bundle.collate_cfg)
    roles = Roles(RolloutWorker(bundle, cfg.rollout, precision=cfg.precision), mapping, learner)
    return drive(roles, rows, cfg, len(bundle.space.item_ids), on_iteration, validate)
