"""Several prefix tries (one per scenario item pool) stacked into one CSR index of torch tensors,
so one batched decoding pass serves requests of different pools, and per-request exclusions
(business rules: the trigger item, recent purchases, an explicit list) turned into blocked edges.

Prefix ids are global: trie t's prefixes at level l are shifted by `base[l][t]`, its root is
prefix t at level 0, and last-level children index the stacked `item_ids`.

A request's exclusions block its excluded leaves and every prefix all of whose leaves are
excluded, so a beam never walks into a subtree with nothing left to return: when the pool holds at
least k items that are not excluded, k items still come back.

    ts = TrieSet([trie_search, trie_cart])
    lv = ts.levels[0]; lv.offsets, lv.child_code, lv.child_id      # Long tensors
    blocked = ts.blocked(pool, [[12, 40], []])   # per level: sorted Long keys request * C_l + child id
    gpu = ts.to("cuda")                          # the tensors on a GPU (kept: built once per device)
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from oxygen.semantic_ids.trie import PrefixTrie


@dataclass
class TensorLevel:
    """One level of the stacked index: offsets Long[P+1], child_code Long[E], child_id Long[E];
    parent Long[C] (the prefix each child id hangs from) and fanout Long[P] (children per prefix),
    used only to block excluded subtrees."""

    offsets: torch.Tensor
    child_code: torch.Tensor
    child_id: torch.Tensor
    parent: np.ndarray
    fanout: np.ndarray

    @property
    def n_children(self) -> int:
        """C: child ids at this level (prefixes of the next level, or items at the last)."""
        return int(self.parent.shape[0])


class TrieSet:
    """The CSR levels of many tries concatenated with shifted ids (see module docstring)."""

    def __init__(self, tries: Sequence[PrefixTrie]):
        if not tries:
            raise ValueError("TrieSet needs at least one trie (one per item pool)")
        depth = {t.depth for t in tries}
        if len(depth) != 1:
            raise ValueError(f"all tries must have the same number of SID levels; got {sorted(depth)}")
        self.depth = depth.pop()
        self.tries = list(tries)
        self.levels = [self._stack(level) for level in range(self.depth)]
        self.item_ids = torch.from_numpy(np.concatenate([t.item_ids for t in tries]))
        self.leaf_base = np.concatenate([[0], np.cumsum([len(t) for t in tries])[:-1]]).astype(np.int64)
        self.copies: dict[str, TrieSet] = {}  # this index on other devices (`to`), made once each

    def _stack(self, level: int) -> TensorLevel:
        offs, codes, ids = [np.zeros(1, dtype=np.int64)], [], []
        edge_base = child_base = 0
        for t in self.tries:
            lv = t.levels[level]
            offs.append(lv.offsets[1:] + edge_base)
            codes.append(lv.child_code)
            ids.append(lv.child_id + child_base)
            edge_base += len(lv.child_code)
            child_base += int(lv.child_id.max()) + 1
        offsets, child_id = np.concatenate(offs), np.concatenate(ids)
        fanout = np.diff(offsets)
        parent = np.zeros(child_base, dtype=np.int64)
        parent[child_id] = np.repeat(np.arange(len(fanout), dtype=np.int64), fanout)
        return TensorLevel(torch.from_numpy(offsets), torch.from_numpy(np.concatenate(codes)),
                           torch.from_numpy(child_id), parent, fanout)

    def __len__(self) -> int:
        return len(self.tries)

    @property
    def device(self) -> torch.device:
        """Where the index tensors live."""
        return self.item_ids.device

    def to(self, device: torch.device | str) -> TrieSet:
        """This index with its tensors on `device` (self when already there); the copy is kept, so
        a decoder on a GPU pays the transfer once, not per call. The numpy parts stay shared."""
        device = torch.device(device)
        if self.device == device or (device.type == self.device.type and device.index is None):
            return self
        copies = self.copies
        if str(device) not in copies:
            ts = TrieSet.__new__(TrieSet)
            ts.tries, ts.depth, ts.leaf_base, ts.copies = self.tries, self.depth, self.leaf_base, {}
            ts.levels = [TensorLevel(lv.offsets.to(device), lv.child_code.to(device), lv.child_id.to(device),
                                     lv.parent, lv.fanout) for lv in self.levels]
            ts.item_ids = self.item_ids.to(device)
            copies[str(device)] = ts
        return copies[str(device)]

    def state(self) -> dict[str, np.ndarray]:
        """The stacked arrays (no tries), for `from_state` on another process."""
        out = {"item_ids": self.item_ids.numpy(), "leaf_base": self.leaf_base}
        for level, lv in enumerate(self.levels):
            out |= {f"offsets_{level}": lv.offsets.numpy(), f"child_code_{level}": lv.child_code.numpy(),
                    f"child_id_{level}": lv.child_id.numpy(), f"parent_{level}": lv.parent, f"fanout_{level}": lv.fanout}
        return out

    @classmethod
    def from_state(cls, tries: Sequence[PrefixTrie], state: dict[str, np.ndarray]) -> TrieSet:
        """The TrieSet of `tries` from its `state()`, using the arrays as they are: read-only arrays
        of a shared-memory store stay shared (the index is only ever read)."""
        ts = cls.__new__(cls)
        ts.tries, ts.depth, ts.copies = list(tries), tries[0].depth, {}
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            tensor = torch.from_numpy
            ts.levels = [TensorLevel(tensor(state[f"offsets_{l}"]), tensor(state[f"child_code_{l}"]),
                                     tensor(state[f"child_id_{l}"]), state[f"parent_{l}"], state[f"fanout_{l}"])
                         for l in range(ts.depth)]
            ts.item_ids = tensor(state["item_ids"])
        ts.leaf_base = state["leaf_base"]
        return ts

    def blocked(self, pool: torch.Tensor, exclude: Sequence[Sequence[int]] | None) -> list[torch.Tensor] | None:
        """Per level, the sorted Long keys `request * C_l + child id` a request may not take: its
        excluded items of its pool (`pool` Long[B] trie index per request, `exclude` item ids per
        request; ids outside the pool are ignored) and every prefix left with no allowed leaf.
        None when nothing is excluded."""
        if exclude is None or not any(len(x) for x in exclude):
            return None
        if len(exclude) != int(pool.shape[0]):
            raise ValueError(f"exclude must hold one item list per request: {len(exclude)} lists for "
                             f"{int(pool.shape[0])} requests")
        keys: list[list[np.ndarray]] = [[] for _ in range(self.depth)]
        for b, items in enumerate(exclude):
            t = int(pool[b])
            child = self.leaf_base[t] + self.tries[t].rows_of(items)
            for level in range(self.depth - 1, -1, -1):
                if not len(child):
                    break
                lv = self.levels[level]
                keys[level].append(b * lv.n_children + child)
                parents, count = np.unique(lv.parent[child], return_counts=True)
                child = parents[count == lv.fanout[parents]]  # prefixes with every child blocked
        return [torch.from_numpy(np.sort(np.concatenate(k)) if k else np.zeros(0, dtype=np.int64)).to(self.device)
                for k in keys]
