"""Training losses of the encoder-decoder: weighted next-token cross-entropy over the SID levels
and the Q2I (query-to-item) alignment loss.

Weighted NTP, per example b with weight w_b (purchase > cart > click) and L SID levels:
    ce_b = (1/L) sum_l CE(logits_l[b], target_l[b]);   NTP = sum_b w_b ce_b / sum_b w_b

Q2I (OxygenREC eq. 2 in the form we implement): Q Float[B, A] query embeddings (scenario ⊕ I_r)
and T Float[B, A] target-item embeddings, both L2-normalised (the adapter space is the unit
sphere, which keeps the variance term bounded below), mu = batch means:
    align = (1/B) sum_i ||q_i - t_i||^2
    var   = -log( (Var(Q) + eps) * (Var(T) + eps) ),  Var(X) = (1/A) sum_a (1/B) sum_i (x_ia - mu_a)^2
    C     = (1/B) (Q - mu_Q)^T (T - mu_T)  in R^{A x A}   (cross-covariance)
    off   = sum_{a != c} C_ac^2
    Q2I   = align + var + off
The variance term stops both sides collapsing to a point; the off-diagonal term decorrelates the
dimensions. With B < 2 the batch statistics are undefined and Q2I = align.

Mixture NLL (with the copy head, oxygen.model.copy): gate g_b, copy mass c_b on the target,
    log p_b = log( (1 - g_b) exp(sum_l log p_l(target_l[b])) + g_b c_b )
    NLL = -(1/L) sum_b w_b log p_b / sum_b w_b       (1/L keeps the scale of the NTP loss)

    loss, per_level = weighted_ntp(logits, target_codes, weight)
    q2i, parts = q2i_loss(Q, T)
    nll = mixture_nll(logits, target_codes, weight, gate, copy_mass)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-4


def weighted_ntp(logits: list[torch.Tensor], targets: torch.Tensor,
                 weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """logits[l] Float[B, K_l], targets Long[B, L], weight Float[B] -> (NTP Float[], per-level
    weighted CE Float[L])."""
    if len(logits) != targets.shape[1]:
        raise ValueError(f"{len(logits)} levels of logits but targets have {targets.shape[1]} levels")
    if (weight < 0).any() or weight.sum() <= 0:
        raise ValueError("batch.weight must be >= 0 with a positive sum (see BEHAVIOUR_WEIGHTS)")
    ce = torch.stack([F.cross_entropy(lg, targets[:, l], reduction="none") for l, lg in enumerate(logits)], 1)
    w = weight / weight.sum()
    per_level = (w[:, None] * ce).sum(0)
    return per_level.mean(), per_level


def mixture_nll(logits: list[torch.Tensor], targets: torch.Tensor, weight: torch.Tensor,
                gate: torch.Tensor, copy_mass: torch.Tensor) -> torch.Tensor:
    """logits[l] Float[B, K_l], targets Long[B, L], weight/gate/copy_mass Float[B] -> weighted
    mixture NLL Float[] (module docstring)."""
    if (weight < 0).any() or weight.sum() <= 0:
        raise ValueError("batch.weight must be >= 0 with a positive sum (see BEHAVIOUR_WEIGHTS)")
    logp_gen = sum(torch.log_softmax(lg, -1).gather(1, targets[:, l:l + 1]).squeeze(1) for l, lg in enumerate(logits))
    gen = torch.log1p(-gate.clamp(max=1 - 1e-6)) + logp_gen
    copy = torch.log(gate.clamp(min=1e-12)) + torch.log(copy_mass.clamp(min=1e-30))
    logp = torch.logaddexp(gen, copy)
    w = weight / weight.sum()
    return -(w * logp).sum() / len(logits)


def q2i_loss(q: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """q, t Float[B, A] (unit rows) -> (Q2I Float[], {"align", "var", "off"} parts)."""
    if q.shape != t.shape:
        raise ValueError(f"Q2I needs equal shapes, got Q {tuple(q.shape)} and T {tuple(t.shape)}")
    align = (q - t).pow(2).sum(-1).mean()
    if q.shape[0] < 2:
        zero = align.new_zeros(())
        return align, {"align": align, "var": zero, "off": zero}
    qc, tc = q - q.mean(0), t - t.mean(0)
    var = -torch.log((qc.pow(2).mean() + EPS) * (tc.pow(2).mean() + EPS))
    cov = qc.T @ tc / q.shape[0]
    off = cov.pow(2).sum() - cov.diagonal().pow(2).sum()
    return align + var + off, {"align": align, "var": var, "off": off}
