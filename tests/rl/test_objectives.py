"""GRPO, GSPO and SA-GCPO against slow token-by-token references (loss and gradient, off-policy,
ragged masks), their shared gradient at ratio 1, the gate's temperatures, Gamma's threshold cases,
group advantages and the KL term."""

from __future__ import annotations

import math

import pytest
import torch

from oxygen.config import ObjectiveConfig
from oxygen.rl.objectives import (
    OBJECTIVES,
    gamma_threshold,
    group_advantages,
    kl_to_reference,
    policy_loss,
    soft_gate,
)

CFG = ObjectiveConfig(clip_eps=0.2, seq_clip_eps=0.05, tau_pos=1.0, tau_neg=0.95, log_ratio_clamp=3.0)


def _inputs(seed: int = 0, n: int = 7, L: int = 3):
    g = torch.Generator().manual_seed(seed)
    logp = (-torch.rand(n, L, generator=g) * 3).requires_grad_(True)
    old = logp.detach() + torch.randn(n, L, generator=g) * 0.4
    old[0, 0] = logp[0, 0].detach() - 8.0  # a ratio the clamp must cut
    mask = torch.ones(n, L, dtype=torch.bool)
    mask[1, 2] = mask[3, 1:] = False
    adv = torch.randn(n, generator=g)
    adv[2] = 0.0
    return logp, old, mask, adv


def _ratio(lp, old, cfg):
    return torch.exp(torch.clamp(lp - old, -cfg.log_ratio_clamp, cfg.log_ratio_clamp))


def slow(algo: str, logp, old, mask, adv, cfg) -> torch.Tensor:
    """The objective written out sequence by sequence, token by token."""
    per_seq = []
    for i in range(logp.shape[0]):
        toks = [t for t in range(logp.shape[1]) if mask[i, t]]
        a = adv[i]
        if algo == "gspo":
            s = torch.exp(sum(torch.clamp(logp[i, t] - old[i, t], -cfg.log_ratio_clamp, cfg.log_ratio_clamp)
                              for t in toks) / len(toks))
            c = torch.clamp(s, 1 - cfg.seq_clip_eps, 1 + cfg.seq_clip_eps)
            per_seq.append(-torch.minimum(s * a, c * a))
            continue
        terms = []
        for t in toks:
            r = _ratio(logp[i, t], old[i, t], cfg)
            if algo == "grpo":
                c = torch.clamp(r, 1 - cfg.clip_eps, 1 + cfg.clip_eps)
                terms.append(-torch.minimum(r * a, c * a))
            else:
                tau = cfg.tau_pos if a > 0 else cfg.tau_neg
                terms.append(-torch.sigmoid(tau * (r - 1)) * 4 / tau * a)
        per_seq.append(sum(terms) / len(terms))
    return sum(per_seq) / len(per_seq)


@pytest.mark.parametrize("algo", sorted(OBJECTIVES))
def test_loss_and_gradient_match_the_slow_reference(algo):
    for seed in range(3):
        logp, old, mask, adv = _inputs(seed)
        fast = OBJECTIVES[algo](logp, old, mask, adv, CFG).loss
        (g_fast,) = torch.autograd.grad(fast, logp)
        ref = slow(algo, logp, old, mask, adv, CFG)
        (g_ref,) = torch.autograd.grad(ref, logp)
        assert float(fast.detach()) == pytest.approx(float(ref.detach()), rel=1e-5, abs=1e-7)
        torch.testing.assert_close(g_fast, g_ref, rtol=1e-5, atol=1e-7)
        assert (g_fast[~mask] == 0).all()  # padding gets no gradient


def test_at_ratio_one_all_three_give_the_policy_gradient():
    logp, _, mask, adv = _inputs(1)
    grads = {}
    for algo in OBJECTIVES:
        out = OBJECTIVES[algo](logp, logp.detach(), mask, adv, CFG)
        (grads[algo],) = torch.autograd.grad(out.loss, logp)
        assert out.metrics["ratio_mean"] == pytest.approx(1.0)
    n = mask.sum(-1, keepdim=True).float()
    pg = -(adv[:, None] / n / logp.shape[0]) * mask  # d/d logp of -mean_i mean_t A_i logp_it
    for g in grads.values():
        torch.testing.assert_close(g, pg)


