"""Per-request exclusions (business rules) inside the trie constraint: the fast engine against the
pure-Python reference (its trie with the excluded items pruned), blocked subtrees, k still
returned when the pool allows, the re-rank mixture never adding an excluded item, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oxygen.config import ModelConfig
from oxygen.data.batching import FeatureSpace, collate
from oxygen.data.schema import Row
from oxygen.data.transitions import TransitionTable
from oxygen.decoding.beam_search import SamplingParams
from oxygen.decoding.decode import Decoder
from oxygen.decoding.generate import generate_items
from oxygen.decoding.reference import reference_beam_sample, reference_beam_search
from oxygen.decoding.rerank import RerankSpec
from oxygen.decoding.trie_set import TrieSet
from oxygen.model import OxygenModel
from oxygen.semantic_ids.trie import PrefixTrie

WIDTHS = (4, 3, 3)


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(1)
    allp = np.array(np.meshgrid(*[np.arange(w) for w in WIDTHS], indexing="ij")).reshape(3, -1).T
    codes = allp[rng.choice(len(allp), 30, replace=False)]
    ids = np.arange(200, 230)
    rows = [Row(user_id=str(u), history=[int(x) for x in rng.choice(ids, 3)], target=int(ids[0]),
                scenario="homepage") for u in range(4)]
    space = FeatureSpace.build(ids, codes, rows)
    torch.manual_seed(1)
    model = OxygenModel(ModelConfig(codebook_sizes=WIDTHS, d_model=32, n_heads=2, d_ff=64, dropout=0.0,
                                    enc_layers=1, dec_layers=1, profile_size=space.profile_size)).eval()
    return model, collate(rows, space, with_targets=False), PrefixTrie(codes, ids), rows


def subtree(trie: PrefixTrie, prefix: tuple[int, ...]) -> list[int]:
    """Items whose SID starts with `prefix`."""
    return [int(i) for c, i in zip(trie.codes.tolist(), trie.item_ids.tolist()) if tuple(c[:len(prefix)]) == prefix]


def exclusions(trie: PrefixTrie) -> list[list[int]]:
    """Four requests: nothing, two leaves, a whole level-1 subtree plus a leaf, all but five items."""
    first = tuple(trie.codes[0, :1].tolist())
    ids = trie.item_ids.tolist()
    return [[], [ids[3], ids[17], 9999], subtree(trie, first) + [ids[-1]], ids[5:]]


@pytest.mark.parametrize("beam, k", [(1, 1), (4, 3), (10, 10), (40, 25)])
def test_exclusions_match_the_pruned_reference(setup, beam, k):
    model, batch, trie, _ = setup
    ex = exclusions(trie)
    ids, scores = generate_items(model, batch, [trie], beam=beam, k=k, exclude=ex)
    ref_ids, ref_scores = reference_beam_search(model, batch, [trie], [0] * 4, beam, k, exclude=ex)
    for b in range(4):
        n = len(ref_ids[b])
        assert ids[b, :n].tolist() == ref_ids[b]
        np.testing.assert_allclose(scores[b, :n].numpy(), ref_scores[b], rtol=1e-5, atol=1e-5)
        assert (ids[b, n:] == -1).all()
        assert not set(ids[b].tolist()) & set(ex[b])


def test_k_items_still_come_back_when_the_pool_allows(setup):
    model, batch, trie, _ = setup
    ex = exclusions(trie)
    ids, _ = generate_items(model, batch, [trie], beam=5, k=5, exclude=ex)
    for b in range(4):
        got = [i for i in ids[b].tolist() if i >= 0]
        left = len(set(trie.item_ids.tolist()) - set(ex[b]))
        assert len(got) == len(set(got)) == min(5, left)


def test_blocked_prefixes_are_exactly_the_emptied_subtrees(setup):
    _, _, trie, _ = setup
    first = tuple(trie.codes[0, :1].tolist())
    ts = TrieSet([trie])
    blocked = ts.blocked(torch.tensor([0]), [subtree(trie, first)])
    assert blocked[0].tolist() == [trie.child_of(0, 0, first[0])]  # the level-1 prefix itself
    assert len(blocked[2]) == len(subtree(trie, first))
    assert ts.blocked(torch.tensor([0, 0]), [[], []]) is None
    with pytest.raises(ValueError, match="one item list per request"):
        ts.blocked(torch.tensor([0, 0]), [[trie.item_ids[0]]])


def test_sampling_respects_exclusions_like_the_reference(setup):
    model, batch, trie, _ = setup
    ex = exclusions(trie)
    params = SamplingParams(temperature=1e-9, seed=3)  # the draw's T -> 0 limit: deterministic
    ids, _ = generate_items(model, batch, [trie], beam=6, k=4, sampling=params, exclude=ex)
    ref, _ = reference_beam_search(model, batch, [trie], [0] * 4, 6, 4, exclude=ex)
    assert [[i for i in row if i >= 0] for row in ids.tolist()] == ref
    hot, _ = generate_items(model, batch, [trie], beam=6, k=4, sampling=SamplingParams(temperature=2.0, seed=1),
                            exclude=ex)
    ref_hot, _ = reference_beam_sample(model, batch, [trie], [0] * 4, 6, 4, temperature=2.0, seed=1, exclude=ex)
    for b in range(4):
        assert not set(hot[b].tolist()) & set(ex[b]) and not set(ref_hot[b]) & set(ex[b])


def test_the_rerank_mixture_never_adds_an_excluded_item(setup):
    model, batch, trie, rows = setup
    # a transition channel that puts all its mass on the excluded items
    ids = trie.item_ids.tolist()
    hist = [[ids[0]]] * 4
    table = TransitionTable.from_pairs([(f"u{n}", ids[0], ids[1 + n % 2]) for n in range(10)])
    dec = Decoder(model, {"all": trie}, np.asarray(ids), table, RerankSpec(weight=0.9))
    ex = [[ids[1], ids[2]]] * 4
    out = dec.decode(batch, hist, beam=10, k=10, exclude=ex)
    plain = dec.decode(batch, hist, beam=10, k=10)
    assert ids[1] in plain.items[0].tolist()  # the channel does push it without the rule
    for row in out.items.tolist():
        assert not {ids[1], ids[2]} & set(row) and len([i for i in row if i >= 0]) == 10
