"""The copy head (oxygen.model.copy) and its mixture loss: the pointer distribution lives on item
tokens only, the loss matches a loop reference and reduces to the weighted NTP at gate 0, the model
learns to copy a history item, and item_mixture at inference agrees with the training pass."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from oxygen.config import GenerativeConfig
from oxygen.decoding.rerank import copy_mixture
from oxygen.model import OxygenModel
from oxygen.model.copy import CopyHead, copy_prob
from oxygen.model.losses import mixture_nll, weighted_ntp
from tests.model.helpers import random_batch, tiny_config


def test_copy_head_puts_mass_on_item_tokens_only():
    torch.manual_seed(0)
    head = CopyHead(8)
    items = torch.tensor([[0, 3, 5, 3], [0, 0, 0, 0], [0, 2, 0, 7]])
    mask = torch.tensor([[True, True, True, True], [True, True, False, False], [True, True, True, False]])
    with torch.no_grad():
        gate, probs = head(torch.randn(3, 8), torch.randn(3, 4, 8), items, mask)
    assert probs[0].sum().item() == pytest.approx(1.0) and probs[0, 0] == 0
    assert probs[1].sum() == 0 and gate[1] == 0                     # no item token: pure generation
    assert probs[2, 3] == 0 and probs[2, 2] == 0 and probs[2, 1] == pytest.approx(1.0)  # masked / not an item
    assert 0 < gate[0] < 1
    mass = copy_prob(probs, items, torch.tensor([2, 1, 1]))       # dense index 2 -> token id 3
    assert mass[0].item() == pytest.approx((probs[0, 1] + probs[0, 3]).item())
    assert mass[1] == 0 and mass[2].item() == pytest.approx(1.0)


def slow_mixture_nll(logits, targets, weight, gate, mass) -> float:
    """Reference: one row at a time with math.log / math.exp."""
    total, wsum = 0.0, float(weight.sum())
    for b in range(targets.shape[0]):
        lp = sum(float(torch.log_softmax(lg[b], -1)[targets[b, l]]) for l, lg in enumerate(logits))
        p = (1 - float(gate[b])) * math.exp(lp) + float(gate[b]) * float(mass[b])
        total += float(weight[b]) / wsum * -math.log(p)
    return total / len(logits)


def test_mixture_nll_matches_the_loop_and_the_ntp_at_gate_zero():
    g = torch.Generator().manual_seed(1)
    logits = [torch.randn(6, k, generator=g) for k in (5, 4, 3)]
    targets = torch.stack([torch.randint(0, k, (6,), generator=g) for k in (5, 4, 3)], 1)
    weight = torch.tensor([1.0, 2.0, 3.0, 1.0, 1.0, 2.0])
    gate, mass = torch.rand(6, generator=g), torch.rand(6, generator=g)
    mass[2] = 0.0
    assert mixture_nll(logits, targets, weight, gate, mass).item() == pytest.approx(
        slow_mixture_nll(logits, targets, weight, gate, mass), rel=1e-5)
    zero = torch.zeros(6)
    ntp, _ = weighted_ntp(logits, targets, weight)
    assert mixture_nll(logits, targets, weight, zero, mass).item() == pytest.approx(ntp.item(), rel=1e-5)


def test_model_learns_to_copy_the_history_item():
    """Target = the item of the last short-history slot, with codes the generator cannot guess."""
    cfg = tiny_config(copy_head=True, use_item_id=True)
    batch = random_batch(cfg, B=16, seed=3)
    batch.short_items[:, -1] = torch.arange(16) + 1
    batch.target_items = torch.arange(16)
    torch.manual_seed(0)
    model = OxygenModel(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    first = model(batch).metrics
    for _ in range(150):
        out = model(batch)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    last = model(batch).metrics
    assert last["copy_mass"] > 0.9 and last["copy_gate"] > first["copy_gate"]
    model.eval()
    gate, items, probs = model.item_mixture(batch)
    assert gate.shape == (16,) and items.shape == probs.shape and torch.allclose(probs.sum(1), torch.ones(16))
    g2, dists = copy_mixture(model.item_mixture(batch), np.arange(100, 130))      # dense index i -> item id 100 + i
    assert np.allclose(g2, gate.detach().numpy())
    assert all(max(d, key=d.get) == 100 + b for b, d in enumerate(dists))


def test_no_copy_head_has_no_mixture_and_config_rejects_copy_with_rerank():
    model = OxygenModel(tiny_config())
    assert model.item_mixture(random_batch(model.cfg)) is None
    with pytest.raises(ValueError, match="copy_head"):
        GenerativeConfig.model_validate({"model": {"copy_head": True}, "rerank": {"weights": [0.1]}})
