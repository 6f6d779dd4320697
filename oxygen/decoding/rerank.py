"""Re-ranking the beam with a second next-item distribution: a two-expert mixture.

The generative model proposes its top-N items with sequence log-probabilities (beam search); a
second expert gives a distribution over items, and each request's items are re-ranked over the
union of both by

    score(i) = (1 - w) * p_model(i) + w * P_2(i),   p_model(i) = exp(log-prob), 0 outside the beam

(linear interpolation of two next-item distributions, as n-gram and neural language models are
mixed); w = 0 returns the beam order. The second expert is either
- the transition channel (oxygen.data.transitions): P_t(b | history), the decayed, normalised
  item-to-item distribution of the recent history, with one weight w chosen on valid
  (`RerankSpec`, saved in bundles), or
- the model's copy head (oxygen.model.copy): a learned distribution over the request's encoder
  items with a learned per-request weight g (`copy_mixture` reads what the model returns).
Items the second expert adds must lie in the request's item pool (`allowed`), so every output stays
a real, allowed item and outputs are unique.

    ids, scores = rerank(items, logp, (0.3, dists), k=10)          # Int64[B, 10], -1 padded
    spec = RerankSpec(weight=0.3); spec.dists(table, histories)   # the transition channel's P_t
    weights, dists = copy_mixture(model.item_mixture(batch), space.item_ids)
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from oxygen.data.transitions import TransitionTable

Mixture = tuple[np.ndarray, list[dict[int, float]]]  # weight Float[B], {item id: mass} per request


@dataclass(frozen=True)
class RerankSpec:
    """The transition-channel mixture selected on valid: weight w, the channel's decay / look-back."""

    weight: float
    decay: float = 0.3
    max_back: int = 10

    def dists(self, table: TransitionTable, histories: Sequence[Sequence[int]]) -> list[dict[int, float]]:
        """P_t(. | history) of each history."""
        return [table.distribution(h, self.decay, self.max_back) for h in histories]


def rerank_row(items: np.ndarray, logp: np.ndarray, dist: dict[int, float], weight: float, k: int,
               allowed: Container[int] | None = None) -> list[tuple[int, float]]:
    """One request: items Int64[N] (-1 = none) with logp Float[N], dist {item: P_2} -> the top-k
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


def rerank(items: np.ndarray, logp: np.ndarray, mixture: Mixture, k: int,
           allowed: Sequence[Container[int] | None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`rerank_row` for each request of items/logp [B, N] with `mixture` (weight Float[B] or one
    float, dists[B]) and per-request `allowed` pools: (item ids Int64[B, k] -1 padded, mixture
    scores Float[B, k], -inf padded)."""
    weights, dists = mixture
    w = np.broadcast_to(np.asarray(weights, dtype=np.float64), (len(items),))
    if ((w < 0) | (w > 1)).any():
        raise ValueError(f"mixture weights must lie in [0, 1], got {w.min()}..{w.max()}")
    if items.shape != logp.shape or len(dists) != len(items):
        raise ValueError(f"items {items.shape}, logp {logp.shape} and {len(dists)} dists must agree on B and N")
    ids = np.full((len(items), k), -1, dtype=np.int64)
    scores = np.full((len(items), k), -np.inf)
    for b in range(len(items)):
        row = rerank_row(items[b], logp[b], dists[b], float(w[b]), k, None if allowed is None else allowed[b])
        ids[b, :len(row)] = [i for i, _ in row]
        scores[b, :len(row)] = [s for _, s in row]
    return ids, scores


def copy_mixture(out: tuple[torch.Tensor, torch.Tensor, torch.Tensor], item_ids: np.ndarray) -> Mixture:
    """The copy head's (gate Float[B], token item index + 1 Long[B, T], probs Float[B, T]) as a
    mixture: gate Float[B] and each request's {item id: copy mass} (tokens of one item summed;
    item_ids maps dense index -> item id)."""
    gate, token_items, probs = out
    dists: list[dict[int, float]] = []
    for items_b, probs_b in zip(token_items.tolist(), probs.tolist()):
        d: dict[int, float] = {}
        for i, p in zip(items_b, probs_b):
            if i > 0 and p > 0:
                key = int(item_ids[i - 1])
                d[key] = d.get(key, 0.0) + p
        dists.append(d)
    return gate.detach().float().cpu().numpy().astype(np.float64), dists
