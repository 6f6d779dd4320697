"""Item, history and profile token embeddings of the encoder.

An item is the sum of its L per-level SID code embeddings (level l has its own table of K_l rows),
plus an item-id embedding when `use_item_id` (vocabulary n_items + 1, 0 = padding). A history
token adds the behaviour and scenario embeddings of that interaction. The scenario table is also
the request-scenario embedding of the instruction (oxygen.model.instruction) and the IGR query.

    emb = ItemEmbedder(cfg)
    item = emb.item(codes, items)                 # codes Long[..., L], items Long[...] -> Float[..., d]
    tok = emb.history(codes, items, beh, scen)    # Float[..., d]
    prof = emb.profile_tokens(profile)            # profile Long[B, P] -> Float[B, P, d]
"""

from __future__ import annotations

import torch
from torch import nn

from oxygen.config import ModelConfig


class ItemEmbedder(nn.Module):
    """SID-code, item-id, behaviour, scenario and profile embedding tables (all width d_model)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.codes = nn.ModuleList(nn.Embedding(k, d) for k in cfg.codebook_sizes)
        self.item_id = nn.Embedding(cfg.n_items + 1, d, padding_idx=0) if cfg.use_item_id else None
        self.behaviour = nn.Embedding(cfg.n_behaviours, d)
        self.scenario = nn.Embedding(cfg.n_scenarios, d)
        self.profile = nn.Embedding(cfg.profile_size, d)
        self.profile_slot = nn.Embedding(max(1, cfg.profile_slots), d)

    def item(self, codes: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        """codes Long[..., L] (+ items Long[...], index + 1) -> item embedding Float[..., d]."""
        out = sum(table(codes[..., l]) for l, table in enumerate(self.codes))
        if self.item_id is not None and items is not None:
            out = out + self.item_id(items)
        return out

    def history(self, codes: torch.Tensor, items: torch.Tensor, behaviour: torch.Tensor,
                scenario: torch.Tensor) -> torch.Tensor:
        """One token per interaction: item + behaviour + scenario, Float[..., d]."""
        return self.item(codes, items) + self.behaviour(behaviour) + self.scenario(scenario)

    def profile_tokens(self, profile: torch.Tensor) -> torch.Tensor:
        """profile Long[B, P] -> Float[B, P, d]: value embedding + slot embedding."""
        slots = torch.arange(profile.shape[1], device=profile.device)
        return self.profile(profile) + self.profile_slot(slots)
