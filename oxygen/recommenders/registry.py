"""Registry of recommenders that `python -m apps.bench quality --model NAME` can train and evaluate.

A factory takes a config (a YAML path, an already-built config object, or None for defaults) and
returns an unfitted `Recommender`. Every model of the package is registered here with a plain
import; other packages may add their own with `register(name, config_class, factory)`.

    rec = build("sasrec", "configs/office/sasrec.yaml")        # -> SASRecRecommender (unfitted)
    rec = build("oxygen", GenerativeConfig(), sets=["train.epochs=3"])
    register("mymodel", MyConfig, MyRecommender)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from oxygen.config import GenerativeConfig, MarkovConfig, PopConfig, SASRecConfig, load_config
from oxygen.recommenders.base import Recommender
from oxygen.recommenders.generative import GenerativeRecommender
from oxygen.recommenders.markov import MarkovRecommender
from oxygen.recommenders.pop import PopRecommender
from oxygen.recommenders.sasrec import SASRecRecommender


@dataclass(frozen=True)
class Entry:
    """How to build one model: its config class, fixed config values and the constructor."""

    config: type[BaseModel]
    make: Callable[[BaseModel], Recommender]
    fixed: tuple[tuple[str, object], ...] = ()


REGISTRY: dict[str, Entry] = {
    "oxygen": Entry(GenerativeConfig, GenerativeRecommender, (("variant", "oxygen"),)),
    "tiger": Entry(GenerativeConfig, GenerativeRecommender, (("variant", "tiger"),)),
    "sasrec": Entry(SASRecConfig, SASRecRecommender),
    "markov": Entry(MarkovConfig, MarkovRecommender),
    "pop": Entry(PopConfig, PopRecommender),
}
MODELS: tuple[str, ...] = tuple(REGISTRY)


def register(name: str, config: type[BaseModel], make: Callable[[BaseModel], Recommender]) -> None:
    """Make `name` buildable by `build` (replacing an earlier entry of that name)."""
    if not name or not name.isidentifier():
        raise ValueError(f"model name {name!r} must be a non-empty identifier such as 'tiger'")
    REGISTRY[name] = Entry(config, make)


def build(name: str, config: Path | str | BaseModel | None = None, sets: Sequence[str] = ()) -> Recommender:
    """An unfitted recommender `name`, configured from a YAML path, a config object or defaults,
    with `sets` ("key.path=value") applied on top."""
    if name not in REGISTRY:
        raise ValueError(f"unknown model '{name}'; choose one of {sorted(REGISTRY)}")
    entry = REGISTRY[name]
    if isinstance(config, BaseModel):
        if not isinstance(config, entry.config):
            raise ValueError(f"model '{name}' takes a {entry.config.__name__}, got a {type(config).__name__}")
        cfg = load_config(None, entry.config, sets=sets, base=config.model_dump())
    else:
        cfg = load_config(config, entry.config, sets=sets)
    return entry.make(cfg.model_copy(update=dict(entry.fixed)) if entry.fixed else cfg)
