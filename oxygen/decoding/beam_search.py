"""Batched, trie-constrained beam search (and beam sampling) over a StepModel.

Each request keeps the same number of beams, contiguous by request (the layout StepModel expects).
At every SID level the engine gathers only the allowed (beam, child) edges from the sparse CSR
index (`TrieSet`; see oxygen.decoding.frontier), scores them from the model's log-probs, and keeps
the best `beam` candidates per request (at the last level the best `k`). Beams that cannot be
filled (fewer legal paths than the beam width) carry score -inf and produce nothing. Every
returned item is in its request's pool and outside its exclusions (TrieSet.blocked), and items are
unique because code paths are.

Shapes: B requests, W beams per request, N = B*W, E allowed edges over all beams.
The beams live on the model's device (oxygen.device.module_device): the index goes there once
(`TrieSet.to`), and the results come back on that device.

    items, scores = beam_search(model, batch, TrieSet(tries), pool=torch.zeros(B, dtype=long), beam=64, k=10)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from oxygen.decoding.frontier import frontier, pick
from oxygen.decoding.protocol import StepModel
from oxygen.decoding.sampling import NEG_INF, SamplingParams, choose, make_generator
from oxygen.decoding.trie_set import TrieSet
from oxygen.device import module_device

__all__ = ["SamplingParams", "beam_search", "check_args"]


def check_args(beam: int, k: int, n_requests: int) -> None:
    """Clear errors for impossible decoding arguments."""
    if beam < 1:
        raise ValueError(f"beam must be >= 1, got {beam}")
    if k < 1 or k > beam:
        raise ValueError(f"k must be in [1, beam={beam}], got {k}; raise the beam or lower k")
    if n_requests < 1:
        raise ValueError("nothing to decode: the batch is empty")


def beam_search(model: StepModel, batch: Any, tries: TrieSet, pool: torch.Tensor, beam: int, k: int,
                sampling: SamplingParams | None = None, exclude: Sequence[Sequence[int]] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k items per request: (item ids Long[B, k], -1 where fewer; scores Float[B, k], sum of
    log-probs, -inf where fewer). `pool` Long[B] picks each request's trie in `tries`; `exclude`
    (item ids per request) are never returned, and k still come back when the pool has k others."""
    B = int(pool.shape[0])
    check_args(beam, k, B)
    gen = make_generator(sampling)
    state = model.start(batch)
    dev = module_device(model)
    tries = tries.to(dev)
    blocked = tries.blocked(pool.cpu(), exclude)
    node, score, codes = pool.to(dev, torch.long, copy=True), torch.zeros(B, device=dev), None
    for level in range(tries.depth):
        logp, state = model.step(state, codes, level)
        lv = tries.levels[level]
        f = frontier(lv, node, score, logp, B, None if blocked is None else blocked[level])
        last = level == tries.depth - 1
        top, j = choose(f.grid, k if last else beam, sampling, gen)
        edge, beam_of = pick(f, j)
        node, score = lv.child_id[edge], top.reshape(-1)
        if last:
            items = tries.item_ids[node].reshape(B, -1)
            return _pad(items.masked_fill(torch.isinf(top), -1), top, k)
        codes = lv.child_code[edge]
        state = model.select(state, beam_of)
    raise AssertionError("unreachable: tries have at least one level")


def _pad(items: torch.Tensor, scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad [B, n<k] results to [B, k] with -1 / -inf."""
    n = items.shape[1]
    if n == k:
        return items, scores
    B, dev = items.shape[0], items.device
    return (torch.cat([items, torch.full((B, k - n), -1, dtype=items.dtype, device=dev)], 1),
            torch.cat([scores, torch.full((B, k - n), NEG_INF, dtype=scores.dtype, device=dev)], 1))
