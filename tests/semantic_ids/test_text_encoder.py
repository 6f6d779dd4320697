"""The packaged MiniLM encoder loads offline, embeds similar titles closer, and caches on disk."""

from __future__ import annotations

import os

import numpy as np
import pytest

from oxygen.semantic_ids.text_encoder import cache_key, default_model_path, encode_texts, resolve_model_path

TITLES = ["Swingline red stapler, 20 sheet capacity", "Bostitch heavy duty desktop stapler",
          "Pack of 12 yellow highlighter pens", "Sharpie fluorescent highlighters, assorted colours",
          "HP 61 black ink cartridge", "Canon PG-245 black ink cartridge"]


def test_encoder_offline_and_similar_titles_closer(tmp_path):
    os.environ["HF_HUB_OFFLINE"] = "1"
    x = encode_texts(TITLES, cache_dir=tmp_path, progress=False)
    assert x.shape == (6, 384) and x.dtype == np.float32
    assert np.allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
    sim = x @ x.T
    for a in (0, 2, 4):                       # pairs (0,1), (2,3), (4,5) are the same product kind
        others = [j for j in range(6) if j not in (a, a + 1)]
        assert sim[a, a + 1] > sim[a, others].max()


def test_cache_is_read_back(tmp_path):
    texts = TITLES[:2]
    first = encode_texts(texts, cache_dir=tmp_path, progress=False)
    path = tmp_path / f"{cache_key(default_model_path(), texts)}.npy"
    assert path.exists()
    marker = np.full_like(first, 0.5)
    np.save(path, marker)                     # a cached entry is returned without re-encoding
    assert np.array_equal(encode_texts(texts, cache_dir=tmp_path, progress=False), marker)
    assert cache_key(default_model_path(), texts) != cache_key(default_model_path(), texts[::-1])


def test_bad_inputs():
    assert (default_model_path() / "modules.json").exists()
    with pytest.raises(FileNotFoundError, match="sentence-transformers"):
        resolve_model_path("/nonexistent/model")
    with pytest.raises(TypeError, match="list of str"):
        encode_texts("just one string")  # type: ignore[arg-type]
