"""The fast beam search against the pure-Python reference on a tiny real OxygenModel: same items,
same order, same scores; legality, uniqueness, per-request pools, sampling, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oxygen.config import ModelConfig
from oxygen.data.batching import FeatureSpace, collate
from oxygen.data.schema import Row
from oxygen.decoding.beam_search import SamplingParams
from oxygen.decoding.generate import generate_items
from oxygen.decoding.reference import reference_beam_search
from oxygen.model import OxygenModel
from oxygen.semantic_ids.trie import PrefixTrie

WIDTHS = (6, 5, 4)


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(0)
    allp = np.array(np.meshgrid(*[np.arange(w) for w in WIDTHS], indexing="ij")).reshape(3, -1).T
    codes = allp[rng.choice(len(allp), 70, replace=False)]
    ids = np.arange(100, 170)
    rows = [Row(user_id=str(u), history=[int(x) for x in rng.choice(ids, 4)], target=int(rng.choice(ids)),
                scenario=["search", "cart", "homepage"][u % 3], trigger=int(ids[u]) if u % 3 == 1 else None)
            for u in range(5)]
    space = FeatureSpace.build(ids, codes, rows)
    torch.manual_seed(0)
    model = OxygenModel(ModelConfig(codebook_sizes=WIDTHS, d_model=32, n_heads=2, d_ff=64, dropout=0.0,
                                    enc_layers=1, dec_layers=2, profile_size=space.profile_size)).eval()
    trie = PrefixTrie(codes, ids)
    return model, collate(rows, space, with_targets=False), trie


@pytest.mark.parametrize("beam, k", [(1, 1), (3, 2), (8, 5), (30, 10), (200, 70)])
def test_matches_reference(setup, beam, k):
    model, batch, trie = setup
    ids, scores = generate_items(model, batch, [trie], beam=beam, k=k)
    ref_ids, ref_scores = reference_beam_search(model, batch, [trie], [0] * len(batch), beam, k)
    for b in range(len(batch)):
        n = len(ref_ids[b])
        assert ids[b, :n].tolist() == ref_ids[b]
        np.testing.assert_allclose(scores[b, :n].numpy(), ref_scores[b], rtol=1e-5, atol=1e-5)
        assert (ids[b, n:] == -1).all()


def test_per_request_pools_legal_and_unique(setup):
    model, batch, trie = setup
    pools = [trie.restrict(trie.item_ids[:7].tolist()), trie, trie.restrict(trie.item_ids[30:60].tolist())]
    pool_index = torch.tensor([0, 1, 2, 0, 2])
    ids, _ = generate_items(model, batch, pools, beam=16, k=10, pool_index=pool_index)
    ref_ids, _ = reference_beam_search(model, batch, pools, pool_index.tolist(), 16, 10)
    for b in range(len(batch)):
        got = [i for i in ids[b].tolist() if i >= 0]
        assert got == ref_ids[b]
        assert set(got) <= set(pools[int(pool_index[b])].item_ids.tolist())
        assert len(got) == len(set(got)) == min(10, len(pools[int(pool_index[b])]))


def test_sampling_is_legal_seeded_and_diverse(setup):
    model, batch, trie = setup
    run = lambda seed: generate_items(model, batch, [trie], beam=12, k=8,
                                      sampling=SamplingParams(temperature=1.5, top_p=0.95, seed=seed))[0]
    a, b, c = run(1), run(1), run(2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    for row in a.tolist():
        got = [i for i in row if i >= 0]
        assert len(got) == len(set(got)) and set(got) <= set(trie.item_ids.tolist())


def test_cold_sampling_equals_beam_search(setup):
    model, batch, trie = setup
    greedy, _ = generate_items(model, batch, [trie], beam=6, k=4)
    cold, _ = generate_items(model, batch, [trie], beam=6, k=4, sampling={"temperature": 1e-6, "seed": 0})
    assert torch.equal(greedy, cold)


def test_bad_arguments(setup):
    model, batch, trie = setup
    with pytest.raises(ValueError, match="beam must be"):
        generate_items(model, batch, [trie], beam=0, k=1)
    with pytest.raises(ValueError, match="k must be"):
        generate_items(model, batch, [trie], beam=4, k=5)
    with pytest.raises(ValueError, match="pool_index"):
        generate_items(model, batch, [trie], beam=4, k=2, pool_index=torch.tensor([0, 1, 0, 0, 0]))


def test_tiny_temperatures_stay_legal_and_match_beam_search(setup):
    """At temperatures whose gaps overflow float32 (1e-179 came in an HTTP request), sampling still
    returns only legal, unique items and equals beam search; padding (-inf) is never picked."""
    from oxygen.decoding.sampling import choose

    grid = torch.tensor([[-1.0, float("-inf"), -3.0, 0.5], [float("-inf")] * 4])
    scores, cols = choose(grid, 3, SamplingParams(temperature=1e-179, seed=0), None)
    assert cols[0].tolist() == [3, 0, 2] and torch.isfinite(scores[0]).all()
    assert torch.isinf(scores[1]).all()
    assert torch.equal(choose(grid, 3, SamplingParams(temperature=2.0, seed=0), torch.Generator().manual_seed(0))[0][0].sort().values,
                       grid[0, [0, 2, 3]].sort().values)
    model, batch, trie = setup
    greedy, _ = generate_items(model, batch, [trie], beam=6, k=4)
    for t in (1e-179, 1e-30):
        cold, _ = generate_items(model, batch, [trie], beam=6, k=4, sampling={"temperature": t, "seed": 0})
        assert torch.equal(greedy, cold)


def test_tiny_top_p_keeps_the_best_and_stays_legal(setup):
    """top_p below float32's range (an HTTP property test sent 2.2e-311) keeps exactly the best
    cell at each step: the draw is the greedy path, never an empty, illegal beam."""
    from oxygen.decoding.sampling import nucleus

    keys = torch.tensor([[0.5, -1.0, float("-inf")], [2.0, 3.0, 1.0]])
    kept = torch.isfinite(nucleus(keys, 2.2e-311))
    assert kept.tolist() == [[True, False, False], [False, True, False]]
    model, batch, trie = setup
    greedy, _ = generate_items(model, batch, [trie], beam=1, k=1)
    ids, scores = generate_items(model, batch, [trie], beam=1, k=1, sampling={"top_p": 2.2e-311, "seed": 0})
    assert torch.equal(ids, greedy) and torch.isfinite(scores).all()
