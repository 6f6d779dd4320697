"""The policy's view of generated items: teacher-forced per-token log-probs of SID paths under the
fast-thinking model, for the rollout's old log-probs and the learner's new ones.

A request's group of G generated items is scored by repeating the request G times and feeding each
item's code path to the decoder (`OxygenModel.level_log_probs`); token l's log-prob is the model's
log-softmax over level l's codes, the same quantity the decode path's beam scores sum (so the sum
over levels equals the beam search score of that item: tests check it). `masks` optionally
renormalises each level within the codes a trie allows after the item's prefix (the distribution
trie-constrained sampling draws from); it defaults to none, matching the decode path's scores.

    rep = repeat_rows(batch, G)                                   # ModelBatch of B * G rows
    logp = token_log_probs(model, rep, codes.reshape(B * G, L))   # Float[B * G, L]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from oxygen.data.batch import ModelBatch
from oxygen.semantic_ids.trie import PrefixTrie


def repeat_rows(batch: ModelBatch, g: int) -> ModelBatch:
    """Each request of `batch` repeated `g` times in place (request b -> rows b*g .. b*g+g-1)."""
    if g < 1:
        raise ValueError(f"group size must be >= 1, got {g}")
    return batch.select(torch.arange(len(batch), device="cpu").repeat_interleave(g))


def token_log_probs(model: torch.nn.Module, batch: ModelBatch, codes: torch.Tensor,
                    masks: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
    """Float[N, L]: log pi(code_l | request, codes_<l) for codes Long[N, L] of N rows of `batch`
    (with gradient when the model is in grad mode); `masks[l]` Bool[N, K_l] restricts level l."""
    if codes.ndim != 2 or codes.shape[0] != len(batch):
        raise ValueError(f"codes must be Long[N, L] with N = {len(batch)} rows; got {tuple(codes.shape)}")
    logits, _, _ = model.teacher_forced(batch, codes)
    out = []
    for level, lg in enumerate(logits):
        if masks is not None:
            lg = lg.masked_fill(~masks[level], float("-inf"))
        out.append(F.log_softmax(lg, dim=-1).gather(1, codes[:, level:level + 1]))
    return torch.cat(out, dim=1)


def trie_masks(tries: Sequence[PrefixTrie], codes: np.ndarray, sizes: Sequence[int]) -> list[torch.Tensor]:
    """Per level l, Bool[N, K_l]: the codes trie n allows after codes[n, :l] (Int[N, L])."""
    n, depth = codes.shape
    masks = [torch.zeros(n, k, dtype=torch.bool) for k in sizes]
    for row in range(n):
        for level in range(depth):
            allowed = tries[row].allowed(codes[row, :level].tolist())
            masks[level][row, torch.as_tensor(np.asarray(allowed, dtype=np.int64))] = True
    return masks
