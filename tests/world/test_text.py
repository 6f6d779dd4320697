"""Queries: noisy but related to the intent leaf; the query matcher finds the intent back."""

from __future__ import annotations

import numpy as np

from oxygen.world.knowledge import Knowledge
from oxygen.world.text import QueryMatcher, add_noise, clean_query, make_query, tokens


def test_tokens():
    assert tokens("Gel-Pen, 0.5mm (BLUE)") == ["gel", "pen", "0", "5mm", "blue"]


def test_noise_changes_some_queries_only():
    rng = np.random.default_rng(0)
    qs = ["wireless earbuds", "phone case", "infant formula milk"] * 200
    noisy = [add_noise(q, rng) for q in qs]
    changed = np.mean([a != b for a, b in zip(qs, noisy)])
    assert 0.2 < changed < 0.8
    assert all(n.strip() for n in noisy)


def _reference_scores(kb: Knowledge, query: str) -> np.ndarray:
    """Slow: for each leaf, count query tokens sharing a 3-letter prefix with a leaf noun token."""
    toks = [t for t in tokens(query) if len(t) >= 3]
    out = np.zeros(len(kb.leaves))
    for leaf, words in enumerate(kb.leaf_words):
        prefixes = {t[:3] for w in words for t in tokens(w) if len(t) >= 3}
        out[leaf] = sum(t[:3] in prefixes for t in toks) / max(len(toks), 1)
    return out


def test_matcher_matches_reference_and_finds_intent():
    kb = Knowledge.load()
    m = QueryMatcher(kb)
    rng = np.random.default_rng(1)
    found = []
    for leaf in range(len(kb.leaves)):
        q = make_query(kb, leaf, rng)
        s = m.scores(q)
        np.testing.assert_allclose(s, _reference_scores(kb, q))
        found.append(s[leaf] > 0 and s[leaf] == s.max())
    assert np.mean(found) > 0.7


def test_clean_query_uses_leaf_nouns():
    kb = Knowledge.load()
    rng = np.random.default_rng(2)
    for leaf in range(0, len(kb.leaves), 11):
        q = clean_query(kb, leaf, rng)
        assert any(w.lower() in q for w in kb.leaf_words[leaf])
