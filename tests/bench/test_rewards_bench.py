"""bench.rewards helpers: within-group and pooled Spearman skip padding and flat groups; the truth
is the feedback model's expected value mixed like the ranking reward."""

from __future__ import annotations

import numpy as np
import pytest

from bench.rewards import spearman, truth
from oxygen.config import RewardConfig
from oxygen.eval.ab import request_day, user_index
from oxygen.rl.rewards import expected_value
from oxygen.world.world import World
from tests.worlds import tiny_world


def test_spearman_within_and_pooled():
    a = np.array([[1.0, 2.0, 3.0, 0.0], [3.0, 2.0, 1.0, 5.0], [1.0, 1.0, 1.0, 1.0]])
    b = np.array([[1.0, 2.0, 3.0, np.nan], [1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]])
    assert spearman(a, b, within=True) == pytest.approx((1.0 + 0.2) / 2)  # the flat third group is skipped
    assert -1 <= spearman(a, b, within=False) <= 1


def test_truth_is_the_feedback_models_expected_value(tmp_path):
    ds = tiny_world(tmp_path / "w", tmp_path / "s", users=40, seed=1, items=300, days=20)
    world = World.load(tmp_path / "w")
    rows = ds.splits["test"][:3]
    groups = np.array([[0, 5, -1], [7, 8, 9], [1, 2, 3]])
    cfg = RewardConfig()
    got = truth(world, rows, groups, cfg, 10.0)
    assert np.isnan(got[0, 2]) and not np.isnan(got[:, :2]).any()
    row = rows[1]
    p = world.feedback.probabilities(user_index(row.user_id), request_day(row, world.calendar), row.scenario,
                                     row.trigger, np.array([7, 8, 9]), row.query)
    np.testing.assert_allclose(got[1], expected_value(p[None], world.catalogue.price[[7, 8, 9]][None], cfg.value, 10.0)[0])
