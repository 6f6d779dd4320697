"""Beam sampling: how the engine picks n candidates per request, either the top-n by score (beam
search) or n drawn without replacement (Gumbel-top-k, i.e. sequential draws proportional to
exp(score / temperature)) after top-k and nucleus (top-p) filtering, with a seeded generator.

Candidates arrive as a grid Float[B, M] (one row per request, -inf where a cell is padding).
Below GREEDY_BELOW the draw is its T -> 0 limit (the best unfiltered cells in order), so keys never
overflow float32 and a legal cell never looks like padding: even 1e-179 gives legal, unique picks.

    params = SamplingParams(temperature=0.8, top_p=0.9, seed=1)
    scores, cols = choose(grid, n, params, make_generator(params))   # Float[B, n], Long[B, n]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

NEG_INF = float("-inf")
GREEDY_BELOW = 1e-6  # a colder draw is its T -> 0 limit; keys are scaled by at most 1 / GREEDY_BELOW


@dataclass(frozen=True)
class SamplingParams:
    """Beam sampling settings. temperature > 0; top_k keeps the top_k candidates of a request;
    top_p keeps the smallest best-first set whose probability reaches top_p; seed makes it repeatable."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"SamplingParams.temperature must be > 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"SamplingParams.top_k must be >= 1 or None, got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"SamplingParams.top_p must be in (0, 1] or None, got {self.top_p}")


def make_generator(params: SamplingParams | None) -> torch.Generator | None:
    """A CPU generator seeded with params.seed (None: torch's global RNG is used)."""
    if params is None or params.seed is None:
        return None
    return torch.Generator().manual_seed(params.seed)


def filter_keys(keys: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """Apply top-k then top-p to logits Float[B, M] (removed cells become -inf)."""
    if params.top_k is not None and params.top_k < keys.shape[1]:
        kth = keys.topk(params.top_k, dim=1).values[:, -1:]
        keys = keys.masked_fill(keys < kth, NEG_INF)
    if params.top_p is not None and params.top_p < 1:
        keys = nucleus(keys, params.top_p)
    return keys


def nucleus(keys: torch.Tensor, top_p: float) -> torch.Tensor:
    """Mask (to -inf) every candidate of keys Float[B, M] outside the smallest best-first set whose
    probability reaches top_p (the best candidate is always kept)."""
    probs = torch.softmax(keys, dim=1)
    sp, order = probs.sort(dim=1, descending=True)
    outside = (torch.cumsum(sp, 1) - sp) >= top_p  # the mass before this one already reached top_p
    outside[:, 0] = False  # the best always stays (a top_p that underflows float32 to 0 must not drop it)
    mask = torch.zeros_like(outside).scatter(1, order, outside)
    return keys.masked_fill(mask, NEG_INF)


def choose(grid: torch.Tensor, n: int, params: SamplingParams | None,
           gen: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick n columns per row of grid Float[B, M]: top-n (params None) or sampled without replacement.
    Returns (scores Float[B, n'] from grid, -inf for picks that were filtered out; columns Long[B, n']),
    n' = min(n, M). Sampled picks come in draw order."""
    n = min(n, grid.shape[1])
    if params is None:
        return grid.topk(n, dim=1)
    keys = filter_keys(grid / max(params.temperature, GREEDY_BELOW), params)
    if params.temperature < GREEDY_BELOW:  # the draw's limit: the best unfiltered cells, in order
        return grid.masked_fill(torch.isinf(keys), NEG_INF).topk(n, dim=1)
    # drawn on the CPU generator and moved, so a seed gives the same draw on every device
    u = torch.rand(keys.shape, generator=gen, device="cpu").to(keys.device).clamp_(1e-12, 1 - 1e-12)
    _, cols = (keys - torch.log(-torch.log(u))).topk(n, dim=1)
    picked = grid.gather(1, cols).masked_fill(torch.isinf(keys.gather(1, cols)), NEG_INF)
    return picked, cols
