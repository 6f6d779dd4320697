"""A tiny random-weight servable bundle (real model, codebook, five scenario pools, titles) for the
serving tests and the serving load benchmark when no trained bundle is given.

    bundle = make_bundle("/tmp/tiny-bundle")
    bundle = catalogue_bundle("/tmp/world-bundle", ds.items)   # random weights over a dataset's catalogue
    bundle = random_bundle("/tmp/big-bundle", 200_000)        # random weights over 200k made-up items
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from oxygen.config import ModelConfig
from oxygen.data.batching import CollateConfig, FeatureSpace
from oxygen.model import OxygenModel
from oxygen.model.bundle import Bundle, ScenarioSpec
from oxygen.semantic_ids.codebook import Codebook

N_ITEMS = 120


def make_bundle(path: Path | str) -> Bundle:
    """Write and return a tiny bundle: 120 items, widths (8, 8, 8), five scenario pools."""
    rng = np.random.default_rng(0)
    allp = np.array(np.meshgrid(*[np.arange(8)] * 3, indexing="ij")).reshape(3, -1).T
    codes = allp[rng.choice(len(allp), N_ITEMS, replace=False)]
    cb = Codebook(item_ids=np.arange(N_ITEMS), codes=codes, widths=[8, 8, 8])
    space = FeatureSpace(cb.item_ids, cb.codes, {("city", "Harbin"): 1})
    torch.manual_seed(0)
    model = OxygenModel(ModelConfig(codebook_sizes=(8, 8, 8), d_model=32, n_heads=2, enc_layers=1,
                                    dec_layers=1, d_ff=64, dropout=0.0, profile_size=2)).eval()
    pools = {"search": range(0, 100), "homepage": range(N_ITEMS), "channel": range(20, 120),
             "cart": range(0, 60), "checkout": range(60, 120)}
    specs = {s: ScenarioSpec(list(p), s in ("channel", "cart", "checkout")) for s, p in pools.items()}
    b = Bundle(model, cb, space, CollateConfig(short_len=5, long_len=10), specs,
               {i: f"item {i}" for i in range(N_ITEMS)}, "test-v1")
    b.save(path)
    return Bundle.load(path)




def catalogue_bundle(path: Path | str, items: list, width: int = 16) -> Bundle:
    """Write and return a random-weight bundle over `items` (random unique SIDs, every scenario's
    pool = the whole catalogue, titles): what a load test of the HTTP path needs, not a model."""
    ids = np.array(sorted(it.item_id for it in items))
    titles = {it.item_id: it.title for it in items if it.title}
    return _random_bundle(path, ids, titles, "random-catalogue-v1", width)


def random_bundle(path: Path | str, n_items: int) -> Bundle:
    """Write and return a random-weight bundle over `n_items` made-up item ids (no titles): a
    catalogue of any size for memory and decoding measurements."""
    return _random_bundle(path, np.arange(n_items, dtype=np.int64) * 7 + 3, {}, f"random-{n_items}-v1", 16)


def _random_bundle(path: Path | str, ids: np.ndarray, titles: dict[int, str], version: str, width: int) -> Bundle:
    """A random-weight bundle over item ids `ids` (sorted): random unique 3-level SIDs of at least
    `width` codes a level, the five scenarios each over the whole catalogue."""
    from bench.training import random_codebook

    width = max(width, int(np.ceil((2 * len(ids)) ** (1 / 3))))  # room for a unique code per item
    cb = random_codebook(ids, width=width)
    torch.manual_seed(0)
    model = OxygenModel(ModelConfig(codebook_sizes=(width,) * 3, d_model=32, n_heads=2, enc_layers=1,
                                    dec_layers=1, d_ff=64, dropout=0.0, profile_size=2)).eval()
    specs = {s: ScenarioSpec(ids.tolist(), s in ("channel", "cart", "checkout"))
             for s in ("search", "homepage", "channel", "cart", "checkout")}
    b = Bundle(model, cb, FeatureSpace(cb.item_ids, cb.codes, {("city", "Harbin"): 1}),
               CollateConfig(short_len=5, long_len=10), specs, titles, version)
    b.save(path)
    return Bundle.load(path)
