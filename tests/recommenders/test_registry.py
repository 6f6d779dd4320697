"""The registry builds every model by name from a YAML path, a config object or defaults, with
`key.path=value` overrides, and refuses unknown names and mismatched configs clearly."""

from __future__ import annotations

import pytest

from oxygen.config import GenerativeConfig, MarkovConfig, SASRecConfig
from oxygen.recommenders import registry
from oxygen.recommenders.generative import GenerativeRecommender
from oxygen.recommenders.markov import MarkovRecommender
from oxygen.recommenders.pop import PopRecommender


def test_every_model_builds_with_defaults():
    for name in registry.MODELS:
        rec = registry.build(name)
        assert rec.name == name


def test_tiger_is_forced_whatever_the_config_says(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("variant: oxygen\ntrain: {epochs: 3}\n")
    rec = registry.build("tiger", cfg)
    assert isinstance(rec, GenerativeRecommender) and rec.cfg.variant == "tiger" and rec.cfg.train.epochs == 3
    rec = registry.build("tiger", GenerativeConfig(variant="oxygen"), sets=["train.lr=0.5"])
    assert rec.cfg.variant == "tiger" and rec.cfg.train.lr == 0.5


def test_sets_and_config_objects():
    rec = registry.build("markov", MarkovConfig(decay=0.5), sets=["max_back=3"])
    assert isinstance(rec, MarkovRecommender) and rec.cfg.decay == 0.5 and rec.cfg.max_back == 3
    with pytest.raises(ValueError, match="takes a MarkovConfig"):
        registry.build("markov", SASRecConfig())
    with pytest.raises(ValueError, match="max_bakc"):
        registry.build("markov", sets=["max_bakc=3"])


def test_unknown_and_registered_names(monkeypatch):
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        registry.build("nope")
    monkeypatch.setitem(registry.REGISTRY, "mine", registry.Entry(MarkovConfig, lambda c: PopRecommender()))
    assert isinstance(registry.build("mine"), PopRecommender)
    with pytest.raises(ValueError, match="identifier"):
        registry.register("no good", MarkovConfig, PopRecommender)
