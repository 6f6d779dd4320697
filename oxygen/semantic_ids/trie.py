"""Prefix trie of valid semantic-ID paths, restrictable to an item pool, with a sparse (CSR) index
per level for the decoder's fast path.

Level l (0..L-1) has P_l prefixes of length l (P_0 = 1: the root). For prefix p at level l its
allowed next codes are `child_code[l][offsets[l][p]:offsets[l][p+1]]` (sorted), and the child
reached by edge e is `child_id[l][e]`: a prefix id at level l+1, or at the last level the row of
the item in `item_ids`. A decoder therefore looks up allowed tokens per beam by prefix id, with
no dense [beams x vocabulary] mask.

    trie = PrefixTrie(codes, item_ids)          # codes Int64[N, L], unique rows
    pool = trie.restrict([3, 7, 9])             # only those items
    pool.allowed((12,)), pool.item_of((12, 4, 1)), pool.child_of(0, 0, 12)  # -> prefix id of (12,)
    7 in pool                                   # membership by item id
    same = PrefixTrie.from_state(pool.state())  # rebuilt from its arrays alone, nothing recomputed

A trie is numpy arrays only (no per-item Python objects): item id -> row goes through the ids
sorted once (`by_id`) and a binary search, so a trie of 1M items costs tens of MB, and `state()`
can travel through Ray's object store and be read zero-copy by every worker on a node.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class LevelIndex:
    """CSR index of one level: offsets Int64[P_l + 1], child_code Int64[E_l], child_id Int64[E_l]."""

    offsets: np.ndarray
    child_code: np.ndarray
    child_id: np.ndarray


def _build_levels(codes: np.ndarray) -> list[LevelIndex]:
    """CSR levels of lexicographically sorted, unique code rows Int64[N, L]."""
    n, depth = codes.shape
    levels = []
    # prefix id of every row at each depth: a new id starts where the prefix changes
    parent = np.zeros(n, dtype=np.int64)
    for level in range(depth):
        if level + 1 < depth:
            change = np.ones(n, dtype=bool)
            change[1:] = (codes[1:, : level + 1] != codes[:-1, : level + 1]).any(axis=1)
            child = np.cumsum(change) - 1
        else:
            change = np.ones(n, dtype=bool)
            child = np.arange(n, dtype=np.int64)
        edges = np.flatnonzero(change)  # first row of every child
        n_parents = int(parent.max()) + 1 if n else 1
        counts = np.bincount(parent[edges], minlength=n_parents)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        levels.append(LevelIndex(offsets, codes[edges, level].astype(np.int64), child[edges].astype(np.int64)))
        parent = child
    return levels


class PrefixTrie:
    """All valid SID paths of a catalogue (or an item pool of it)."""

    def __init__(self, codes: np.ndarray, item_ids: Sequence[int]):
        codes = np.asarray(codes, dtype=np.int64)
        ids = np.asarray(item_ids, dtype=np.int64)
        if codes.ndim != 2 or codes.shape[0] != ids.shape[0]:
            raise ValueError(f"codes must be Int64[N, L] aligned with item_ids; "
                             f"got {codes.shape} for {ids.shape[0]} ids")
        if codes.shape[0] == 0:
            raise ValueError("an empty item pool has no paths; give the trie at least one item")
        order = np.lexsort(codes.T[::-1])
        self.codes, self.item_ids = codes[order], ids[order]
        if (self.codes[1:] == self.codes[:-1]).all(axis=1).any():
            raise ValueError("two items share a code path; SIDs must be unique (resolve collisions first)")
        self.levels = _build_levels(self.codes)
        self.by_id = np.argsort(self.item_ids, kind="stable")

    def state(self) -> dict[str, np.ndarray]:
        """Every array of the trie (codes, item_ids, by_id and the CSR levels), for `from_state`."""
        out = {"codes": self.codes, "item_ids": self.item_ids, "by_id": self.by_id}
        for level, lv in enumerate(self.levels):
            out |= {f"offsets_{level}": lv.offsets, f"child_code_{level}": lv.child_code, f"child_id_{level}": lv.child_id}
        return out

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> PrefixTrie:
        """The trie of `state()`, using its arrays as they are (no copy, no re-sort: read-only
        arrays from a shared-memory store stay shared)."""
        trie = cls.__new__(cls)
        trie.codes, trie.item_ids, trie.by_id = state["codes"], state["item_ids"], state["by_id"]
        trie.levels = [LevelIndex(state[f"offsets_{level}"], state[f"child_code_{level}"], state[f"child_id_{level}"])
                       for level in range(trie.codes.shape[1])]
        return trie

    def _rows(self, items: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows Int64[n], found Bool[n]) of item ids `items` in `item_ids` (row 0 where not found)."""
        ids = np.asarray(items if isinstance(items, np.ndarray) else [int(i) for i in items], dtype=np.int64).reshape(-1)
        pos = np.minimum(np.searchsorted(self.item_ids[self.by_id], ids), len(self.by_id) - 1)
        rows = self.by_id[pos]
        found = self.item_ids[rows] == ids
        return np.where(found, rows, 0), found

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, (int, np.integer)):
            return False
        return bool(self._rows([int(item)])[1][0])

    @property
    def depth(self) -> int:
        """Number of SID levels L."""
        return int(self.codes.shape[1])

    def __len__(self) -> int:
        return int(self.item_ids.shape[0])

    def restrict(self, pool: Sequence[int]) -> PrefixTrie:
        """The trie of the items in `pool` only (unknown ids are an error)."""
        rows, found = self._rows(pool)
        if not found.all():
            missing = np.asarray([int(i) for i in pool], dtype=np.int64)[~found]
            raise KeyError(f"pool item {int(missing[0])} is not in this trie's catalogue "
                           f"({len(missing)} of {len(found)} pool items are not)")
        rows = np.unique(rows)
        return PrefixTrie(self.codes[rows], self.item_ids[rows])

    def rows_of(self, items: Sequence[int]) -> np.ndarray:
        """Rows in `item_ids` (Int64[n], sorted, unique) of the given items that are in this trie;
        ids outside it are skipped (excluding an item that is not in the pool is a no-op)."""
        rows, found = self._rows(items)
        return np.unique(rows[found])

    def child_of(self, level: int, node: int, code: int) -> int | None:
        """The (prefix id, child code) -> child id map: the prefix id at level+1 (at the last level,
        the row in `item_ids`) reached from prefix `node` of `level` by `code`; None if not allowed."""
        lv = self.levels[level]
        lo, hi = int(lv.offsets[node]), int(lv.offsets[node + 1])
        j = lo + int(np.searchsorted(lv.child_code[lo:hi], code))
        return int(lv.child_id[j]) if j < hi and lv.child_code[j] == code else None

    def _walk(self, prefix: Sequence[int]) -> int | None:
        """Prefix id of `prefix` at level len(prefix), or None when no item starts with it."""
        node: int | None = 0
        for level, code in enumerate(prefix):
            node = self.child_of(level, node, int(code))
            if node is None:
                return None
        return node

    def allowed(self, prefix: Sequence[int]) -> np.ndarray:
        """Sorted codes that may follow `prefix` (empty when the prefix is invalid or complete)."""
        if len(prefix) >= self.depth:
            return np.zeros(0, dtype=np.int64)
        node = self._walk(prefix)
        if node is None:
            return np.zeros(0, dtype=np.int64)
        lv = self.levels[len(prefix)]
        return lv.child_code[lv.offsets[node]:lv.offsets[node + 1]].copy()

    def item_of(self, path: Sequence[int]) -> int | None:
        """The item with this full path, or None."""
        if len(path) != self.depth:
            return None
        row = self._walk(path)
        return None if row is None else int(self.item_ids[row])

    def as_dict(self) -> dict:
        """Nested dict {code: {code: ... {code: item_id}}} (for slow reference code and tests)."""
        root: dict = {}
        for path, item in zip(self.codes.tolist(), self.item_ids.tolist()):
            node = root
            for c in path[:-1]:
                node = node.setdefault(c, {})
            node[path[-1]] = item
        return root
