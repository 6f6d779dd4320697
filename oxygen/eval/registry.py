"""Registry of recommenders that `python -m apps.bench quality --model NAME` can train and evaluate.

A factory takes the optional path of a YAML config file and returns an unfitted `Recommender`.
The baselines `pop`, `markov`, `sasrec` are registered here; the generative models (`oxygen`,
`tiger`) are registered by the package that trains them, with `register(name, factory)`, or by
adding a line to `_LAZY` that names the module:function building them. Asking for a known but
unregistered model raises NotImplementedError saying how to register it.

    register("mymodel", lambda config_path: MyRecommender(...))
    rec = build("sasrec", "configs/sasrec.yaml")     # -> SASRecRecommender (unfitted)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from oxygen.config import MarkovConfig, PopConfig, SASRecConfig, load_config
from oxygen.eval.baselines import MarkovRecommender, PopRecommender, SASRecRecommender
from oxygen.eval.recommender import Recommender

Factory = Callable[[Path | None], Recommender]
MODELS: tuple[str, ...] = ("oxygen", "tiger", "sasrec", "markov", "pop")

REGISTRY: dict[str, Factory] = {
    "pop": lambda path: PopRecommender(load_config(path, PopConfig)),
    "markov": lambda path: MarkovRecommender(load_config(path, MarkovConfig)),
    "sasrec": lambda path: SASRecRecommender(load_config(path, SASRecConfig)),
}

# name -> "module:function" imported on first use (keeps heavy imports out of the baselines' path)
_LAZY: dict[str, str] = {"oxygen": "oxygen.training.generative:build_oxygen",
                         "tiger": "oxygen.training.generative:build_tiger"}


def register(name: str, factory: Factory) -> None:
    """Make `name` buildable by `build` (replacing an earlier factory of that name)."""
    if not name or not name.isidentifier():
        raise ValueError(f"model name {name!r} must be a non-empty identifier such as 'tiger'")
    REGISTRY[name] = factory


def _resolve(name: str) -> Factory | None:
    """The factory registered for `name`, importing a lazy entry when needed."""
    if name in REGISTRY:
        return REGISTRY[name]
    if name in _LAZY:
        module, func = _LAZY[name].split(":")
        REGISTRY[name] = getattr(importlib.import_module(module), func)
        return REGISTRY[name]
    return None


def build(name: str, config_path: Path | str | None = None) -> Recommender:
    """An unfitted recommender `name`, configured from the YAML at `config_path` (defaults if None)."""
    factory = _resolve(name)
    if factory is None:
        known = sorted(set(MODELS) | set(REGISTRY) | set(_LAZY))
        if name in MODELS:
            raise NotImplementedError(
                f"model '{name}' is not registered yet: its training package must call "
                f"oxygen.eval.registry.register('{name}', factory) or add '{name}': "
                f"'module:function' to _LAZY in oxygen/eval/registry.py")
        raise ValueError(f"unknown model '{name}'; choose one of {known}")
    return factory(Path(config_path) if config_path is not None else None)
