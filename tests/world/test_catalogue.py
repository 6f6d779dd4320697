"""Catalogue: ids, coverage, heavy tails, sampling against a slow reference, informative text."""

from __future__ import annotations

import collections
import itertools

import numpy as np
import pytest

from oxygen.world.catalogue import POP_ALPHA, Catalogue
from oxygen.world.knowledge import Knowledge
from oxygen.world.text import tokens


@pytest.fixture(scope="module")
def cat() -> Catalogue:
    return Catalogue.generate(Knowledge.load(), 3000, seed=3)


def test_columns(cat: Catalogue):
    assert cat.n == 3000
    assert set(np.unique(cat.leaf)) == set(range(len(cat.kb.leaves)))  # every leaf has an item
    assert (cat.price > 0).all() and (cat.popularity > 0).all()
    assert set(np.unique(cat.tier)) == {0, 1, 2}
    assert ((cat.quality > 0) & (cat.quality < 1)).all()
    recs = list(cat.records())
    assert [r["item_id"] for r in recs] == list(range(3000))


def test_popularity_heavy_tailed(cat: Catalogue):
    p = np.sort(cat.popularity)[::-1]
    assert p[: len(p) // 100].sum() / p.sum() > 0.08  # top 1% of items hold well over 1% of mass
    assert p[0] / np.median(p) > 20


def test_tiers_are_price_terciles(cat: Catalogue):
    for leaf in range(0, len(cat.kb.leaves), 17):
        idx = np.flatnonzero(cat.leaf == leaf)
        if len(idx) >= 6:
            lo, hi = cat.price[idx[cat.tier[idx] == 0]], cat.price[idx[cat.tier[idx] == 2]]
            assert lo.max() <= hi.min() + 1.0  # rounding may tie


def _reference_sample(cat: Catalogue, leaf: int, tier: int | None, u: float) -> int:
    """Slow: list the group's items in index order, walk the cumulative weights."""
    members = [i for i in cat.order if cat.leaf[i] == leaf and (tier is None or cat.tier[i] == tier)]
    if not members:
        members = [i for i in cat.order if cat.leaf[i] == leaf]
    w = [cat.popularity[i] ** POP_ALPHA for i in members]
    target, acc = u * sum(w), 0.0
    for i, wi in zip(members, w):
        acc += wi
        if acc > target:
            return int(i)
    return int(members[-1])


def test_sample_matches_reference(cat: Catalogue):
    rng = np.random.default_rng(0)
    for leaf, tier in itertools.product(range(0, len(cat.kb.leaves), 23), (None, 0, 1, 2)):
        for u in rng.random(5):
            assert cat.sample(leaf, tier, float(u)) == _reference_sample(cat, leaf, tier, float(u))


def test_text_informative_but_no_giveaway(cat: Catalogue):
    recs = list(cat.records())
    kb = cat.kb
    # the leaf name itself rarely appears verbatim (titles use synonyms)
    verbatim = np.mean([r["categories"][2].lower() in r["title"].lower() for r in recs])
    assert verbatim < 0.5
    # a token -> top-category majority vote learned on half the items predicts the other half
    votes: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for r in recs[::2]:
        for t in set(tokens(r["title"])):
            votes[t][r["categories"][0]] += 1
    hits = []
    for r in recs[1::2]:
        tally: collections.Counter = collections.Counter()
        for t in set(tokens(r["title"])):
            total = sum(votes[t].values())
            for top, c in votes[t].items():
                tally[top] += c / total
        hits.append(bool(tally) and tally.most_common(1)[0][0] == r["categories"][0])
    assert np.mean(hits) > 0.8
    assert len({r["title"] for r in recs}) > 0.95 * len(recs)
    assert all(r["tags"] for r in recs) and len(kb.tops) == len({r["categories"][0] for r in recs})


def test_bad_size():
    with pytest.raises(ValueError, match="at least one item"):
        Catalogue.generate(Knowledge.load(), 0, seed=0)
