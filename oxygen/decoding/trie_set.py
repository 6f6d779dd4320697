"""Several prefix tries (one per scenario item pool) stacked into one CSR index of torch tensors,
so one batched decoding pass serves requests of different pools.

Prefix ids are global: trie t's prefixes at level l are shifted by `base[l][t]`, its root is
prefix t at level 0, and last-level children index the stacked `item_ids`.

    ts = TrieSet([trie_search, trie_cart])
    lv = ts.levels[0]; lv.offsets, lv.child_code, lv.child_id      # Long tensors
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from oxygen.semantic_ids.trie import PrefixTrie


@dataclass
class TensorLevel:
    """One level of the stacked index: offsets Long[P+1], child_code Long[E], child_id Long[E]."""

    offsets: torch.Tensor
    child_code: torch.Tensor
    child_id: torch.Tensor


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
        return TensorLevel(*(torch.from_numpy(np.concatenate(a)) for a in (offs, codes, ids)))

    def __len__(self) -> int:
        return len(self.tries)
