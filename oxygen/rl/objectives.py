"""Group policy-optimisation objectives over generated semantic-ID sequences: GRPO, GSPO and
SA-GCPO (OxygenREC's equations 4-9), one signature, one registry.

A rollout gives, per request, a group of G generated items (each an L-token SID path). The
advantage of item i is group-normalised, A_i = (R_i - mean R) / std R (`group_advantages`), and
SA-GCPO's threshold Gamma keeps a positive advantage only where the item's reward reaches the
reward of the request's real target, R_i >= R*_g (`gamma_threshold`; requests without a real
target — synthetic samples — are not thresholded). Every objective maps

    logp, old_logp Float[N, L] (the new policy's log-probs, with grad; the rollout policy's),
    mask Bool[N, L] (real tokens), adv Float[N]   ->   Objective(loss Float[], metrics)

with sequence-mean-token-mean aggregation (tokens averaged within a sequence, then sequences
averaged), the log-ratio clamped to +-cfg.log_ratio_clamp, and optional KL to a frozen reference
(`kl_to_reference`, the k3 estimator). The objectives:
- `grpo`: token ratio r_t = pi/pi_old, loss -min(r_t A, clip(r_t, 1 - eps, 1 + eps) A);
- `gspo`: sequence ratio s = exp(mean_t log r_t), loss -min(s A, clip(s, 1 - eps_seq, 1 + eps_seq) A);
- `sa_gcpo`: soft gate f(r_t) = sigmoid(tau (r_t - 1)) 4 / tau with tau = tau_pos where A > 0,
  tau_neg otherwise; loss -f(r_t) A. f'(1) = 1, so at r = 1 (the first minibatch step of a rollout)
  all three give the plain policy gradient: the gate acts only off-policy, on later steps.

    adv = gamma_threshold(group_advantages(rewards), rewards, target_reward)     # Float[B, G]
    out = OBJECTIVES["sa_gcpo"](logp, old_logp, mask, adv.reshape(-1), cfg)
    out.loss.backward()
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from oxygen.config import ObjectiveConfig


@dataclass
class Objective:
    """The loss to minimise and float metrics (ratio statistics, clipped / gated shares)."""

    loss: torch.Tensor
    metrics: dict[str, float]


def group_advantages(rewards: torch.Tensor, mask: torch.Tensor | None = None, eps: float = 1e-6,
                     std_floor: float = 0.0) -> torch.Tensor:
    """Float[B, G] -> (R - mean) / max(std, std_floor) within each group (population std) over its
    real items (mask Bool[B, G], default all); 0 for flat groups and for items outside the mask.
    The floor keeps a group whose rewards barely differ from getting full-size advantages.

    >>> [[round(x, 3) for x in g] for g in group_advantages(torch.tensor([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]])).tolist()]
    [[-1.225, 0.0, 1.225], [0.0, 0.0, 0.0]]
    >>> [round(x, 3) for x in group_advantages(torch.tensor([[1.0, 1.02]]), std_floor=0.1)[0].tolist()]
    [-0.1, 0.1]
    """
    m = torch.ones_like(rewards, dtype=torch.bool) if mask is None else mask
    w = m.to(rewards.dtype)
    n = w.sum(-1, keepdim=True).clamp(min=1)
    mean = (rewards * w).sum(-1, keepdim=True) / n
    std = (((rewards - mean) ** 2) * w).sum(-1, keepdim=True).div(n).sqrt()
    adv = torch.where(std > eps, (rewards - mean) / std.clamp(min=max(eps, std_floor)), torch.zeros_like(rewards))
    return torch.where(m, adv, torch.zeros_like(adv))


def gamma_threshold(adv: torch.Tensor, rewards: torch.Tensor, target_reward: torch.Tensor) -> torch.Tensor:
    """SA-GCPO's Gamma: a positive advantage counts only where R_i >= R*_g, the reward of the
    request's real target (target_reward Float[B]; NaN: no real target, nothing thresholded).
    adv, rewards Float[B, G] -> Float[B, G].

    >>> a = torch.tensor([[1.0, -1.0, 0.5], [1.0, -1.0, 0.5]])
    >>> r = torch.tensor([[3.0, 1.0, 2.0], [3.0, 1.0, 2.0]])
    >>> gamma_threshold(a, r, torch.tensor([2.5, float("nan")])).tolist()
    [[1.0, -1.0, 0.0], [1.0, -1.0, 0.5]]
    """
    star = target_reward[:, None]
    below = (adv > 0) & ~torch.isnan(star) & (rewards < star)
    return torch.where(below, torch.zeros_like(adv), adv)


def _log_ratio(logp: torch.Tensor, old_logp: torch.Tensor, clamp: float) -> torch.Tensor:
    """log(pi / pi_old) per token, clamped to [-clamp, clamp]."""
    return (logp - old_logp.detach()).clamp(-clamp, clamp)


def _seq_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Float[N, L] -> Float[N]: the mean over each sequence's real tokens."""
    m = mask.to(x.dtype)
    return (x * m).sum(-1) / m.sum(-1).clamp(min=1)


