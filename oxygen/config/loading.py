"""Config loading: the strict pydantic base, YAML with `extends:` chains, `key.path=value` sets.

The one config mechanism of the project (see the package docstring); no job's fields live here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

C = TypeVar("C", bound=BaseModel)
Scenario = Literal["search", "homepage", "channel", "cart", "checkout"]  # the one list of scenario names (schema uses it)


class StrictConfig(BaseModel):
    """Base of all configs: unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid")


class ConfigError(ValueError):
    """A config file, `extends:` chain or `--set` override that cannot be read or validated."""


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """The mapping in YAML file `path` with its `extends:` chain merged underneath (paths relative
    to the file that names them; later files win, nested mappings merge key by key)."""
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: `extends:` loops back to itself ({' -> '.join(map(str, seen))})")
    if not path.exists():
        where = f" (named by `extends:` in {seen[-1]})" if seen else ""
        raise ConfigError(f"config file {path} not found{where}; pass an existing YAML file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the config must be a YAML mapping of key: value")
    parents = data.pop("extends", None) or []
    merged: dict = {}
    for parent in [parents] if isinstance(parents, str) else parents:
        merged = merge(merged, _read_yaml(path.parent / parent, (*seen, path)))
    return merge(merged, data)


def merge(base: dict, top: dict) -> dict:
    """`top` over `base`: nested mappings merge key by key, anything else is replaced (new dict)."""
    out = dict(base)
    for k, v in top.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def apply_set(data: dict, assignment: str) -> dict:
    """`data` with one `key.path=value` override applied (value read as YAML: 3, 0.5, true, [1, 2])."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key.strip() or any(not part for part in key.strip().split(".")):
        raise ConfigError(f"--set {assignment!r}: write key.path=value, e.g. --set train.epochs=5")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        raise ConfigError(f"--set {assignment!r}: the value is not valid YAML: {e}") from None
    parts = key.strip().split(".")
    update: dict = {parts[-1]: value}
    for part in reversed(parts[:-1]):
        update = {part: update}
    return merge(data, update)


def load_config(path: Path | str | None, cls: type[C], sets: Sequence[str] = (), base: dict | None = None,
                **overrides: object) -> C:
    """Build `cls` from `base` (a dict, default empty), then the YAML at `path` with its `extends:`
    chain, then keyword `overrides` that are not None, then `sets` ("key.path=value", in order)."""
    data = merge(base or {}, _read_yaml(Path(path)) if path is not None else {})
    data.update({k: v for k, v in overrides.items() if v is not None})
    for assignment in sets:
        data = apply_set(data, assignment)
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        flags = " ".join(f"--set {s}" for s in sets)
        where = (f"{path} with {flags}" if sets else f"{path}") if path else (flags or "config")
        raise ConfigError(f"{where}: invalid {cls.__name__}: {_problems(e)}") from None


def _problems(err: ValidationError) -> str:
    """Each pydantic error as `key.path: what is wrong`, on one line."""
    out = []
    for e in err.errors():
        where = f"{'.'.join(map(str, e['loc']))}: " if e["loc"] else ""
        if e["type"] == "extra_forbidden":
            out.append(f"{where}is not a known field; check its spelling")
        else:
            got = f" (got {e['input']!r})" if e["type"] != "missing" and not isinstance(e.get("input"), dict) else ""
            out.append(f"{where}{e['msg'].removeprefix('Value error, ')}{got}")
    return "; ".join(out)
