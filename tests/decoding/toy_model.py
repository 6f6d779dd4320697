"""A deterministic toy StepModel for decoding tests: log-probs are a fixed random table looked up by
a hash of (request key, code prefix), so every request/prefix has its own distribution and the
same prefix always gets the same one, however beams are batched, copied or reordered.

    model = ToyModel((6, 5, 4)); batch = ToyBatch(torch.arange(B))
    items, scores = generate_items(model, batch, [trie], beam=8, k=4)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

TABLE_ROWS = 4093  # prime, so the hash spreads prefixes over rows


@dataclass
class ToyBatch:
    """B requests, each identified by a key Long[B] (same key = same distributions)."""

    keys: torch.Tensor

    def __len__(self) -> int:
        return int(self.keys.shape[0])

    def select(self, index: torch.Tensor) -> ToyBatch:
        return ToyBatch(self.keys[index])


@dataclass
class ToyState:
    """Per beam: the request key Long[N] and the codes fed so far Long[N, l]."""

    keys: torch.Tensor
    prefix: torch.Tensor


class ToyModel:
    """StepModel over a table Float[TABLE_ROWS, K_l] of logits per level; `sharpness` scales them."""

    def __init__(self, codebook_sizes: tuple[int, ...], seed: int = 0, sharpness: float = 2.0):
        g = torch.Generator().manual_seed(seed)
        self.codebook_sizes = tuple(codebook_sizes)
        self.tables = [torch.randn(TABLE_ROWS, k, generator=g) * sharpness for k in codebook_sizes]
        self.steps = 0  # number of step() calls, to check the engine calls the model once per level

    def start(self, batch: ToyBatch) -> ToyState:
        return ToyState(batch.keys.clone().long(), torch.zeros(len(batch), 0, dtype=torch.long))

    def step(self, state: ToyState, codes: torch.Tensor | None, level: int) -> tuple[torch.Tensor, ToyState]:
        if (codes is None) != (level == 0) or state.prefix.shape[1] + (codes is not None) != level:
            raise AssertionError(f"step(level={level}) called with prefix length {state.prefix.shape[1]}")
        prefix = state.prefix if codes is None else torch.cat([state.prefix, codes.long()[:, None]], 1)
        h = state.keys * 7919 + level
        for col in range(prefix.shape[1]):
            h = (h * 31 + prefix[:, col] + 1) % TABLE_ROWS
        self.steps += 1
        return torch.log_softmax(self.tables[level][h % TABLE_ROWS], dim=1), ToyState(state.keys, prefix)

    def select(self, state: ToyState, index: torch.Tensor) -> ToyState:
        return ToyState(state.keys[index], state.prefix[index])
