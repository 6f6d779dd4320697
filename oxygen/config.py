"""Pydantic models for every job's configuration, and YAML loading. No logic lives here.

Each job (world generation, SID building, training, serving, …) has one config class. Configs
load from YAML with `load_config(path, Cls)`; unknown keys are errors so a typo never passes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

C = TypeVar("C", bound=BaseModel)


class StrictConfig(BaseModel):
    """Base of all configs: unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid")


def load_config(path: Path | str | None, cls: type[C], **overrides: object) -> C:
    """Read YAML at `path` (or nothing) into `cls`, applying keyword overrides that are not None."""
    data: dict = {}
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"config file {p} not found; pass an existing YAML file")
        data = yaml.safe_load(p.read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{p}: the config must be a YAML mapping of key: value")
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        raise ValueError(f"{path or 'config'}: invalid {cls.__name__}: {e}") from e


# ---- per-job configs are appended below (one class per job) ----


class TrainConfig(StrictConfig):
    """Pre-training loop: optimiser, schedule, early stopping, validation decoding."""

    epochs: int = Field(default=20, ge=1)
    batch_size: int = Field(default=256, ge=1)
    lr: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=0.01, ge=0)
    warmup_steps: int = Field(default=100, ge=0)
    grad_clip: float = Field(default=1.0, gt=0)
    patience: int = Field(default=3, ge=1)
    valid_beam: int = Field(default=20, ge=1)
    valid_k: int = Field(default=10, ge=1)
    max_valid_rows: int | None = Field(default=None, ge=1)
    short_len: int = Field(default=10, ge=1)
    long_len: int = Field(default=40, ge=0)
    seed: int = 0
    threads: int = Field(default=2, ge=1)
