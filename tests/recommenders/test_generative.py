"""The generative recommender end to end on a tiny dataset: fit with validation, legal unique
recommendations, the tiger switches, refit on train+valid, and a bundle that reloads identically."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oxygen.config import GenerativeConfig
from oxygen.data.batching import collate
from oxygen.data.schema import Item, Row
from oxygen.data.transitions import TransitionTable
from oxygen.decoding.decode import Decoder
from oxygen.model.bundle import Bundle
from oxygen.recommenders.generative import GenerativeRecommender
from oxygen.semantic_ids.codebook import Codebook
from oxygen.semantic_ids.trie import PrefixTrie

N_ITEMS = 40


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    rng = np.random.default_rng(0)
    items = [Item(item_id=i, title=f"item {i}") for i in range(N_ITEMS)]
    allp = np.array(np.meshgrid(np.arange(4), np.arange(4), np.arange(4), indexing="ij")).reshape(3, -1).T
    codes = allp[rng.choice(len(allp), N_ITEMS, replace=False)]
    sid_dir = tmp_path_factory.mktemp("sids")
    Codebook(item_ids=np.arange(N_ITEMS), codes=codes, widths=[4, 4, 4]).save(sid_dir)

    def rows(n, seed):  # next item = (last + 1) mod N, across scenarios
        g = np.random.default_rng(seed)
        out = []
        for u in range(n):
            start = int(g.integers(N_ITEMS))
            hist = [(start + j) % N_ITEMS for j in range(3)]
            out.append(Row(user_id=f"u{u}", history=hist, target=(hist[-1] + 1) % N_ITEMS,
                           scenario=["homepage", "cart"][u % 2], trigger=hist[-1] if u % 2 else None))
        return out

    return items, rows(200, 1), rows(40, 2), rows(40, 3), str(sid_dir)


def _cfg(sid_dir: str, **kw) -> GenerativeConfig:
    return GenerativeConfig.model_validate({
        "sid_dir": sid_dir, "eval_beam": 8, "use_queries": False,
        "model": {"d_model": 32, "n_heads": 2, "enc_layers": 1, "dec_layers": 1, "d_ff": 64, "dropout": 0.0},
        "train": {"epochs": 6, "batch_size": 32, "lr": 0.01, "warmup_steps": 5, "threads": 1}, **kw})


def test_fit_recommend_and_bundle(tiny, tmp_path):
    items, train, valid, test, sid_dir = tiny
    rec = GenerativeRecommender(_cfg(sid_dir)).fit(train, valid, items)
    assert rec.fit_info["best_epoch"] >= 1 and rec.num_params() > 0
    top = rec.recommend(test, k=5)
    assert top.shape == (40, 5) and (top >= 0).all() and (top < N_ITEMS).all()
    assert all(len(set(r)) == 5 for r in top.tolist())
    hr = np.mean([t.target in r for t, r in zip(test, top.tolist())])
    assert hr > 0.3  # a deterministic pattern is learnt (random would be 5/40)
    bundle = Bundle.load(rec.to_bundle({0: "item 0"}, version="t1").save(tmp_path / "b"))
    assert bundle.version == "t1" and set(bundle.scenarios) == {"homepage", "cart"}
    assert bundle.scenarios["cart"].requires_trigger and not bundle.scenarios["homepage"].requires_trigger
    batch = collate(test, bundle.space, bundle.collate_cfg, with_targets=False)
    full = Decoder(bundle.model, {"all": PrefixTrie(bundle.codebook.codes, bundle.codebook.item_ids)},
                   bundle.space.item_ids, bundle.space.transitions, bundle.rerank)
    assert np.array_equal(full.decode(batch, [r.history for r in test], beam=8, k=5).items, top)


def test_tiger_switches_and_refit(tiny):
    items, train, valid, test, sid_dir = tiny
    rec = GenerativeRecommender(_cfg(sid_dir, variant="tiger", train={"epochs": 2, "batch_size": 32, "threads": 1}))
    with pytest.raises(RuntimeError, match="fit"):
        rec.refit(train + valid, items)
    rec.fit(train, valid, items)
    m = rec.model.cfg
    assert (m.instruction_placement, m.use_reasoning, m.use_igr, m.use_q2i) == ("none", False, False, False)
    before = {k: v.clone() for k, v in rec.model.state_dict().items()}
    rec.refit(train + valid, items)
    assert rec.fit_info["refit_epochs"] == rec.fit_info["best_epoch"]
    assert rec.fit_info["refit_rows"] == len(train) + len(valid) and not rec.model.training
    assert rec.model.cfg == m and any(not torch.equal(v, rec.model.state_dict()[k]) for k, v in before.items())
    assert rec.recommend(test[:3], k=3).shape == (3, 3)
    with pytest.raises(RuntimeError, match="fit"):
        GenerativeRecommender(_cfg(sid_dir)).recommend(test, k=3)
    torch.set_num_threads(2)


def test_candidates_fit_refit_and_bundle(tiny, tmp_path):
    items, train, valid, test, sid_dir = tiny
    cfg = _cfg(sid_dir, train={"epochs": 2, "batch_size": 32, "threads": 1, "ema_decay": 0.9},
               model={"d_model": 32, "n_heads": 2, "enc_layers": 1, "dec_layers": 1, "d_ff": 64, "dropout": 0.0, "candidates": 4})
    rec = GenerativeRecommender(cfg).fit(train, valid, items)
    assert rec.model.cfg.candidates == 4 and rec.prep.batches["train"].cand_mask.shape[1] == 4
    rec.refit(train + valid, items)
    assert len(rec.prep.space.transitions) >= len(TransitionTable.build(train))  # counts now include valid
    top = rec.recommend(test, k=5)
    bundle = Bundle.load(rec.to_bundle().save(tmp_path / "b"))
    assert bundle.collate_cfg.candidates == 4
    assert bundle.space.transitions.counts == rec.prep.space.transitions.counts
    batch = collate(test, bundle.space, bundle.collate_cfg, with_targets=False)
    full = Decoder(bundle.model, {"all": PrefixTrie(bundle.codebook.codes, bundle.codebook.item_ids)},
                   bundle.space.item_ids, bundle.space.transitions, bundle.rerank)
    assert np.array_equal(full.decode(batch, [r.history for r in test], beam=8, k=5).items, top)
    torch.set_num_threads(2)


def test_rerank_weight_is_chosen_on_valid_and_used(tiny):
    items, train, valid, test, sid_dir = tiny
    cfg = _cfg(sid_dir, train={"epochs": 1, "batch_size": 32, "threads": 1}, rerank={"weights": [0.0, 0.5, 1.0]})
    rec = GenerativeRecommender(cfg).fit(train, valid, items)
    table = rec.fit_info["rerank"]["valid_hr@10"]
    assert set(table) == {0.0, 0.5, 1.0} and rec.rerank_weight == max(table, key=lambda w: (table[w], -w))
    assert table[1.0] > 0.9  # the transition channel alone knows next = last + 1 on this data
    top = rec.recommend(test, k=5)
    assert top.shape == (40, 5) and all(len(set(r)) == 5 for r in top.tolist())
    assert np.mean([t.target in r for t, r in zip(test, top.tolist())]) > 0.9
    rec.refit(train + valid, items)
    assert rec.recommend(test[:3], k=3).shape == (3, 3)
    assert rec.rerank_weight > 0 and rec.to_bundle().rerank.weight == rec.rerank_weight
    torch.set_num_threads(2)


def test_copy_head_fit_recommend_refit(tiny):
    """The copy head points at the transition candidates: next = last + 1 is copied, not memorised."""
    items, train, valid, test, sid_dir = tiny
    cfg = _cfg(sid_dir, model={"d_model": 32, "n_heads": 2, "enc_layers": 1, "dec_layers": 1, "d_ff": 64,
                               "dropout": 0.0, "copy_head": True, "candidates": 5},
               train={"epochs": 3, "batch_size": 32, "lr": 0.01, "warmup_steps": 5, "threads": 1})
    rec = GenerativeRecommender(cfg).fit(train, valid, items)
    top = rec.recommend(test, k=5)
    assert top.shape == (40, 5) and (top >= 0).all() and all(len(set(r)) == 5 for r in top.tolist())
    assert np.mean([t.target == r[0] for t, r in zip(test, top.tolist())]) > 0.9
    rec.refit(train + valid, items)
    assert rec.recommend(test[:3], k=3).shape == (3, 3)
    torch.set_num_threads(2)