def test_the_gate_damps_off_policy_tokens_by_temperature():
    r = torch.tensor([0.5, 1.0, 1.5, 3.0])
    slopes = {}
    for tau in (0.95, 1.0, 1.05):
        x = r.clone().requires_grad_(True)
        (slopes[tau],) = torch.autograd.grad(soft_gate(x, torch.tensor(tau)).sum(), x)
    assert torch.allclose(slopes[1.0][1], torch.tensor(1.0))  # f'(1) = 1 for any tau
    off = torch.tensor([0, 2, 3])
    assert (slopes[0.95][off] > slopes[1.0][off]).all() and (slopes[1.0][off] > slopes[1.05][off]).all()
    # SA-GCPO uses tau_neg for non-positive advantages: a lower tau_neg damps negative tokens less
    logp, old, mask, adv = _inputs(2)
    low = OBJECTIVES["sa_gcpo"](logp, old, mask, adv, CFG.model_copy(update={"tau_neg": 0.5})).loss
    high = OBJECTIVES["sa_gcpo"](logp, old, mask, adv, CFG.model_copy(update={"tau_neg": 2.0})).loss
    assert float(low.detach()) != pytest.approx(float(high.detach()))


def test_gamma_threshold_cases():
    adv = torch.tensor([[1.0, 0.5, -0.5, -1.0], [1.0, 0.5, -0.5, -1.0]])
    rew = torch.tensor([[4.0, 3.0, 2.0, 1.0], [4.0, 3.0, 2.0, 1.0]])
    out = gamma_threshold(adv, rew, torch.tensor([3.0, float("nan")]))
    assert out[0].tolist() == [1.0, 0.5, -0.5, -1.0]  # R = R* counts (>=); negatives never change
    out = gamma_threshold(adv, rew, torch.tensor([3.5, float("nan")]))
    assert out[0].tolist() == [1.0, 0.0, -0.5, -1.0] and out[1].tolist() == adv[1].tolist()  # synthetic: untouched
    assert gamma_threshold(adv, rew, torch.tensor([9.0, 9.0])).clamp(min=0).sum() == 0


def test_group_advantages_are_normalised_per_group():
    r = torch.tensor([[1.0, 2.0, 3.0, 6.0], [2.0, 2.0, 2.0, 2.0], [0.0, 1.0, 0.0, 1.0]])
    a = group_advantages(r)
    assert torch.allclose(a.mean(-1), torch.zeros(3), atol=1e-6)
    assert torch.allclose(a[[0, 2]].std(-1, unbiased=False), torch.ones(2), atol=1e-5)
    assert (a[1] == 0).all()


def test_the_std_floor_shrinks_only_groups_whose_rewards_barely_differ():
    r = torch.tensor([[1.0, 1.01, 1.02, 1.03], [0.0, 1.0, 0.0, 1.0]])
    a, floored = group_advantages(r), group_advantages(r, std_floor=0.1)
    for g in range(2):  # a loop reference: (R - mean) / max(population std, floor)
        std = max(float(r[g].std(unbiased=False)), 0.1)
        assert torch.allclose(floored[g], (r[g] - r[g].mean()) / std, atol=1e-6)
    assert floored[0].abs().max() < 0.2 < a[0].abs().max()  # a near-flat group: small advantages
    assert torch.allclose(floored[1], a[1])  # a group with std 0.5 > floor is unchanged


def test_kl_term_and_clamp_and_unknown_algo():
    logp, old, mask, adv = _inputs(0)
    ref = logp.detach() - 0.3
    with_kl = policy_loss(logp, old, mask, adv, CFG.model_copy(update={"kl_beta": 0.5}), ref)
    plain = policy_loss(logp, old, mask, adv, CFG, ref)
    kl = float(kl_to_reference(logp, ref, mask).detach())
    assert kl > 0 and with_kl.metrics["kl"] == pytest.approx(kl)
    assert float(with_kl.loss.detach()) == pytest.approx(float(plain.loss.detach()) + 0.5 * kl, rel=1e-6)
    assert plain.metrics["ratio_max"] <= math.exp(CFG.log_ratio_clamp) + 1e-4
    with pytest.raises(ValueError, match="unknown algo"):
        policy_loss(logp, old, mask, adv, ObjectiveConfig.model_construct(algo="ppo"))
