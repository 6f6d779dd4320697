"""Fusion of the generated items with the transition channel: a two-expert mixture re-ranking.

The generative model proposes its top-N items with sequence log-probabilities (beam search); the
transition channel (oxygen.data.transitions) gives P_t(b | history), the decayed, normalised
item-to-item distribution of the recent history. Each request's items are re-ranked over the union
of both by the mixture

    score(i) = (1 - w) * p_model(i) + w * P_t(i | history),   p_model(i) = exp(log-prob), 0 outside the beam

(linear interpolation of two next-item distributions, as n-gram and neural language models are
mixed); w = 0 returns the beam order. w is chosen on valid (oxygen.recommenders.generative). Items the
transition channel adds must lie in the request's item pool (`allowed`), so every output stays a
real, allowed item and outputs are unique.

    top = fuse_top_k(items, logp, dists, weight=0.3, k=10)      # Int64[B, 10], -1 padded
    spec = FusionSpec(weight=0.3); spec.dists(table, histories)  # the settings a bundle carries

The copy head of the model (oxygen.model.copy) is the same mixture with a learned, per-request
weight g and a learned distribution over the request's encoder items: `copy_dists` reads both,
and `fuse_top_k` takes one weight per request.

    gates, dists = copy_dists(model, batch, space.item_ids)      # Float[B], [{item: mass}]
    top = fuse_top_k(items, logp, dists, gates, k=10)
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from oxygen.data.transitions import TransitionTable


@dataclass(frozen=True)
class FusionSpec:
    """The selected fusion: mixture weight w and the transition channel's decay / look-back."""

    weight: float
    decay: float = 0.3
    max_back: int = 10

    def dists(self, table: TransitionTable, histories: Sequence[Sequence[int]]) -> list[dict[int, float]]:
        """P_t(. | history) of each history."""
        return [table.distribution(h, self.decay, self.max_back) for h in histories]


def fuse_row(items: np.ndarray, logp: np.ndarray, dist: dict[int, float], weight: float, k: int,
             allowed: Container[int] | None = None) -> list[tuple[int, float]]:
    """One request: items Int64[N] (-1 = none) with logp Float[N], dist {item: P_t} -> the top-k
    (item id, mixture score). Ties keep the beam order first, then smaller item ids."""
    score: dict[int, float] = {}
    order: dict[int, int] = {}
    for n, (i, lp) in enumerate(zip(items.tolist(), logp.tolist())):
        if i >= 0 and i not in score:
            score[i], order[i] = (1.0 - weight) * float(np.exp(lp)), n
    if weight > 0:
        for i, p in dist.items():
            if allowed is None or i in allowed:
                score[i] = score.get(i, 0.0) + weight * p
                order.setdefault(i, len(items) + i)
    return [(i, score[i]) for i in sorted(score, key=lambda i: (-score[i], order[i]))[:k]]


def fuse_top_k(items: np.ndarray, logp: np.ndarray, dists: Sequence[dict[int, float]],
               weight: float | np.ndarray, k: int, allowed: Container[int] | None = None) -> np.ndarray:
    """Int64[B, k] (-1 padded): `fuse_row` for each request of items/logp [B, N] and dists[B];
    `weight` is one w for all or Float[B], one per request."""
    w = np.broadcast_to(np.asarray(weight, dtype=np.float64), (len(items),))
    if ((w < 0) | (w > 1)).any():
        raise ValueError(f"fusion weights must lie in [0, 1], got {w.min()}..{w.max()}")
    if items.shape != logp.shape or len(dists) != len(items):
        raise ValueError(f"items {items.shape}, logp {logp.shape} and {len(dists)} dists must agree on B and N")
    out = np.full((len(items), k), -1, dtype=np.int64)
    for b in range(len(items)):
        row = fuse_row(items[b], logp[b], dists[b], float(w[b]), k, allowed)
        out[b, :len(row)] = [i for i, _ in row]
    return out


def copy_dists(model: torch.nn.Module, batch, item_ids: np.ndarray) -> tuple[np.ndarray, list[dict[int, float]]]:
    """The copy head of `model` on `batch`: gate Float[B] and each request's {item id: copy mass}
    (tokens of one item summed; item_ids maps dense index -> item id)."""
    with torch.no_grad():
        gate, token_items, probs = model.copy_distribution(batch)
    dists: list[dict[int, float]] = []
    for items_b, probs_b in zip(token_items.tolist(), probs.tolist()):
        d: dict[int, float] = {}
        for i, p in zip(items_b, probs_b):
            if i > 0 and p > 0:
                key = int(item_ids[i - 1])
                d[key] = d.get(key, 0.0) + p
        dists.append(d)
    return gate.numpy().astype(np.float64), dists
