"""Multi-head attention for the encoder-decoder: full / causal self-attention with an optional KV
cache, and cross-attention where many beams of one request share that request's keys/values.

Shapes: B = requests, N = beams (N = B * beams, beams contiguous per request), T = encoder length,
t = decoder positions so far, h = heads, dh = d_model / h.

    attn = Attention(d_model=64, n_heads=4)
    y, (k, v) = attn.self_attend(x)                   # x Float[N, t, d], causal
    y, (k, v) = attn.self_attend(x1, cache=(k, v))    # x1 Float[N, 1, d], one new position (reference)
    K, V = attn.memory_kv(memory)                     # Float[B, h, T, dh], once per request
    y = attn.cross_attend(xq, K, V, mem_mask, beams)  # xq Float[N, tq, d]
    y, gen = attn.step_attend(x1, prefix_kv, gen, beams)  # decoding: x1 Float[N, d], see below

Cross-attention with beams: queries Float[N, h, tq, dh] are reshaped to [B, h, beams * tq, dh]
(beams become extra query rows of their request), so one batched matmul against K Float[B, h, T, dh]
serves every beam with no per-beam copy of K/V. This needs beams contiguous per request with equal
counts, which the decoding engine guarantees (and `oxygen.model.inference` checks).
Decoding step (`step_attend`): the decoder prefix (BOS / instruction tokens) is the same for all
beams of a request, so its keys/values stay per request, Float[B, h, P, dh], like the cross K/V;
only the positions generated so far are per beam, Float[N, j, h, dh]. One new query per beam
attends to [prefix ; generated] with one softmax; nothing of the prefix is ever copied per beam.

No dropout on attention probabilities (it forces the slow math kernel on CPU); the blocks apply
dropout on the residual branches instead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

KV = tuple[torch.Tensor, torch.Tensor]


class Attention(nn.Module):
    """Multi-head attention with separate q/k/v/out projections (d_model -> d_model)."""

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} must be divisible by n_heads {n_heads}")
        self.h, self.dh = n_heads, d_model // n_heads
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        """Float[N, t, d] -> Float[N, h, t, dh]."""
        n, t, _ = x.shape
        return x.view(n, t, self.h, self.dh).transpose(1, 2)

    def _merge(self, x: torch.Tensor) -> torch.Tensor:
        """Float[N, h, t, dh] -> Float[N, t, d]."""
        n, _, t, _ = x.shape
        return x.transpose(1, 2).reshape(n, t, self.h * self.dh)

    def self_attend(self, x: torch.Tensor, cache: KV | None = None,
                    causal: bool = True, key_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, KV]:
        """Self-attention of x Float[N, t, d]; returns (y Float[N, t, d], keys/values incl. cache).

        Without a cache: causal (decoder) or bidirectional with key_mask Bool[N, t] (encoder).
        With a cache Float[N, h, t0, dh] x2: x holds ONE new position that sees all cached ones."""
        q, k, v = self._split(self.q(x)), self._split(self.k(x)), self._split(self.v(x))
        if cache is not None:
            if x.shape[1] != 1:
                raise ValueError(f"cached self-attention takes one new position, got {x.shape[1]}")
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
            y = F.scaled_dot_product_attention(q, k, v)
        elif key_mask is not None:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask[:, None, None, :])
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return self.out(self._merge(y)), (k, v)

    def step_attend(self, x: torch.Tensor, prefix: KV, gen: KV, beams: int) -> tuple[torch.Tensor, KV]:
        """One new position per beam: x Float[N, d] (N = B * beams, contiguous per request) attends to
        the request's prefix K/V Float[B, h, P, dh] and its own generated K/V Float[N, j, h, dh].
        Returns (y Float[N, d], generated K/V incl. the new position Float[N, j + 1, h, dh] x2)."""
        n, h, dh = x.shape[0], self.h, self.dh
        b = prefix[0].shape[0]
        w = torch.cat([self.q.weight, self.k.weight, self.v.weight])
        bias = torch.cat([self.q.bias, self.k.bias, self.v.bias])
        q, k, v = F.linear(x, w, bias).view(n, 3, h, dh).unbind(1)  # [N, h, dh] each
        gk, gv = torch.cat([gen[0], k[:, None]], 1), torch.cat([gen[1], v[:, None]], 1)  # [N, j+1, h, dh]
        qb = q.view(b, beams, h, dh).transpose(1, 2)  # [B, h, n, dh]
        s_pre = qb @ prefix[0].transpose(-1, -2)  # [B, h, n, P]
        s_gen = (gk * q[:, None]).sum(-1).view(b, beams, -1, h).permute(0, 3, 1, 2)  # [B, h, n, j+1]
        p = torch.softmax(torch.cat([s_pre, s_gen], -1) * dh ** -0.5, dim=-1)
        P = s_pre.shape[-1]
        y = (p[..., :P] @ prefix[1]).transpose(1, 2).reshape(n, h, dh)  # [N, h, dh]
        p_gen = p[..., P:].permute(0, 2, 3, 1).reshape(n, -1, h, 1)  # [N, j+1, h, 1]
        y = y + (p_gen * gv).sum(1)
        return self.out(y.reshape(n, h * dh)), (gk, gv)

    def memory_kv(self, memory: torch.Tensor) -> KV:
        """Cross-attention keys and values of the encoder output Float[B, T, d] -> Float[B, h, T, dh] x2."""
        return self._split(self.k(memory)), self._split(self.v(memory))

    def cross_attend(self, x: torch.Tensor, kv: KV, mem_mask: torch.Tensor, beams: int = 1) -> torch.Tensor:
        """Attend x Float[N, tq, d] (N = B * beams, beams contiguous per request) to the per-request
        K/V Float[B, h, T, dh] with mem_mask Bool[B, T]; returns Float[N, tq, d]. No K/V copy."""
        k, v = kv
        b, n, tq = k.shape[0], x.shape[0], x.shape[1]
        if n != b * beams:
            raise ValueError(f"{n} beams != {b} requests x {beams} beams each; keep beams contiguous")
        q = self._split(self.q(x))  # [N, h, tq, dh]
        q = q.view(b, beams, self.h, tq, self.dh).permute(0, 2, 1, 3, 4).reshape(b, self.h, beams * tq, self.dh)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mem_mask[:, None, None, :])
        y = y.view(b, self.h, beams, tq, self.dh).permute(0, 2, 1, 3, 4).reshape(n, self.h, tq, self.dh)
        return self.out(self._merge(y))
