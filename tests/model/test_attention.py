"""Attention: grouped-beam cross-attention and cached self-attention against plain references."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from oxygen.model.attention import Attention


def _reference(attn: Attention, x: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor,
               row: torch.Tensor) -> torch.Tensor:
    """Per-beam loop with explicit softmax over that beam's request memory."""
    out = []
    for i in range(x.shape[0]):
        b = int(row[i])
        q = attn.q(x[i]).view(-1, attn.h, attn.dh).transpose(0, 1)  # [h, tq, dh]
        k = attn.k(memory[b]).view(-1, attn.h, attn.dh).transpose(0, 1)
        v = attn.v(memory[b]).view(-1, attn.h, attn.dh).transpose(0, 1)
        s = (q @ k.transpose(1, 2)) / attn.dh ** 0.5
        s = s.masked_fill(~mask[b][None, None], float("-inf"))
        y = (F.softmax(s, -1) @ v).transpose(0, 1).reshape(x.shape[1], -1)
        out.append(attn.out(y))
    return torch.stack(out)


def test_grouped_cross_attention_matches_per_beam_loop():
    torch.manual_seed(0)
    attn = Attention(16, 4).eval()
    B, n, T = 3, 5, 7
    memory, x = torch.randn(B, T, 16), torch.randn(B * n, 2, 16)
    mask = torch.rand(B, T) < 0.7
    mask[:, 0] = True
    row = torch.arange(B).repeat_interleave(n)
    fast = attn.cross_attend(x, attn.memory_kv(memory), mask, beams=n)
    torch.testing.assert_close(fast, _reference(attn, x, memory, mask, row), atol=1e-5, rtol=1e-5)


def test_cached_self_attention_matches_causal_full():
    torch.manual_seed(0)
    attn = Attention(16, 2).eval()
    x = torch.randn(3, 6, 16)
    full, _ = attn.self_attend(x)
    y, cache = attn.self_attend(x[:, :2])
    steps = [y]
    for t in range(2, 6):
        y, cache = attn.self_attend(x[:, t:t + 1], cache=cache)
        steps.append(y)
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=1e-5)


def test_step_attention_with_shared_prefix_matches_full_cache():
    """step_attend (prefix K/V per request, generated K/V per beam) == cached self_attend on copies."""
    torch.manual_seed(0)
    attn = Attention(16, 2).eval()
    B, n, P = 2, 3, 2
    prefix_x = torch.randn(B, P, 16)
    gen_x = torch.randn(B * n, 2, 16)  # two generated positions per beam, all different
    rows = torch.arange(B).repeat_interleave(n)
    _, prefix_kv = attn.self_attend(prefix_x)
    gen = (torch.zeros(B * n, 0, 2, 8), torch.zeros(B * n, 0, 2, 8))
    _, cache = attn.self_attend(prefix_x[rows])
    for t in range(2):
        fast, gen = attn.step_attend(gen_x[:, t], prefix_kv, gen, beams=n)
        slow, cache = attn.self_attend(gen_x[:, t:t + 1], cache=cache)
        torch.testing.assert_close(fast, slow[:, 0], atol=1e-5, rtol=1e-5)
    assert gen[0].shape == (B * n, 2, 2, 8)
