"""One decode path: the demo's examples (the service core fed from Redis), the serving core over
HTTP-shaped requests, the offline recommender and the A/B test's bundle arm give the same items for
the same request, with the transition re-rank and with the copy head."""

from __future__ import annotations

import numpy as np
import pytest

from apps.demo import answer_examples
from oxygen.config import GenerativeConfig
from oxygen.data.schema import Item, Row
from oxygen.model.bundle import Bundle
from oxygen.recommenders.bundled import BundleRecommender
from oxygen.recommenders.generative import GenerativeRecommender
from oxygen.semantic_ids.codebook import Codebook

N_ITEMS = 40


def _rows(n: int, seed: int) -> list[Row]:
    """Next item = last + 1 (mod N) or, for odd users, last + 2: a transition worth mixing in."""
    g = np.random.default_rng(seed)
    out = []
    for u in range(n):
        start, step = int(g.integers(N_ITEMS)), 1 + u % 2
        hist = [(start + step * j) % N_ITEMS for j in range(3)]
        out.append(Row(user_id=f"u{seed}-{u}", history=hist, target=(hist[-1] + step) % N_ITEMS))
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    rng = np.random.default_rng(0)
    allp = np.array(np.meshgrid(np.arange(4), np.arange(4), np.arange(4), indexing="ij")).reshape(3, -1).T
    sid_dir = tmp_path_factory.mktemp("sids")
    Codebook(item_ids=np.arange(N_ITEMS), codes=allp[rng.choice(len(allp), N_ITEMS, replace=False)],
             widths=[4, 4, 4]).save(sid_dir)
    return [Item(item_id=i, title=f"item {i}") for i in range(N_ITEMS)], _rows(160, 1), _rows(30, 2), _rows(12, 3), str(sid_dir)


@pytest.mark.parametrize("extra", [{"rerank": {"weights": [0.0, 0.3, 0.6]}},
                                   {"model": {"copy_head": True, "candidates": 5}}],
                         ids=["transition-rerank", "copy-head"])
def test_demo_server_and_offline_agree(data, tmp_path, extra):
    items, train, valid, test, sid_dir = data
    base = {"sid_dir": sid_dir, "eval_beam": 8, "use_queries": False,
            "model": {"d_model": 32, "n_heads": 2, "enc_layers": 1, "dec_layers": 1, "d_ff": 64, "dropout": 0.0},
            "train": {"epochs": 3, "batch_size": 32, "lr": 0.01, "warmup_steps": 5, "threads": 1}}
    for key, value in extra.items():
        base[key] = {**base.get(key, {}), **value}
    rec = GenerativeRecommender(GenerativeConfig.model_validate(base)).fit(train, valid, items)
    offline = rec.recommend(test, k=5)
    bundle = Bundle.load(rec.to_bundle().save(tmp_path / "bundle"))
    assert set(bundle.scenarios) == {"default"}
    assert (bundle.rerank is not None and bundle.rerank.weight > 0) == ("rerank" in extra)  # the re-rank is on
    answers = answer_examples(bundle, test, k=5, beam=8)
    served = np.array([[it.item_id for it in a.items] for a in answers])
    assert np.array_equal(served, offline)
    ab_arm = BundleRecommender(bundle, beam=8, queries=False, progress=False)  # the A/B test's bundle arm
    assert np.array_equal(ab_arm.recommend(test, k=5), offline)
    scores = np.array([[it.score for it in a.items] for a in answers])
    assert (np.diff(scores, axis=1) <= 1e-9).all()  # best first, the mixture's (or beam's) order
