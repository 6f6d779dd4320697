"""The candidate frontier of one beam-search level: every allowed (beam, child) edge of the live
beams, scored and laid out as one row per request, built with few whole-array ops (no 2-D
scatters). When every beam is live and has all K children (typical of level 1 in large
catalogues) the grid is simply score + logp reshaped: no edge list.

Shapes: B requests, W beams per request (contiguous), N = B*W beams, K codes at this level,
E allowed edges over all beams (in beam order, so a request's edges are contiguous), M = the most
edges of any request. Every tensor lives on the device of the beams (`node`), which is the model's.

    f = frontier(lv, node, score, logp, B)       # lv: TrieSet level; f.grid Float[B, M]
    scores, cols = f.grid.topk(n, dim=1)
    edge, beam = pick(f, cols)                   # CSR edge ids and source beams, Long[B*n] each
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

NEG_INF = float("-inf")


@dataclass
class Frontier:
    """Scored candidates of one level.

    grid   Float[B, M] beam score + log-prob of each candidate, -inf padded on the right
    edge   Long[E]     CSR edge id (into the level's child_code / child_id) of candidate e
    first  Long[B]     index of each request's first candidate in 0..E-1
    count  Long[B]     candidates per request
    ends   Long[N]     cumulative candidate count through beam i (candidate e belongs to the first
                       beam with ends > e)
    start  Long[N]     first CSR edge of each beam's prefix
    dense  True when every beam is live with all K children (then edge is empty: candidate e is
           code e % K of beam e // K, and grid is just score + logp, no gathers or scatter)
    """

    grid: torch.Tensor
    edge: torch.Tensor
    first: torch.Tensor
    count: torch.Tensor
    ends: torch.Tensor
    start: torch.Tensor
    dense: bool = False


def frontier(lv, node: torch.Tensor, score: torch.Tensor, logp: torch.Tensor, n_requests: int,
             blocked: torch.Tensor | None = None) -> Frontier:
    """Candidates of beams at prefix ids node Long[N] with scores Float[N] (-inf: dead beam, no
    children) and log-probs logp Float[N, K]; `lv` has offsets / child_code / child_id Long tensors
    (TrieSet). `blocked` (sorted Long keys request * lv.n_children + child id, TrieSet.blocked)
    scores those candidates -inf."""
    N, K = logp.shape
    dev = node.device
    start = lv.offsets[node]
    count = torch.where(torch.isinf(score), torch.zeros_like(start), lv.offsets[node + 1] - start)
    ends = torch.cumsum(count, 0)
    E = int(ends[-1])
    per = count.view(n_requests, -1).sum(1)
    first = torch.cumsum(per, 0) - per
    blocked = blocked if blocked is not None and blocked.numel() else None
    if E == N * K and blocked is None:  # dense: every beam has every code, in code order
        grid = (score[:, None] + logp).reshape(n_requests, -1)
        return Frontier(grid, torch.zeros(0, dtype=torch.long, device=dev), first, per, ends, start, True)
    edge = torch.arange(E, device=dev) + torch.repeat_interleave(start - (ends - count), count, output_size=E)
    flat = torch.repeat_interleave(torch.arange(N, device=dev) * K, count, output_size=E) + lv.child_code[edge]
    values = torch.repeat_interleave(score, count, output_size=E) + logp.reshape(-1)[flat]
    if blocked is not None:
        request = torch.repeat_interleave(torch.arange(N, device=dev) // (N // n_requests), count, output_size=E)
        values = values.masked_fill(torch.isin(request * lv.n_children + lv.child_id[edge], blocked), NEG_INF)
    width = max(1, int(per.max()))
    slot = torch.arange(E, device=dev) + torch.repeat_interleave(torch.arange(n_requests, device=dev) * width - first,
                                                                 per, output_size=E)
    grid = torch.full((n_requests * width,), NEG_INF, device=dev, dtype=values.dtype).index_copy_(0, slot, values)
    return Frontier(grid.view(n_requests, width), edge, first, per, ends, start)


def pick(f: Frontier, cols: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(CSR edge ids, source beams), Long[B*n] each, of the chosen grid columns cols Long[B, n];
    padding columns map to their request's first candidate, so picks never cross requests."""
    idx = torch.where(cols < f.count[:, None], f.first[:, None] + cols, f.first[:, None]).reshape(-1)
    if f.dense:
        K = f.grid.numel() // f.start.shape[0]
        beam = idx // K
        return f.start[beam] + idx % K, beam
    idx = idx.clamp(max=max(int(f.edge.shape[0]) - 1, 0))
    return f.edge[idx], torch.searchsorted(f.ends, idx, right=True)
