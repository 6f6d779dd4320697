"""bench.reward_rerank: the beam re-ranked by logp + lam * reward against a slow per-row reference,
lam = 0 keeping the policy's order and lam = inf the reward's, padding never ranked; lam chosen on
valid with ties to the smaller; bad --lams refused."""

from __future__ import annotations

import numpy as np
import pytest

from bench.reward_rerank import choose, parse_lams, reranked_hits


def slow_hits(logp, items, reward, targets, lam, k=10):
    """One row at a time, sorted in plain Python."""
    out = []
    for lp, it, rw, t in zip(logp, items, reward, targets):
        cand = [(float(r) + 1e-9 * float(p) if np.isinf(lam) else float(p) + lam * float(r), n, int(i))
                for n, (p, i, r) in enumerate(zip(lp, it, rw)) if i >= 0]
        top = [i for _, _, i in sorted(cand, key=lambda c: (-c[0], c[1]))[:k]]
        out.append(float(t in top))
    return np.array(out)


def test_reranked_hits_match_the_slow_reference():
    rng = np.random.default_rng(0)
    b, n = 40, 25
    logp = np.sort(rng.normal(-5, 2, (b, n)), axis=1)[:, ::-1]
    items = rng.permutation(1000)[: b * n].reshape(b, n)
    items[rng.random((b, n)) < 0.1] = -1
    reward = rng.random((b, n))
    targets = np.where(rng.random(b) < 0.8, items[np.arange(b), rng.integers(0, n, b)], 5000)
    for lam in (0.0, 0.5, 3.0, np.inf):
        np.testing.assert_array_equal(reranked_hits(logp, items, reward, targets, lam), slow_hits(logp, items, reward, targets, lam))


def test_lam_zero_is_the_policy_order_and_inf_the_rewards():
    logp = np.array([[-1.0, -2.0, -3.0] + [-9.0] * 9])
    items = np.arange(12)[None]
    reward = np.zeros((1, 12))
    reward[0, 11] = 1.0
    assert reranked_hits(logp, items, reward, np.array([11]), 0.0)[0] == 0.0  # 11th by logp
    assert reranked_hits(logp, items, reward, np.array([11]), np.inf)[0] == 1.0
    assert reranked_hits(logp, items, reward, np.array([11]), 10.0)[0] == 1.0  # -9 + 10 beats -1


def test_padding_is_never_ranked():
    items = np.array([[3, -1, 4]])
    logp = np.array([[-1.0, 0.0, -2.0]])
    assert reranked_hits(logp, items, np.zeros((1, 3)), np.array([-1]), 0.0)[0] == 0.0


def test_choose_takes_the_best_valid_lam_and_the_smaller_on_a_tie():
    valid = {"0.0": np.array([0.0, 1.0]), "1.0": np.array([1.0, 1.0]), "3.0": np.array([1.0, 1.0])}
    assert choose(valid, [0.0, 1.0, 3.0]) == "1.0"
    assert choose({"0.0": np.ones(2), "1.0": np.ones(2)}, [0.0, 1.0]) == "0.0"


def test_parse_lams_sorts_and_refuses_bad_input():
    assert parse_lams("3,0,inf,0.5") == [0.0, 0.5, 3.0, float("inf")]
    for bad, msg in (("0,x", "comma-separated numbers"), ("0,-1", ">= 0"), ("1,3", "include 0")):
        with pytest.raises(SystemExit, match=msg):
            parse_lams(bad)
