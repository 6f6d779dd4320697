"""Pre-LN transformer blocks of the encoder-decoder.

EncoderBlock: x + SelfAttn(LN(x)) (bidirectional, key padding mask), then x + FFN(LN(x)).
DecoderBlock: x + CausalSelfAttn(LN(x)), x + CrossAttn(LN(x), encoder K/V), x + FFN(LN(x)), over a
full sequence (`forward`) or one decoding position per beam (`step`, prefix K/V shared per request).
The FFN is dense or a mixture of experts (oxygen.model.moe); every block returns its MoE
load-balancing loss (0 when dense).

Shapes: B requests, N = B * beams decoder rows, T encoder length, t decoder positions, d = d_model.
"""

from __future__ import annotations

import torch
from torch import nn

from oxygen.config import ModelConfig
from oxygen.model.attention import KV, Attention
from oxygen.model.moe import make_ffn


def _ffn(cfg: ModelConfig, moe: bool) -> nn.Module:
    experts = cfg.moe_experts if moe else 0
    return make_ffn(cfg.d_model, cfg.d_ff, cfg.dropout, experts, cfg.moe_active)


class EncoderBlock(nn.Module):
    """One bidirectional pre-LN block over Float[B, T, d] with key mask Bool[B, T]."""

    def __init__(self, cfg: ModelConfig, moe: bool) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.attn = Attention(cfg.d_model, cfg.n_heads)
        self.ffn = _ffn(cfg, moe)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x Float[B, T, d], mask Bool[B, T]) -> (Float[B, T, d], aux Float[])."""
        y, _ = self.attn.self_attend(self.ln1(x), key_mask=mask)
        x = x + self.drop(y)
        y, aux = self.ffn(self.ln2(x))
        return x + y, aux


class DecoderBlock(nn.Module):
    """One causal pre-LN block with cross-attention; works on full sequences or one decoding step."""

    def __init__(self, cfg: ModelConfig, moe: bool) -> None:
        super().__init__()
        self.ln1, self.ln2, self.ln3 = (nn.LayerNorm(cfg.d_model) for _ in range(3))
        self.self_attn = Attention(cfg.d_model, cfg.n_heads)
        self.cross_attn = Attention(cfg.d_model, cfg.n_heads)
        self.ffn = _ffn(cfg, moe)
        self.drop = nn.Dropout(cfg.dropout)

    def memory_kv(self, memory: torch.Tensor) -> KV:
        """Cross-attention K/V Float[B, h, T, dh] of the encoder output Float[B, T, d]."""
        return self.cross_attn.memory_kv(memory)

    def forward(self, x: torch.Tensor, memory_kv: KV, mem_mask: torch.Tensor) -> tuple[torch.Tensor, KV, torch.Tensor]:
        """Full causal pass over x Float[B, t, d] (one row per request) -> (Float[B, t, d],
        self-attention K/V Float[B, h, t, dh] x2 (the decoder prefix's, kept by `start`), aux Float[])."""
        y, kv = self.self_attn.self_attend(self.ln1(x))
        x = x + self.drop(y)
        x = x + self.drop(self.cross_attn.cross_attend(self.ln2(x), memory_kv, mem_mask))
        y, aux = self.ffn(self.ln3(x))
        return x + y, kv, aux

    def step(self, x: torch.Tensor, memory_kv: KV, mem_mask: torch.Tensor, prefix_kv: KV, gen_kv: KV,
             beams: int) -> tuple[torch.Tensor, KV]:
        """One decoding position per beam: x Float[N, d] -> (Float[N, d], generated self-attention
        K/V Float[N, j + 1, h, dh] x2); the prefix K/V Float[B, h, P, dh] are shared per request."""
        y, gen = self.self_attn.step_attend(self.ln1(x), prefix_kv, gen_kv, beams)
        x = x + self.drop(y)
        x = x + self.drop(self.cross_attn.cross_attend(self.ln2(x)[:, None], memory_kv, mem_mask, beams)[:, 0])
        y, _ = self.ffn(self.ln3(x))
        return x + y, gen
