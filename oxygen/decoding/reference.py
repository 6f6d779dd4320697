"""A slow, obviously-correct beam search in pure Python, used only by tests to check the fast path.

One request at a time, one beam at a time: each beam keeps its own one-beam decoder state, the
trie is a nested dict, candidates are sorted with Python's `sorted`.

    items, scores = reference_beam_search(model, batch, [trie], [0] * B, beam=8, k=4)
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from oxygen.semantic_ids.trie import PrefixTrie


def _one_request(model: Any, single_batch: Any, trie: dict, depth: int, beam: int, k: int):
    """Beam search for one request: list of (item id, score) best first."""
    beams = [(0.0, model.start(single_batch), trie, None)]  # (score, state, node, last code)
    for level in range(depth):
        cands = []
        for score, state, node, code in beams:
            codes = None if code is None else torch.tensor([code])
            logp, nxt = model.step(state, codes, level)
            for c in sorted(node):
                cands.append((score + float(logp[0, c]), nxt, node[c], c))
        cands.sort(key=lambda x: -x[0])
        beams = cands[: (k if level == depth - 1 else beam)]
    return [(item, score) for score, _, item, _ in beams]


def reference_beam_search(model: Any, batch: Any, tries: Sequence[PrefixTrie], pool: Sequence[int],
                          beam: int, k: int) -> tuple[list[list[int]], list[list[float]]]:
    """Item ids and scores per request (lists, best first; fewer than k when the pool is small)."""
    items, scores = [], []
    with torch.no_grad():
        for b, t in enumerate(pool):
            out = _one_request(model, batch.select(torch.tensor([b])), tries[t].as_dict(), tries[t].depth, beam, k)
            items.append([i for i, _ in out])
            scores.append([s for _, s in out])
    return items, scores
