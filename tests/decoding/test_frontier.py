"""The vectorised candidate frontier (oxygen.decoding.frontier) against a per-beam Python loop over
the CSR index: same candidates per request in the same order, same scores, same picked edges/beams,
with dead (-inf) beams, uneven children counts and several requests, and on the dense shortcut
(every beam live with every code)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oxygen.decoding.frontier import frontier, pick
from oxygen.decoding.trie_set import TrieSet
from oxygen.semantic_ids.trie import PrefixTrie


def _slow(lv, node, score, logp, B):
    """Per request, the list of (score, edge, beam) over its beams' allowed edges, in beam order."""
    W = node.shape[0] // B
    rows = []
    for r in range(B):
        row = []
        for b in range(r * W, (r + 1) * W):
            if torch.isinf(score[b]):
                continue
            for e in range(int(lv.offsets[node[b]]), int(lv.offsets[node[b] + 1])):
                row.append((float(score[b] + logp[b, lv.child_code[e]]), e, b))
        rows.append(row)
    return rows


@pytest.mark.parametrize("seed, dense", [(0, False), (1, False), (2, False), (3, True)])
def test_frontier_matches_loop(seed: int, dense: bool):
    rng = np.random.default_rng(seed)
    widths = (5, 7, 4)
    allp = np.array(np.meshgrid(*[np.arange(w) for w in widths], indexing="ij")).reshape(3, -1).T
    codes = allp if dense else allp[rng.choice(len(allp), 60, replace=False)]
    ts = TrieSet([PrefixTrie(codes, np.arange(len(codes)))])
    lv = ts.levels[1]
    B, W = 3, 4
    n_prefix = lv.offsets.shape[0] - 1
    node = torch.from_numpy(rng.integers(0, n_prefix, B * W))
    score = torch.from_numpy(rng.normal(size=B * W)).float()
    if not dense:
        score[[1, 5, 6]] = float("-inf")
    logp = torch.log_softmax(torch.randn(B * W, widths[1]), dim=1)
    f = frontier(lv, node, score, logp, B)
    assert f.dense == dense
    slow = _slow(lv, node, score, logp, B)
    for r, row in enumerate(slow):
        got = f.grid[r]
        np.testing.assert_allclose(got[: len(row)].numpy(), [s for s, _, _ in row], rtol=1e-6)
        assert torch.isinf(got[len(row):]).all()
    cols = torch.tensor([[0, f.grid.shape[1] - 1]] * B)
    edge, beam = pick(f, cols)
    for r, row in enumerate(slow):
        for i, c in enumerate(cols[r].tolist()):
            _, e, b = row[c] if c < len(row) else row[0]
            assert (int(edge[r * 2 + i]), int(beam[r * 2 + i])) == (e, b)
