"""Input checks of the encoder-decoder: a ModelBatch must match the ModelConfig it is fed to.

Raises ValueError naming the field, what is wrong and how to fix it, instead of an index error
deep inside an embedding lookup.

    check_batch(batch, cfg)   # before encoding
"""

from __future__ import annotations

import torch

from oxygen.config import ModelConfig
from oxygen.data.batch import ModelBatch


def _range(name: str, x: torch.Tensor, size: int, hint: str) -> None:
    if x.numel() and (int(x.min()) < 0 or int(x.max()) >= size):
        raise ValueError(f"batch.{name} has values in [{int(x.min())}, {int(x.max())}] outside "
                         f"[0, {size}); {hint}")


def _check_codes(name: str, codes: torch.Tensor, cfg: ModelConfig) -> None:
    L = len(cfg.codebook_sizes)
    if codes.shape[-1] != L:
        raise ValueError(f"batch.{name} has {codes.shape[-1]} SID levels but the model has {L} "
                         f"(ModelConfig.codebook_sizes={cfg.codebook_sizes}); rebuild SIDs or the config")
    for l, k in enumerate(cfg.codebook_sizes):
        _range(f"{name}[..., {l}]", codes[..., l], k, "set ModelConfig.codebook_sizes from the codebook")


def _check_candidates(batch: ModelBatch, cfg: ModelConfig) -> None:
    if batch.cand_mask.shape[1] != cfg.candidates:
        raise ValueError(f"batch has {batch.cand_mask.shape[1]} candidate slots but ModelConfig.candidates="
                         f"{cfg.candidates}; collate with CollateConfig(candidates={cfg.candidates})")
    _check_codes("cand_codes", batch.cand_codes, cfg)
    _range("cand_items", batch.cand_items, cfg.n_items + 1, "set ModelConfig.n_items to the catalogue size")


def check_batch(batch: ModelBatch, cfg: ModelConfig) -> None:
    """Shapes and id ranges of `batch` against `cfg`; ValueError on the first problem."""
    B = len(batch)
    for name in ("short_codes", "long_codes", "trigger_codes", "target_codes"):
        _check_codes(name, getattr(batch, name), cfg)
    if cfg.candidates:
        _check_candidates(batch, cfg)
    if batch.profile.shape[1] != cfg.profile_slots:
        raise ValueError(f"batch.profile has {batch.profile.shape[1]} slots but ModelConfig.profile_slots="
                         f"{cfg.profile_slots}; make them equal")
    if batch.instr_emb.shape != (B, cfg.instr_dim):
        raise ValueError(f"batch.instr_emb is {tuple(batch.instr_emb.shape)}, expected ({B}, {cfg.instr_dim}); "
                         "set ModelConfig.instr_dim to the text encoder's width")
    _range("profile", batch.profile, cfg.profile_size, "set ModelConfig.profile_size = FeatureSpace.profile_size")
    _range("scenario", batch.scenario, cfg.n_scenarios, "raise ModelConfig.n_scenarios")
    for part in ("short", "long"):
        _range(f"{part}_scenario", getattr(batch, f"{part}_scenario"), cfg.n_scenarios, "raise n_scenarios")
        _range(f"{part}_behaviour", getattr(batch, f"{part}_behaviour"), cfg.n_behaviours, "raise n_behaviours")
        if cfg.use_item_id:
            _range(f"{part}_items", getattr(batch, f"{part}_items"), cfg.n_items + 1,
                   "set ModelConfig.n_items to the catalogue size")
