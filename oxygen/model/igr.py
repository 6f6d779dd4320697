"""Instruction-guided retrieval (IGR) and the shared adapter space it has in common with Q2I.

The query of an example is q = MLP([scenario embedding ; r]) Float[B, A] (r = reasoning-instruction
vector, oxygen.model.instruction); an item maps to the same space with a linear projection of its
item embedding; both are L2-normalised (the adapter space is the unit sphere). IGR scores the
long-history items by dot product with q and keeps the top-K real
positions (long_mask True), returned in time order. The retrieval branch gives NO gradient: the
item projections and scores are computed under torch.no_grad (and the selection is discrete); the
selected items then enter the encoder as ordinary history tokens. The query and item projections
are trained by the Q2I loss (oxygen.model.losses), which is what makes IGR's scores meaningful.

    ret = Retriever(cfg)
    q = ret.query(scen, r)                                   # Float[B, A]
    scores = ret.scores(q, long_item_emb)                    # Float[B, H], no grad
    index, valid = igr_select(scores, long_mask, k)          # Long[B, k'], Bool[B, k'] (k' = min(k, H))
    picked = gather_positions(long_codes, index)             # Long[B, k', L]
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from oxygen.config import ModelConfig


class Retriever(nn.Module):
    """Query MLP (scenario ⊕ I_r -> A) and item projection (d -> A) of the shared adapter space."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d, a = cfg.d_model, cfg.adapter_dim
        self.query_mlp = nn.Sequential(nn.Linear(2 * d, d), nn.GELU(), nn.Linear(d, a))
        self.item_proj = nn.Linear(d, a)

    def query(self, scen: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """scen, r Float[B, d] -> unit-norm q Float[B, A]."""
        return F.normalize(self.query_mlp(torch.cat([scen, r], dim=-1)), dim=-1)

    def items(self, item_emb: torch.Tensor) -> torch.Tensor:
        """item_emb Float[..., d] -> unit-norm Float[..., A] (with gradient; the Q2I targets)."""
        return F.normalize(self.item_proj(item_emb), dim=-1)

    @torch.no_grad()
    def scores(self, q: torch.Tensor, item_emb: torch.Tensor) -> torch.Tensor:
        """Retrieval scores q · proj(item) Float[B, H] for item_emb Float[B, H, d]; no gradient."""
        return torch.einsum("bha,ba->bh", self.items(item_emb), q)


def igr_select(scores: torch.Tensor, mask: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k real positions by score, returned in time (index) order.

    scores Float[B, H], mask Bool[B, H] -> (index Long[B, k'], valid Bool[B, k']) with k' = min(k, H);
    rows with fewer than k real positions are filled with padding positions marked valid=False."""
    if k < 1:
        raise ValueError(f"igr_k must be >= 1, got {k}")
    k = min(k, scores.shape[1])
    masked = scores.detach().masked_fill(~mask, float("-inf"))
    top = masked.topk(k, dim=1).indices  # [B, k]
    valid = torch.gather(mask, 1, top)
    # time order among the chosen real positions; invalid ones sort after them
    key = torch.where(valid, top, top + scores.shape[1])
    order = key.argsort(dim=1)
    return torch.gather(top, 1, order), torch.gather(valid, 1, order)


def gather_positions(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x [B, H, ...] at positions index Long[B, k] -> [B, k, ...]."""
    idx = index.view(*index.shape, *([1] * (x.dim() - 2))).expand(*index.shape, *x.shape[2:])
    return torch.gather(x, 1, idx)
