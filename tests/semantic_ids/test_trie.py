"""The prefix trie against a brute-force reference: allowed codes, items, restriction to a pool."""

from __future__ import annotations

import numpy as np
import pytest

from oxygen.semantic_ids.trie import PrefixTrie


def _codes(n=150, widths=(5, 6, 7), seed=0):
    rng = np.random.default_rng(seed)
    allp = np.array(np.meshgrid(*[np.arange(w) for w in widths], indexing="ij")).reshape(len(widths), -1).T
    rows = rng.choice(len(allp), n, replace=False)
    return allp[rows], rng.permutation(10_000)[:n]


def _ref_allowed(codes, prefix):
    m = (codes[:, : len(prefix)] == np.array(prefix, dtype=np.int64)).all(axis=1)
    return sorted(set(codes[m, len(prefix)].tolist())) if len(prefix) < codes.shape[1] else []


def test_allowed_and_items_match_brute_force():
    codes, ids = _codes()
    trie = PrefixTrie(codes, ids)
    for prefix in [(), (0,), (4,), (1, 2), (3, 5), (9,), (0, 9)]:
        assert trie.allowed(prefix).tolist() == _ref_allowed(codes, prefix), prefix
    for c, i in zip(codes[:50], ids[:50]):
        assert trie.item_of(tuple(c)) == i
    assert trie.item_of((99, 0, 0)) is None and len(trie) == 150


def test_csr_index_is_consistent():
    codes, ids = _codes(n=120)
    trie = PrefixTrie(codes, ids)
    # walking every edge of the CSR index enumerates exactly the catalogue's paths
    frontier = [((), 0)]
    for lv in trie.levels:
        nxt = []
        for prefix, node in frontier:
            for e in range(lv.offsets[node], lv.offsets[node + 1]):
                nxt.append((prefix + (int(lv.child_code[e]),), int(lv.child_id[e])))
        frontier = nxt
    paths = {p: int(trie.item_ids[r]) for p, r in frontier}
    assert paths == {tuple(c): int(i) for c, i in zip(codes.tolist(), ids)}
    # offsets are monotone CSR rows, children sorted within a prefix, and child_of inverts the edges
    for level, lv in enumerate(trie.levels):
        assert lv.offsets[0] == 0 and lv.offsets[-1] == len(lv.child_code) and (np.diff(lv.offsets) > 0).all()
        for p in range(len(lv.offsets) - 1):
            kids = lv.child_code[lv.offsets[p]:lv.offsets[p + 1]]
            assert (np.diff(kids) > 0).all()
            for e, c in zip(range(lv.offsets[p], lv.offsets[p + 1]), kids):
                assert trie.child_of(level, p, int(c)) == lv.child_id[e]
            missing = min(set(range(10)) - set(kids.tolist()))
            assert trie.child_of(level, p, missing) is None


def test_restrict_to_pool():
    codes, ids = _codes()
    pool = ids[::7]
    sub = PrefixTrie(codes, ids).restrict(pool)
    keep = np.isin(ids, pool)
    assert len(sub) == keep.sum()
    for prefix in [(), (0,), (2, 3)]:
        assert sub.allowed(prefix).tolist() == _ref_allowed(codes[keep], prefix)
    d = sub.as_dict()
    assert sum(len(b) for a in d.values() for b in a.values()) == len(sub)


def test_bad_input_is_clear():
    with pytest.raises(ValueError, match="share a code path"):
        PrefixTrie(np.array([[1, 2], [1, 2]]), [0, 1])
    with pytest.raises(ValueError, match="empty item pool"):
        PrefixTrie(np.zeros((0, 3)), [])
    with pytest.raises(KeyError, match="not in this trie"):
        PrefixTrie(np.array([[1, 2]]), [5]).restrict([6])