def _ratio_metrics(log_r: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    r = log_r.detach().exp()[mask]
    if not r.numel():
        return {"ratio_mean": 1.0, "ratio_min": 1.0, "ratio_max": 1.0}
    return {"ratio_mean": float(r.mean()), "ratio_min": float(r.min()), "ratio_max": float(r.max())}


def grpo(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor, adv: torch.Tensor,
         cfg: ObjectiveConfig) -> Objective:
    """Token-ratio clipped surrogate (PPO-style), sequence-mean-token-mean."""
    log_r = _log_ratio(logp, old_logp, cfg.log_ratio_clamp)
    r, a = log_r.exp(), adv[:, None]
    clipped = r.clamp(1 - cfg.clip_eps, 1 + cfg.clip_eps)
    per_token = -torch.minimum(r * a, clipped * a)
    chosen = (r * a > clipped * a) & mask  # where the clipped branch is the minimum
    out = {**_ratio_metrics(log_r, mask), "clipped": float(chosen.sum() / mask.sum().clamp(min=1))}
    return Objective(_seq_mean(per_token, mask).mean(), out)


def gspo(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor, adv: torch.Tensor,
         cfg: ObjectiveConfig) -> Objective:
    """Sequence-ratio clipped surrogate: s = exp(mean_t log r_t) per generated item."""
    log_r = _log_ratio(logp, old_logp, cfg.log_ratio_clamp)
    s = _seq_mean(log_r, mask).exp()
    clipped = s.clamp(1 - cfg.seq_clip_eps, 1 + cfg.seq_clip_eps)
    per_seq = -torch.minimum(s * adv, clipped * adv)
    out = {**_ratio_metrics(log_r, mask), "clipped": float((s * adv > clipped * adv).float().mean())}
    return Objective(per_seq.mean(), out)


def soft_gate(r: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """f(r) = sigmoid(tau (r - 1)) 4 / tau: f(1) = 2 / tau, f'(1) = 1 (plain policy gradient at r = 1).

    >>> soft_gate(torch.tensor([1.0]), torch.tensor([1.0])).tolist()
    [2.0]
    """
    return torch.sigmoid(tau * (r - 1)) * 4 / tau


def sa_gcpo(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor, adv: torch.Tensor,
            cfg: ObjectiveConfig) -> Objective:
    """Soft-gated token surrogate -f(r_t) A with tau_pos for A > 0, tau_neg otherwise."""
    log_r = _log_ratio(logp, old_logp, cfg.log_ratio_clamp)
    r, a = log_r.exp(), adv[:, None]
    tau = torch.where(a > 0, torch.full_like(a, cfg.tau_pos), torch.full_like(a, cfg.tau_neg))
    gate = soft_gate(r, tau)
    per_token = -gate * a
    weight = (4 * torch.sigmoid(tau * (r - 1)) * (1 - torch.sigmoid(tau * (r - 1)))).detach()  # f'(r): the gate's damping
    out = {**_ratio_metrics(log_r, mask), "gate_weight": float(weight[mask].mean()) if mask.any() else 1.0}
    return Objective(_seq_mean(per_token, mask).mean(), out)


def kl_to_reference(logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The k3 estimate of KL(pi || pi_ref), sequence-mean-token-mean: exp(d) - d - 1, d = ref - logp.

    >>> float(kl_to_reference(torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(2, 3, dtype=torch.bool)))
    0.0
    """
    d = ref_logp.detach() - logp
    return _seq_mean(d.exp() - d - 1, mask).mean()


ObjectiveFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, ObjectiveConfig], Objective]
OBJECTIVES: dict[str, ObjectiveFn] = {"grpo": grpo, "gspo": gspo, "sa_gcpo": sa_gcpo}


def policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor, adv: torch.Tensor,
                cfg: ObjectiveConfig, ref_logp: torch.Tensor | None = None) -> Objective:
    """The configured objective (`cfg.algo`) plus kl_beta x KL to the reference when given."""
    if cfg.algo not in OBJECTIVES:
        raise ValueError(f"unknown algo {cfg.algo!r}; choose one of {sorted(OBJECTIVES)}")
    out = OBJECTIVES[cfg.algo](logp, old_logp, mask, adv, cfg)
    if ref_logp is not None and cfg.kl_beta > 0:
        kl = kl_to_reference(logp, ref_logp, mask)
        out = Objective(out.loss + cfg.kl_beta * kl, {**out.metrics, "kl": float(kl.detach())})
    return out
