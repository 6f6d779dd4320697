"""Tiny configs and random ModelBatch tensors for the model tests (no collate, no data files)."""

from __future__ import annotations

import torch

from oxygen.config import ModelConfig
from oxygen.data.batch import ModelBatch


def tiny_config(**overrides: object) -> ModelConfig:
    """A few-thousand-parameter model with dropout off, so eval and train passes agree."""
    base = dict(codebook_sizes=(7, 5, 6), n_items=30, profile_size=9, profile_slots=3, d_model=16,
                n_heads=2, enc_layers=2, dec_layers=2, d_ff=32, dropout=0.0, instr_dim=12,
                adapter_dim=8, igr_k=3, max_positions=64)
    base.update(overrides)
    return ModelConfig(**base)


def random_batch(cfg: ModelConfig, B: int = 4, S: int = 5, H: int = 7, seed: int = 0) -> ModelBatch:
    """Random valid inputs: every row has >= 1 real short item; masks, triggers, instructions mixed."""
    g = torch.Generator().manual_seed(seed)

    def codes(*shape: int) -> torch.Tensor:
        return torch.stack([torch.randint(0, k, shape, generator=g) for k in cfg.codebook_sizes], -1)

    def ints(high: int, *shape: int) -> torch.Tensor:
        return torch.randint(0, high, shape, generator=g)

    short_mask = torch.rand(B, S, generator=g) < 0.7
    short_mask[:, -1] = True
    long_mask = torch.rand(B, H, generator=g) < 0.6
    return ModelBatch(
        short_codes=codes(B, S), short_items=ints(cfg.n_items + 1, B, S), short_behaviour=ints(5, B, S),
        short_scenario=ints(6, B, S), short_mask=short_mask,
        long_codes=codes(B, H), long_items=ints(cfg.n_items + 1, B, H), long_behaviour=ints(5, B, H),
        long_scenario=ints(6, B, H), long_mask=long_mask,
        profile=ints(cfg.profile_size, B, cfg.profile_slots), scenario=ints(6, B),
        trigger_codes=codes(B), trigger_mask=torch.arange(B) % 2 == 0,
        instr_emb=torch.randn(B, cfg.instr_dim, generator=g), instr_mask=torch.arange(B) % 3 != 1,
        cand_codes=codes(B, cfg.candidates), cand_items=ints(cfg.n_items + 1, B, cfg.candidates),
        cand_mask=torch.rand(B, cfg.candidates, generator=g) < 0.8,
        target_codes=codes(B), target_items=ints(cfg.n_items, B),
        weight=torch.tensor([1.0, 2.0, 3.0])[ints(3, B)],
    )
