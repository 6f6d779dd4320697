"""Embedding sources: text dedup and empty-text fallback, fused layout, input validation."""

from __future__ import annotations

import numpy as np
import pytest

from oxygen.config import SIDConfig
from oxygen.semantic_ids.embeddings import CatalogueInput, behaviour_embeddings, item_embeddings, text_embeddings
from oxygen.semantic_ids.text_encoder import encode_texts


def test_text_embeddings_dedup_and_empty_fallback(tmp_path):
    cfg = SIDConfig(cache_dir=str(tmp_path))
    texts = ["blue pen", "", "red stapler", "blue pen", ""]
    x = text_embeddings(cfg, texts)
    ref = encode_texts(["blue pen", "red stapler"], cache_dir=None, progress=False)
    assert np.allclose(x[[0, 2, 3]], ref[[0, 1, 0]], atol=1e-5)
    assert np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
    assert abs(float(x[1] @ x[4])) < 0.5                       # empty texts: distinct random rows


def test_fused_is_normalised_concat(tmp_path):
    cat = CatalogueInput(item_ids=[10, 11, 12, 13], texts=["pen", "pencil", "ink", ""],
                         users=["a", "b", "c"], sequences=[[10, 11], [11, 10, 12], [10, 11]])
    cfg = SIDConfig(source="auto", cache_dir=str(tmp_path), behaviour_epochs=2, text_weight=0.25)
    x, info = item_embeddings(cfg, cat)
    assert info["source"] == "fused" and info["pairs"] >= 2 and info["items_in_pairs"] == 3
    assert x.shape == (4, 768) and np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
    assert np.allclose(np.linalg.norm(x[:, :384], axis=1), 0.5, atol=1e-4)   # sqrt(0.25)
    # item 13 is in no pair: its behaviour half is its (random, empty-text) start vector
    t = text_embeddings(cfg, cat.texts)
    assert np.allclose(x[3, 384:] / np.sqrt(0.75), t[3], atol=1e-4)


def test_inputs_are_validated():
    with pytest.raises(ValueError, match="one per item"):
        CatalogueInput(item_ids=[1, 2], texts=["a"])
    with pytest.raises(ValueError, match="duplicates"):
        CatalogueInput(item_ids=[1, 1], texts=["a", "b"])
    cat = CatalogueInput(item_ids=[1, 2], texts=["", ""], users=["u"], sequences=[[1, 99]])
    with pytest.raises(ValueError, match="item id 99"):
        behaviour_embeddings(SIDConfig(), cat)
