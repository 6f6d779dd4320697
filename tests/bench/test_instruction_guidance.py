"""bench.instruction_guidance's `Guided` StepModel: weight 0 decodes exactly as the plain model; the
guided scores equal a slow reference built from two teacher-forced passes (with the request's
instruction and with the default), and guidance changes the answers of requests with an instruction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.instruction_guidance import Guided, unconditioned
from oxygen.decoding.generate import generate_items
from oxygen.model import OxygenModel
from oxygen.semantic_ids.trie import PrefixTrie
from tests.model.helpers import random_batch, tiny_config


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    cfg = tiny_config(codebook_sizes=(6, 5, 4))
    model = OxygenModel(cfg).eval()
    batch = random_batch(cfg, B=6)
    batch.instr_mask[:] = True
    codes = np.array(np.meshgrid(*[np.arange(k) for k in cfg.codebook_sizes], indexing="ij")).reshape(3, -1).T
    return model, batch, PrefixTrie(codes, np.arange(len(codes)))


def test_weight_zero_is_the_plain_model(setup):
    model, batch, trie = setup
    plain = generate_items(model, batch, [trie], beam=8, k=5)
    guided = generate_items(Guided(model, 0.0), batch, [trie], beam=8, k=5)
    assert torch.equal(plain[0], guided[0]) and torch.allclose(plain[1], guided[1], atol=1e-5)


@pytest.mark.parametrize("weight, levels", [(1.0, (0, 1, 2)), (2.0, (0,))])
def test_guided_scores_match_the_two_pass_reference(setup, weight, levels):
    model, batch, trie = setup
    items, scores = generate_items(Guided(model, weight, levels), batch, [trie], beam=8, k=5)
    paths = torch.as_tensor(trie.codes)[items.clamp(min=0)]  # item id == row of the full trie here
    with torch.no_grad():
        for b in range(len(batch)):
            one = batch.select(torch.tensor([b]).repeat(5))
            cond = model.level_log_probs(one, paths[b])
            plain = model.level_log_probs(unconditioned(one), paths[b])
            total = torch.zeros(5)
            for level, (c, u) in enumerate(zip(cond, plain)):
                w = weight if level in levels else 0.0
                mixed = torch.log_softmax((1 + w) * c - w * u, dim=-1)
                total += mixed.gather(1, paths[b][:, level:level + 1])[:, 0]
            assert torch.allclose(scores[b], total, atol=1e-4), (b, scores[b], total)
    plain_items, _ = generate_items(model, batch, [trie], beam=8, k=5)
    assert not torch.equal(plain_items, items)


def test_open_needs_counts_stated_needs_missing_from_the_history():
    """A situational need counts when its phrase names a leaf the row's history lacks; intent
    reasons ("complement: ...") and rows without a record count nothing."""
    from types import SimpleNamespace

    from bench.instruction_guidance import open_needs
    from oxygen.world.knowledge import Knowledge

    kb = Knowledge.load()
    coat, fan = kb.leaf_words[5][0], kb.leaf_words[9][0]
    rec = {"user_id": "u1", "at": 100, "reasons": [f"{coat}: winter in Harbin", f"{fan}: heat wave in Wuhan",
                                                   "complement: bought a phone; it goes with a case"]}
    leaf_of = {1: 5, 2: 7}  # item 1 is of the coat's leaf
    rows = [SimpleNamespace(user_id="u1", timestamp=100, history=[2]),
            SimpleNamespace(user_id="u1", timestamp=100, history=[1, 2]),
            SimpleNamespace(user_id="u2", timestamp=100, history=[])]
    assert open_needs(rows, [rec], kb, leaf_of).tolist() == [2, 1, 0]
