"""Pydantic models for every job's configuration, and YAML loading. No logic lives here.

Each job (world generation, SID building, training, serving, …) has one config class. Configs
load from YAML with `load_config(path, Cls)`; unknown keys are errors so a typo never passes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

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
