"""The SASRec network (Kang & McAuley, 2018): item + learned position embeddings, a stack of causal
self-attention blocks (pre-LayerNorm, residual, point-wise feed-forward, dropout), final LayerNorm,
and next-item logits by a dot product with the (shared) item embeddings.

Item index 0 is padding; real items are 1..V. Sequences are left-padded to `max_len`.

    net = SASRecNet(num_items=V, cfg=SASRecConfig())
    h = net(seqs)                       # seqs Long[B, L] -> hidden Float[B, L, d]
    logits = net.all_logits(h[:, -1])   # Float[B, V] over items 1..V (column j = item j+1)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from oxygen.config import SASRecConfig


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention that ignores padded keys (each position always sees itself)."""

    def __init__(self, hidden: int, heads: int, dropout: float) -> None:
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden ({hidden}) must be divisible by heads ({heads})")
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """x Float[B, L, d], allowed Bool[B, 1, L, L] (query, key) -> Float[B, L, d]."""
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    """x + Attn(LN(x)), then x + FFN(LN(x)); FFN = Linear-ReLU-Dropout-Linear (SASRec's conv1d)."""

    def __init__(self, hidden: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.attn = CausalSelfAttention(hidden, heads, dropout)
        self.ffn = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, hidden))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """x Float[B, L, d] -> Float[B, L, d]."""
        x = x + self.drop(self.attn(self.ln1(x), allowed))
        return x + self.drop(self.ffn(self.ln2(x)))


class SASRecNet(nn.Module):
    """SASRec: embeddings -> causal blocks -> LayerNorm; logits against the item embedding table."""

    def __init__(self, num_items: int, cfg: SASRecConfig) -> None:
        super().__init__()
        self.num_items, self.max_len = num_items, cfg.max_len
        self.item_emb = nn.Embedding(num_items + 1, cfg.hidden, padding_idx=0)
        self.pos_emb = nn.Embedding(cfg.max_len, cfg.hidden)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg.hidden, cfg.heads, cfg.dropout)
                                    for _ in range(cfg.blocks))
        self.ln = nn.LayerNorm(cfg.hidden)
        nn.init.normal_(self.item_emb.weight, std=cfg.hidden ** -0.5)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    def forward(self, seqs: torch.Tensor) -> torch.Tensor:
        """seqs Long[B, L] (L <= max_len, 0 = pad, left-padded) -> hidden Float[B, L, d]."""
        n = seqs.shape[1]
        if n > self.max_len:
            raise ValueError(f"sequence length {n} > max_len {self.max_len}; truncate to the last "
                             f"{self.max_len} items")
        real = seqs > 0
        pos = torch.arange(self.max_len - n, self.max_len, device=seqs.device)
        x = self.item_emb(seqs) * math.sqrt(self.item_emb.embedding_dim) + self.pos_emb(pos)[None]
        x = self.drop(x) * real[..., None]
        eye = torch.eye(n, dtype=torch.bool, device=seqs.device)
        causal = torch.ones(n, n, dtype=torch.bool, device=seqs.device).tril()
        allowed = (causal[None] & real[:, None, :]) | eye[None]
        for block in self.blocks:
            x = block(x, allowed[:, None]) * real[..., None]
        return self.ln(x)

    def all_logits(self, h: torch.Tensor) -> torch.Tensor:
        """h Float[..., d] -> Float[..., V]: scores of items 1..V (column j is item index j+1)."""
        return h @ self.item_emb.weight[1:].T

    def item_logits(self, h: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """h Float[B, L, d], items Long[B, L] (1..V) -> Float[B, L]: score of each given item."""
        return (h * self.item_emb(items)).sum(-1)
