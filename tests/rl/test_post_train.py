"""Post-training in one process on a tiny bundle: the first learner step is exactly on-policy
(ratio 1), later passes move it, a reward that favours some items is learnt (the mean reward of the
generated groups rises), synthetic requests carry no target, checkpoints resume, validation keeps
the best version (the starting model when nothing beats it), and `learn_on` picks the rows: train,
or valid cut in two by time."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from bench.tiny_bundle import make_bundle
from oxygen.config import PostTrainConfig, RewardConfig, RewardParts, RolloutConfig
from oxygen.data.schema import Row
from oxygen.rl.learner import Learner, advantages
from oxygen.rl.post_train import chosen_state, learning_rows, post_train, sample_requests
from oxygen.rl.rewards import RewardMapping
from oxygen.rl.rollout import RolloutWorker, with_rewards

SCEN = ("homepage", "channel", "cart")


def favour(rows, groups):
    """1 for items divisible by 7, else 0 (a reward the SFT weights know nothing about)."""
    return np.where((groups >= 0) & (groups % 7 == 0), 1.0, 0.0)


def mapping() -> RewardMapping:
    only = RewardParts(format=0, relevance=0, ranking=1, diversity=0)
    return RewardMapping({"ranking": favour}, RewardConfig(weights={s: only for s in SCEN}))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    bundle = make_bundle(tmp_path_factory.mktemp("pt") / "b")
    rng = np.random.default_rng(0)
    rows = []
    for k in range(40):
        hist = rng.choice(120, size=4, replace=False).tolist()
        s = SCEN[k % 3]
        rows.append(Row(user_id=f"u{k}", history=hist, target=int(rng.integers(120)), scenario=s,
                        trigger=hist[-1] if s != "homepage" else None))
    return bundle, rows


def cfg(**kw) -> PostTrainConfig:
    base = dict(iterations=1, requests=16, epochs=1, minibatch=1024, lr=3e-3, synthetic_ratio=0.25,
                rollout=RolloutConfig(group=8))
    return PostTrainConfig(**{**base, **kw})


def test_first_step_is_on_policy_and_later_passes_move(setup):
    bundle, rows = setup
    worker = RolloutWorker(bundle, RolloutConfig(group=8))
    reqs, real = sample_requests(rows, 16, 0.25, np.random.default_rng(1))
    batch = with_rewards(worker.generate(reqs, seed=1), mapping(), real)
    one = Learner(copy.deepcopy(bundle.model), cfg(), bundle.space, bundle.collate_cfg).update(batch)
    assert one["ratio_mean"] == pytest.approx(1.0, abs=1e-6) and one["ratio_min"] == pytest.approx(1.0, abs=1e-5)
    three = Learner(copy.deepcopy(bundle.model), cfg(epochs=3, minibatch=32), bundle.space,
                    bundle.collate_cfg).update(batch)
    assert three["ratio_max"] > 1.0 + 1e-4 or three["ratio_min"] < 1.0 - 1e-4
    assert np.isnan(batch.target_reward[~real]).all() and not np.isnan(batch.target_reward[real]).any()


def test_target_bonus_rewards_only_a_real_requests_own_target(setup):
    """The bonus lands on a generated item equal to its request's logged target, on real requests
    only; without it the rewards are the mapped totals."""
    bundle, rows = setup
    worker = RolloutWorker(bundle, RolloutConfig(group=8))
    reqs, real = sample_requests(rows, 16, 0.5, np.random.default_rng(3))
    generated = worker.generate(reqs, seed=3)
    generated.items[:, 0] = [r.target for r in reqs]  # every request's first item is its own target
    plain = with_rewards(generated, mapping(), real)
    bonus = with_rewards(generated, mapping(), real, target_bonus=2.0)
    expected = np.zeros(generated.items.shape)
    for b, row in enumerate(reqs):
        for g, item in enumerate(generated.items[b]):
            expected[b, g] = 2.0 if real[b] and item == row.target else 0.0
    assert np.allclose(bonus.rewards - plain.rewards, expected) and expected[real, 0].all()
    assert "target" not in plain.parts and np.allclose(bonus.parts["target"] * 2.0, expected)
    assert np.allclose(bonus.target_reward, plain.target_reward, equal_nan=True)


def test_advantages_are_masked_and_thresholded(setup):
    bundle, rows = setup
    worker = RolloutWorker(bundle, RolloutConfig(group=8))
    reqs, real = sample_requests(rows, 8, 0.0, np.random.default_rng(2))
    batch = with_rewards(worker.generate(reqs, seed=2), mapping(), real)
    batch.items[0, -2:] = -1
    adv = advantages(batch, use_gamma=True)
    assert (adv[0, -2:] == 0).all()
    star = batch.target_reward[:, None]
    assert not ((adv > 0) & (batch.rewards < star)).any()


def test_post_training_learns_a_reward(setup):
    bundle, rows = setup
    before = bundle.model.state_dict()["heads.0.weight"].clone()
    run = post_train(bundle, mapping(), rows, cfg(iterations=12, epochs=2, minibatch=64))
    rewards = [h["reward"] for h in run.history]
    assert np.mean(rewards[-3:]) > np.mean(rewards[:3]) + 0.1, rewards
    assert run.learner.version == 12
    assert torch.equal(bundle.model.state_dict()["heads.0.weight"], before)  # the bundle itself is untouched
    assert {"reward_ranking", "reward_group_std", "sid1_entropy", "coverage", "loss", "target_reward"} <= set(run.history[-1])


def test_learner_checkpoint_resumes(setup, tmp_path):
    bundle, _ = setup

    a = Learner(copy.deepcopy(bundle.model), cfg(), bundle.space, bundle.collate_cfg)
    a.version, a.steps = 5, 40
    a.save(tmp_path / "learner.pt")
    b = Learner(copy.deepcopy(bundle.model), cfg(), bundle.space, bundle.collate_cfg)
    b.load(tmp_path / "learner.pt")
    assert (b.version, b.steps) == (5, 40)
    for k, v in a.state().items():
        assert torch.equal(v, b.state()[k])


class Scripted:
    """A validate function that answers `scores` in turn and keeps the states it was shown."""

    def __init__(self, scores: list[float]):
        self.scores, self.states = list(scores), []

    def __call__(self, state: dict) -> float:
        self.states.append(state)
        return self.scores[len(self.states) - 1]


def test_validation_keeps_the_best_version(setup):
    bundle, rows = setup
    validate = Scripted([0.5, 0.7, 0.7, 0.6])  # start, after 2, after 4, after 5 (the last)
    run = post_train(bundle, mapping(), rows, cfg(iterations=5, valid_every=2, lr=1e-2), validate=validate)
    assert [h["iteration"] for h in run.history if "valid_score" in h] == [2, 4, 5]
    assert run.best.iteration == 2 and run.best.score == 0.7  # the tie with iteration 4 keeps the earlier
    assert all(torch.equal(v, validate.states[1][k]) for k, v in chosen_state(run).items())
    assert not all(torch.equal(v, run.learner.state()[k]) for k, v in chosen_state(run).items())


def test_a_run_that_never_beats_the_start_ships_the_start(setup):
    bundle, rows = setup
    run = post_train(bundle, mapping(), rows, cfg(iterations=3, valid_every=1, lr=1e-2),
                     validate=Scripted([0.5, 0.4, 0.5, 0.3]))
    assert run.best.iteration == 0
    assert all(torch.equal(v, bundle.model.state_dict()[k]) for k, v in chosen_state(run).items())


def test_without_valid_every_the_last_version_ships(setup):
    bundle, rows = setup
    validate = Scripted([])
    run = post_train(bundle, mapping(), rows, cfg(iterations=2, valid_every=None), validate=validate)
    assert run.best is None and validate.states == [] and all("valid_score" not in h for h in run.history)


def _timed(user: str, ts: int | None) -> Row:
    return Row(user_id=user, history=[1], target=2, timestamp=ts)


def test_learning_rows_train_is_train_and_valid():
    splits = {"train": [_timed("t", 1)], "valid": [_timed("v", 2)]}
    assert learning_rows(splits, "train") == (splits["train"], splits["valid"])


def test_valid_early_cuts_valid_by_time_not_by_order():
    stamps = [50, 10, 40, 20, 30, 60, 5]
    splits = {"train": [], "valid": [_timed(f"u{t}", t) for t in stamps]}
    learn, valid = learning_rows(splits, "valid_early")
    assert [r.timestamp for r in learn] == [5, 10, 20]
    assert [r.timestamp for r in valid] == [30, 40, 50, 60]
    assert max(r.timestamp for r in learn) < min(r.timestamp for r in valid)  # learnt before what chooses


def test_valid_early_without_timestamps_keeps_order():
    splits = {"train": [], "valid": [_timed(f"u{k}", None) for k in range(5)]}
    learn, valid = learning_rows(splits, "valid_early")
    assert [r.user_id for r in learn] == ["u0", "u1"] and [r.user_id for r in valid] == ["u2", "u3", "u4"]


def test_learning_rows_refuses_what_it_cannot_cut():
    with pytest.raises(ValueError, match="at least 2 valid rows"):
        learning_rows({"train": [], "valid": [_timed("v", 1)]}, "valid_early")
    with pytest.raises(ValueError, match="use 'train' or 'valid_early'"):
        learning_rows({"train": [], "valid": []}, "test")
