"""The fast batched engine against the pure-Python reference on a deterministic toy StepModel:
exact beam search (items, order, scores) for many beam widths, legality and uniqueness, per-request
pools, beam sampling (seeded, legal, distribution vs the reference sampler and the exact
distribution), and clear errors on bad input."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from oxygen.decoding.generate import generate_items
from oxygen.decoding.reference import reference_beam_sample, reference_beam_search
from oxygen.decoding.sampling import SamplingParams
from oxygen.semantic_ids.trie import PrefixTrie
from tests.decoding.toy_model import ToyBatch, ToyModel

WIDTHS = (6, 5, 4)


def _trie(n: int = 70, widths: tuple[int, ...] = WIDTHS, seed: int = 0) -> PrefixTrie:
    rng = np.random.default_rng(seed)
    allp = np.array(np.meshgrid(*[np.arange(w) for w in widths], indexing="ij")).reshape(len(widths), -1).T
    return PrefixTrie(allp[rng.choice(len(allp), n, replace=False)], 1000 + rng.permutation(n))


def _check_against_reference(model, batch, tries, pool, beam, k):
    ids, scores = generate_items(model, batch, tries, beam=beam, k=k, pool_index=torch.tensor(pool))
    ref_ids, ref_scores = reference_beam_search(model, batch, tries, pool, beam, k)
    assert ids.shape == scores.shape == (len(batch), k)
    for b in range(len(batch)):
        n = len(ref_ids[b])
        assert ids[b, :n].tolist() == ref_ids[b]
        np.testing.assert_allclose(scores[b, :n].numpy(), ref_scores[b], rtol=1e-5, atol=1e-5)
        assert (ids[b, n:] == -1).all() and torch.isinf(scores[b, n:]).all()


@pytest.mark.parametrize("beam, k", [(1, 1), (2, 2), (5, 3), (16, 10), (64, 20), (200, 70), (512, 100)])
def test_beam_search_matches_reference(beam, k):
    # 70 legal items: beams 200 and 512 exceed the number of legal paths (-inf padded beams)
    model, trie = ToyModel(WIDTHS), _trie()
    _check_against_reference(model, ToyBatch(torch.arange(6)), [trie], [0] * 6, beam, k)


def test_per_request_pools_match_reference_and_stay_legal():
    model, trie = ToyModel(WIDTHS, seed=3), _trie()
    ids = trie.item_ids.tolist()
    pools = [trie, trie.restrict(ids[:1]), trie.restrict(ids[5:12]), trie.restrict(ids[::3])]
    pool = [0, 1, 2, 3, 2, 1, 0, 3]
    batch = ToyBatch(torch.arange(8) + 50)
    _check_against_reference(model, batch, pools, pool, beam=8, k=8)
    got, _ = generate_items(model, batch, pools, beam=32, k=20, pool_index=torch.tensor(pool))
    for b, p in enumerate(pool):
        items = [i for i in got[b].tolist() if i >= 0]
        assert set(items) <= set(pools[p].item_ids.tolist())  # legality: 100% in the request's pool
        assert len(items) == len(set(items)) == min(20, len(pools[p]))  # unique, as many as possible


def test_one_model_call_per_level():
    model = ToyModel(WIDTHS)
    generate_items(model, ToyBatch(torch.arange(4)), [_trie()], beam=16, k=4)
    assert model.steps == len(WIDTHS)


def _sample(model, batch, trie, beam, k, **params):
    return generate_items(model, batch, [trie], beam=beam, k=k, sampling=SamplingParams(**params))[0]


def test_sampling_is_legal_unique_and_seeded():
    model, trie = ToyModel(WIDTHS), _trie()
    batch = ToyBatch(torch.arange(6))
    a = _sample(model, batch, trie, 16, 10, temperature=1.3, top_k=40, top_p=0.95, seed=1)
    assert torch.equal(a, _sample(model, batch, trie, 16, 10, temperature=1.3, top_k=40, top_p=0.95, seed=1))
    assert not torch.equal(a, _sample(model, batch, trie, 16, 10, temperature=1.3, top_k=40, top_p=0.95, seed=2))
    for row in a.tolist():
        items = [i for i in row if i >= 0]
        assert items and len(items) == len(set(items)) and set(items) <= set(trie.item_ids.tolist())


def test_degenerate_sampling_equals_search():
    model, trie = ToyModel(WIDTHS), _trie()
    batch = ToyBatch(torch.arange(6))
    greedy, _ = generate_items(model, batch, [trie], beam=6, k=4)
    assert torch.equal(_sample(model, batch, trie, 6, 4, temperature=1e-6, seed=0), greedy)
    top1, _ = generate_items(model, batch, [trie], beam=1, k=1)
    only = _sample(model, batch, trie, 4, 1, top_k=1, seed=0)
    assert torch.equal(only, top1)


def _exact_greedy_sampling(model, trie) -> dict[int, float]:
    """P(item) of beam=1 sampling: the product over levels of the model's probability renormalised
    over the allowed codes (enumerated by walking the trie dict)."""
    out, stack = {}, [((), trie.as_dict(), 1.0)]
    while stack:
        prefix, node, p = stack.pop()
        logp, _ = _logp_of(model, prefix)
        allowed = sorted(node)
        w = torch.softmax(logp[allowed], 0).tolist()
        for c, q in zip(allowed, w):
            if isinstance(node[c], dict):
                stack.append((prefix + (c,), node[c], p * q))
            else:
                out[node[c]] = p * q
    return out


def _logp_of(model, prefix):
    state, codes = model.start(ToyBatch(torch.tensor([7]))), None
    for level in range(len(prefix) + 1):
        logp, state = model.step(state, codes, level)
        codes = torch.tensor([prefix[level]]) if level < len(prefix) else None
    return logp[0], state


def _tv(a: Counter, b: dict, n_a: int, n_b: float) -> float:
    keys = set(a) | set(b)
    return 0.5 * sum(abs(a.get(x, 0) / n_a - b.get(x, 0) / n_b) for x in keys)


def test_sampling_distribution_matches_exact_and_reference():
    model, trie, n = ToyModel((3, 3, 2), sharpness=1.0), _trie(12, (3, 3, 2), seed=4), 3000
    batch = ToyBatch(torch.full((n,), 7))  # n copies of one request: n independent draws in one call
    first = Counter(_sample(model, batch, trie, 1, 1, seed=0)[:, 0].tolist())
    exact = _exact_greedy_sampling(model, trie)
    assert abs(sum(exact.values()) - 1) < 1e-5 and set(first) <= set(exact)
    assert _tv(first, exact, n, 1.0) < 0.05
    for params in ({}, {"temperature": 0.7, "top_k": 4, "top_p": 0.8}):
        fast = _sample(model, batch, trie, 3, 2, seed=1, **params)
        ref, _ = reference_beam_sample(model, batch, [trie], [0] * n, 3, 2, seed=1, **params)
        assert _tv(Counter(fast[:, 0].tolist()), Counter(r[0] for r in ref), n, n) < 0.06
        assert _tv(Counter(fast[:, 1].tolist()), Counter(r[1] if len(r) > 1 else -1 for r in ref), n, n) < 0.06


def test_bad_input_raises_clear_errors():
    model, trie = ToyModel(WIDTHS), _trie()
    batch = ToyBatch(torch.arange(3))
    with pytest.raises(ValueError, match="beam must be >= 1"):
        generate_items(model, batch, [trie], beam=0, k=1)
    with pytest.raises(ValueError, match="k must be in"):
        generate_items(model, batch, [trie], beam=4, k=5)
    with pytest.raises(ValueError, match="empty item pool"):
        trie.restrict([])
    with pytest.raises(ValueError, match="pool_index"):
        generate_items(model, batch, [trie], beam=4, k=2, pool_index=torch.tensor([0, 1, 0]))
    with pytest.raises(ValueError, match="batch is empty"):
        generate_items(model, ToyBatch(torch.zeros(0, dtype=torch.long)), [trie], beam=4, k=2)
    with pytest.raises(ValueError, match="SID levels"):
        generate_items(ToyModel((6, 5)), batch, [trie], beam=4, k=2)
    with pytest.raises(ValueError, match="codes 0..3"):
        generate_items(ToyModel((6, 5, 3)), batch, [trie], beam=4, k=2)
    with pytest.raises(ValueError, match="temperature"):
        SamplingParams(temperature=0)
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams(top_p=1.5)
