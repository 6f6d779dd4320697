"""Feed-forward layers of the transformer blocks: a dense FFN and a top-k mixture of experts.

Both map Float[..., d] -> (Float[..., d], aux Float[]) where aux is the load-balancing loss (0 for
the dense FFN). The MoE routes every token independently (softmax router, top `active` experts,
gates renormalised over the chosen ones), so a token's output does not depend on the other tokens
in the batch: incremental decoding gives the same result as a full forward pass.

Load balancing (Switch Transformer / GShard style), E experts, M tokens, k active:
    f_e = (number of (token, slot) assignments to e) / (M * k),  P_e = mean_tokens softmax(router)_e
    aux = E * sum_e f_e * P_e        (= 1 when routing is perfectly uniform)

    ffn = make_ffn(d_model=64, d_ff=128, dropout=0.0, experts=4, active=2)
    y, aux = ffn(x)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FeedForward(nn.Module):
    """Linear -> GELU -> Linear -> dropout."""

    def __init__(self, d_model: int, d_ff: int, dropout: float) -> None:
        super().__init__()
        self.up = nn.Linear(d_model, d_ff)
        self.down = nn.Linear(d_ff, d_model)
        self.drop = nn.Dropout(dropout)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        """Float[..., d] -> Float[..., d] without the aux loss."""
        return self.drop(self.down(F.gelu(self.up(x))))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.body(x), x.new_zeros(())


class MoEFeedForward(nn.Module):
    """Top-k routed mixture of `experts` FeedForward experts with a load-balancing loss."""

    def __init__(self, d_model: int, d_ff: int, dropout: float, experts: int, active: int) -> None:
        super().__init__()
        if not 1 <= active <= experts:
            raise ValueError(f"MoE needs 1 <= active ({active}) <= experts ({experts})")
        self.active = active
        self.router = nn.Linear(d_model, experts, bias=False)
        self.experts = nn.ModuleList(FeedForward(d_model, d_ff, dropout) for _ in range(experts))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x Float[..., d] -> (Float[..., d], aux Float[])."""
        flat = x.reshape(-1, x.shape[-1])  # [M, d]
        probs = F.softmax(self.router(flat), dim=-1)  # [M, E]
        gate, chosen = probs.topk(self.active, dim=-1)  # [M, k]
        gate = gate / gate.sum(-1, keepdim=True)
        out = torch.zeros_like(flat)
        for e, expert in enumerate(self.experts):
            tok, slot = (chosen == e).nonzero(as_tuple=True)
            if len(tok):
                out.index_add_(0, tok, gate[tok, slot, None] * expert.body(flat[tok]))
        n_exp = len(self.experts)
        frac = F.one_hot(chosen, n_exp).float().sum((0, 1)) / max(1, chosen.numel())
        aux = n_exp * (frac * probs.mean(0)).sum()
        return out.view_as(x), aux


def make_ffn(d_model: int, d_ff: int, dropout: float, experts: int = 0, active: int = 1) -> nn.Module:
    """A dense FeedForward when experts == 0, else a MoEFeedForward."""
    if experts == 0:
        return FeedForward(d_model, d_ff, dropout)
    return MoEFeedForward(d_model, d_ff, dropout, experts, active)
