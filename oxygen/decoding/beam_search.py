"""Batched, trie-constrained beam search (and beam sampling) over a StepModel.

Each request keeps the same number of beams, contiguous by request (the layout StepModel expects).
At every SID level the engine gathers only the allowed (beam, child) edges from the sparse CSR
index (`TrieSet`), scores them from the model's log-probs, and keeps the best `beam` candidates per
request (at the last level the best `k`). Beams that cannot be filled (fewer legal paths than the
beam width) carry score -inf and produce nothing. Every returned item is in its request's pool, and
items are unique because code paths are.

Shapes: B requests, W beams per request, N = B*W, E allowed edges over all beams.

    items, scores = beam_search(model, batch, TrieSet(tries), pool=torch.zeros(B, dtype=long), beam=64, k=10)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from oxygen.decoding.protocol import StepModel
from oxygen.decoding.trie_set import TrieSet

NEG_INF = float("-inf")


@dataclass(frozen=True)
class SamplingParams:
    """Beam sampling settings: candidates are drawn without replacement (Gumbel-top-k) in
    proportion to exp(score / temperature), after top-k and nucleus (top-p) filtering."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None


def check_args(beam: int, k: int, n_requests: int) -> None:
    """Clear errors for impossible decoding arguments."""
    if beam < 1:
        raise ValueError(f"beam must be >= 1, got {beam}")
    if k < 1 or k > beam:
        raise ValueError(f"k must be in [1, beam={beam}], got {k}; raise the beam or lower k")
    if n_requests < 1:
        raise ValueError("nothing to decode: the batch is empty")


def expand(lv, node: torch.Tensor, score: torch.Tensor, logp: torch.Tensor):
    """Allowed edges of every live beam: (beam index Long[E], edge index Long[E], score Float[E])."""
    start = lv.offsets[node]
    count = torch.where(torch.isinf(score), torch.zeros_like(start), lv.offsets[node + 1] - start)
    beam_of = torch.repeat_interleave(torch.arange(node.shape[0]), count)
    first = torch.cumsum(count, 0) - count
    edge = start[beam_of] + torch.arange(beam_of.shape[0]) - first[beam_of]
    return beam_of, edge, score[beam_of] + logp[beam_of, lv.child_code[edge]]


def to_grid(req: torch.Tensor, values: torch.Tensor, n_requests: int):
    """Scatter per-edge values into Float[B, M] (-inf padded) and the edge index grid Long[B, M];
    padding cells point at their request's first edge so picks never cross requests."""
    per = torch.bincount(req, minlength=n_requests)
    width = max(1, int(per.max()))
    pos = torch.arange(req.shape[0]) - (torch.cumsum(per, 0) - per)[req]
    grid = torch.full((n_requests, width), NEG_INF)
    eidx = torch.zeros((n_requests, width), dtype=torch.long)
    grid[req, pos] = values
    filled = torch.zeros((n_requests, width), dtype=torch.bool)
    eidx[req, pos] = torch.arange(req.shape[0])
    filled[req, pos] = True
    return grid, torch.where(filled, eidx, eidx[:, :1])


def choose(grid: torch.Tensor, n: int, sampling: SamplingParams | None,
           gen: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick n columns per row of grid Float[B, M]: top-n, or sampled without replacement."""
    n = min(n, grid.shape[1])
    if sampling is None:
        return grid.topk(n, dim=1)
    keys = grid / sampling.temperature
    if sampling.top_k is not None and sampling.top_k < keys.shape[1]:
        kth = keys.topk(sampling.top_k, dim=1).values[:, -1:]
        keys = keys.masked_fill(keys < kth, NEG_INF)
    if sampling.top_p is not None and sampling.top_p < 1:
        keys = nucleus(keys, sampling.top_p)
    u = torch.rand(keys.shape, generator=gen).clamp_(1e-12, 1 - 1e-12)
    _, j = (keys - torch.log(-torch.log(u))).topk(n, dim=1)
    return grid.gather(1, j).masked_fill(torch.isinf(keys.gather(1, j)), NEG_INF), j


def nucleus(keys: torch.Tensor, top_p: float) -> torch.Tensor:
    """Mask (to -inf) every candidate outside the smallest set whose probability reaches top_p."""
    probs = torch.softmax(keys, dim=1)
    sp, order = probs.sort(dim=1, descending=True)
    outside = (torch.cumsum(sp, 1) - sp) >= top_p  # mass before this one already reached top_p
    mask = torch.zeros_like(outside).scatter(1, order, outside)
    return keys.masked_fill(mask, NEG_INF)


def beam_search(model: StepModel, batch: Any, tries: TrieSet, pool: torch.Tensor, beam: int, k: int,
                sampling: SamplingParams | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k items per request: (item ids Long[B, k], -1 where fewer; scores Float[B, k], sum of
    log-probs, -inf where fewer). `pool` Long[B] picks each request's trie in `tries`."""
    B = int(pool.shape[0])
    check_args(beam, k, B)
    gen = torch.Generator().manual_seed(sampling.seed) if sampling and sampling.seed is not None else None
    state = model.start(batch)
    node, score, codes = pool.clone().long(), torch.zeros(B), None
    for level in range(tries.depth):
        logp, state = model.step(state, codes, level)
        lv = tries.levels[level]
        beam_of, edge, cand = expand(lv, node, score, logp)
        width = node.shape[0] // B
        grid, eidx = to_grid(beam_of // width, cand, B)
        last = level == tries.depth - 1
        top, j = choose(grid, k if last else beam, sampling, gen)
        picked = eidx.gather(1, j).reshape(-1)
        node, score = lv.child_id[edge[picked]], top.reshape(-1)
        if last:
            items = tries.item_ids[node].reshape(B, -1)
            return _pad(items.masked_fill(torch.isinf(top), -1), top, k)
        codes = lv.child_code[edge[picked]]
        state = model.select(state, beam_of[picked])
    raise AssertionError("unreachable: tries have at least one level")


def _pad(items: torch.Tensor, scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad [B, n<k] results to [B, k] with -1 / -inf."""
    n = items.shape[1]
    if n == k:
        return items, scores
    B = items.shape[0]
    return (torch.cat([items, torch.full((B, k - n), -1, dtype=items.dtype)], 1),
            torch.cat([scores, torch.full((B, k - n), NEG_INF)], 1))
