"""Slow, obviously-correct beam search and beam sampling in pure Python, used only by tests to check
the fast batched engine (`oxygen.decoding.beam_search`).

One request at a time, one beam at a time: each beam keeps its own one-beam decoder state, the trie
is a nested dict, candidates are sorted with Python's `sorted`, samples are drawn one by one with
`random.Random`.

    items, scores = reference_beam_search(model, batch, [trie], [0] * B, beam=8, k=4)
    items, scores = reference_beam_search(model, batch, [trie], [0] * B, beam=8, k=4, exclude=[[3]] * B)
    items, scores = reference_beam_sample(model, batch, [trie], [0] * B, beam=8, k=4,
                                          temperature=1.0, top_k=None, top_p=0.9, seed=0)
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any

import torch

from oxygen.semantic_ids.trie import PrefixTrie

Cand = tuple  # (score, decoder state, trie node or item id, code)
Pick = Callable[[list, int], list]  # (candidates, n) -> the chosen candidates, in order


def _one_request(model: Any, single_batch: Any, trie: dict, depth: int, beam: int, k: int, pick: Pick):
    """Beam search / sampling for one request: list of (item id, score), in pick order."""
    beams: list[Cand] = [(0.0, model.start(single_batch), trie, None)]
    for level in range(depth):
        cands = []
        for score, state, node, code in beams:
            codes = None if code is None else torch.tensor([code])
            logp, nxt = model.step(state, codes, level)
            for c in sorted(node):
                cands.append((score + float(logp[0, c]), nxt, node[c], c))
        beams = pick(cands, k if level == depth - 1 else beam)
    return [(item, score) for score, _, item, _ in beams]


def _without(node: dict, excluded: set[int]) -> dict:
    """The nested-dict trie without the excluded items and the subtrees they leave empty."""
    out = {}
    for code, child in node.items():
        if isinstance(child, dict):
            child = _without(child, excluded)
            if child:
                out[code] = child
        elif child not in excluded:
            out[code] = child
    return out


def _top(cands: list, n: int) -> list:
    """The n best candidates (stable: equal scores keep trie order)."""
    return sorted(cands, key=lambda c: -c[0])[:n]


def _sampler(temperature: float, top_k: int | None, top_p: float | None, rng: random.Random) -> Pick:
    """Draw n candidates one by one without replacement, P ~ exp(score / temperature), among the
    candidates left after top-k (ties at the k-th kept) and top-p filtering."""

    def pick(cands: list, n: int) -> list:
        keys = [c[0] / temperature for c in cands]
        live = list(range(len(cands)))
        if top_k is not None and top_k < len(keys):
            kth = sorted(keys, reverse=True)[top_k - 1]
            live = [i for i in live if keys[i] >= kth]
        if top_p is not None and top_p < 1:
            z = max(keys[i] for i in live)
            mass = sum(math.exp(keys[i] - z) for i in live)
            kept, before = [], 0.0
            for i in sorted(live, key=lambda i: -keys[i]):
                if before / mass >= top_p:
                    break
                kept.append(i)
                before += math.exp(keys[i] - z)
            live = kept
        out = []
        while live and len(out) < n:
            z = max(keys[i] for i in live)
            weights = [math.exp(keys[i] - z) for i in live]
            i = rng.choices(live, weights=weights)[0]
            live.remove(i)
            out.append(cands[i])
        return out

    return pick


def _run(model: Any, batch: Any, tries: Sequence[PrefixTrie], pool: Sequence[int], beam: int, k: int,
         pick: Pick, exclude: Sequence[Sequence[int]] | None = None) -> tuple[list[list[int]], list[list[float]]]:
    """Apply `_one_request` to every request of the batch (its trie without its excluded items)."""
    items, scores = [], []
    with torch.no_grad():
        for b, t in enumerate(pool):
            single = batch.select(torch.tensor([b]))
            trie = _without(tries[t].as_dict(), set(exclude[b]) if exclude else set())
            out = _one_request(model, single, trie, tries[t].depth, beam, k, pick)
            items.append([i for i, _ in out])
            scores.append([s for _, s in out])
    return items, scores


def reference_beam_search(model: Any, batch: Any, tries: Sequence[PrefixTrie], pool: Sequence[int],
                          beam: int, k: int, exclude: Sequence[Sequence[int]] | None = None
                          ) -> tuple[list[list[int]], list[list[float]]]:
    """Item ids and scores (sum of log-probs) per request, best first; fewer than k when the pool
    is small. `pool[b]` is the index in `tries` of request b's trie; `exclude[b]` its excluded items."""
    return _run(model, batch, tries, pool, beam, k, _top, exclude)


def reference_beam_sample(model: Any, batch: Any, tries: Sequence[PrefixTrie], pool: Sequence[int],
                          beam: int, k: int, temperature: float = 1.0, top_k: int | None = None,
                          top_p: float | None = None, seed: int = 0,
                          exclude: Sequence[Sequence[int]] | None = None) -> tuple[list[list[int]], list[list[float]]]:
    """Beam sampling: at every level draw `beam` (last level: `k`) candidates per request without
    replacement; item ids and scores per request in draw order."""
    pick = _sampler(temperature, top_k, top_p, random.Random(seed))
    return _run(model, batch, tries, pool, beam, k, pick, exclude)
