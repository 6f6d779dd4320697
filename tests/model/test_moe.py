"""Mixture-of-experts FFN against a per-token loop reference (outputs and load-balancing loss)."""

from __future__ import annotations

import torch

from oxygen.model.moe import MoEFeedForward


def test_moe_matches_per_token_reference():
    torch.manual_seed(0)
    moe = MoEFeedForward(8, 16, 0.0, experts=4, active=2).eval()
    x = torch.randn(3, 5, 8)
    with torch.no_grad():
        y, aux = moe(x)
        _check_tokens(moe, x.reshape(-1, 8), y.reshape(-1, 8), aux)


def _check_tokens(moe: MoEFeedForward, flat: torch.Tensor, y: torch.Tensor, aux: torch.Tensor) -> None:
    counts, probs_sum = [0.0] * 4, torch.zeros(4)
    for i, tok in enumerate(flat):
        p = torch.softmax(moe.router(tok), -1)
        probs_sum += p
        top = sorted(range(4), key=lambda e: -float(p[e]))[:2]
        z = sum(float(p[e]) for e in top)
        ref = sum(float(p[e]) / z * moe.experts[e].body(tok) for e in top)
        torch.testing.assert_close(y[i], ref, atol=1e-5, rtol=1e-5)
        for e in top:
            counts[e] += 1
    M = flat.shape[0]
    aux_ref = 4 * sum(counts[e] / (M * 2) * float(probs_sum[e]) / M for e in range(4))
    assert abs(aux.item() - aux_ref) < 1e-5


def test_moe_aux_gets_gradient():
    torch.manual_seed(0)
    moe = MoEFeedForward(8, 16, 0.0, experts=3, active=1)
    _, aux = moe(torch.randn(10, 8))
    aux.backward()
    assert moe.router.weight.grad is not None and moe.router.weight.grad.abs().sum() > 0
