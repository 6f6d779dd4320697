"""Weighted NTP and Q2I against loop-based references; weights steer the loss as documented."""

from __future__ import annotations

import math

import torch

from oxygen.model import OxygenModel
from oxygen.model.losses import EPS, q2i_loss, weighted_ntp
from tests.model.helpers import random_batch, tiny_config


def _q2i_reference(q: torch.Tensor, t: torch.Tensor) -> float:
    B, A = q.shape
    q, t = q.tolist(), t.tolist()
    align = sum(sum((q[i][a] - t[i][a]) ** 2 for a in range(A)) for i in range(B)) / B
    mq = [sum(q[i][a] for i in range(B)) / B for a in range(A)]
    mt = [sum(t[i][a] for i in range(B)) / B for a in range(A)]
    vq = sum((q[i][a] - mq[a]) ** 2 for i in range(B) for a in range(A)) / (B * A)
    vt = sum((t[i][a] - mt[a]) ** 2 for i in range(B) for a in range(A)) / (B * A)
    off = 0.0
    for a in range(A):
        for c in range(A):
            if a != c:
                cov = sum((q[i][a] - mq[a]) * (t[i][c] - mt[c]) for i in range(B)) / B
                off += cov ** 2
    return align - math.log((vq + EPS) * (vt + EPS)) + off


def test_q2i_matches_loop_reference():
    g = torch.Generator().manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(6, 5, generator=g), dim=-1)
    t = torch.nn.functional.normalize(torch.randn(6, 5, generator=g), dim=-1)
    loss, parts = q2i_loss(q, t)
    assert abs(loss.item() - _q2i_reference(q, t)) < 1e-4
    assert abs((parts["align"] + parts["var"] + parts["off"]).item() - loss.item()) < 1e-5
    single, _ = q2i_loss(q[:1], t[:1])
    assert abs(single.item() - ((q[0] - t[0]) ** 2).sum().item()) < 1e-6


def test_weighted_ntp_matches_loop_reference():
    g = torch.Generator().manual_seed(0)
    sizes, B = (4, 3, 5), 6
    logits = [torch.randn(B, k, generator=g) for k in sizes]
    targets = torch.stack([torch.randint(0, k, (B,), generator=g) for k in sizes], 1)
    weight = torch.tensor([1.0, 3.0, 2.0, 0.0, 1.0, 3.0])
    loss, _ = weighted_ntp(logits, targets, weight)
    num = 0.0
    for b in range(B):
        ce = [-torch.log_softmax(logits[l][b], 0)[targets[b, l]].item() for l in range(3)]
        num += weight[b].item() * sum(ce) / 3
    assert abs(loss.item() - num / weight.sum().item()) < 1e-5


def test_model_loss_respects_weights():
    torch.manual_seed(0)
    model = OxygenModel(tiny_config(use_q2i=False)).eval()
    batch = random_batch(model.cfg, B=4)
    batch.weight = torch.tensor([0.0, 1.0, 1.0, 1.0])
    moved = batch.select(torch.arange(4))
    moved.target_codes[0] = (moved.target_codes[0] + 1) % torch.tensor(model.codebook_sizes)
    with torch.no_grad():
        # a zero-weight example's target does not matter; scaling all weights changes nothing
        assert abs(model(moved).ntp.item() - model(batch).ntp.item()) < 1e-6
        scaled = batch.select(torch.arange(4))
        scaled.weight = batch.weight * 3
        assert abs(model(scaled).ntp.item() - model(batch).ntp.item()) < 1e-6
        heavy = batch.select(torch.arange(4))
        heavy.weight = torch.tensor([0.0, 5.0, 1.0, 1.0])
        per_example = [model(batch.select(torch.tensor([i]))).ntp.item() for i in range(1, 4)]
        expect = (5 * per_example[0] + per_example[1] + per_example[2]) / 7
        assert abs(model(heavy).ntp.item() - expect) < 1e-5
