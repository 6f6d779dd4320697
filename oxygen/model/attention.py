"""Multi-head attention for the encoder-decoder: full / causal self-attention with an optional KV
cache, and cross-attention where many beams of one request share that request's keys/values.

Shapes: B = requests, N = beams (N = B * beams, beams contiguous per request), T = encoder length,
t = decoder positions so far, h = heads, dh = d_model / h.

    attn = Attention(d_model=64, n_heads=4)
    y, (k, v) = attn.self_attend(x)                   # x Float[N, t, d], causal
    y, (k, v) = attn.self_attend(x1, cache=(k, v))    # x1 Float[N, 1, d], one new position
    K, V = attn.memory_kv(memory)                     # Float[B, h, T, dh], once per request
    y = attn.cross_attend(xq, K, V, mem_mask, beams)  # xq Float[N, tq, d]

Cross-attention with beams: queries Float[N, h, tq, dh] are reshaped to [B, h, beams * tq, dh]
(beams become extra query rows of their request), so one batched matmul against K Float[B, h, T, dh]
serves every beam with no per-beam copy of K/V. This needs beams contiguous per request with equal
counts, which the decoding engine guarantees (and `oxygen.model.inference` checks).
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
