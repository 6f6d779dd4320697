"""Copy head: a pointer over the encoder's item tokens, mixed with the generated SID distribution.

A generative model must memorise every seen transition a -> b through three SID tokens; an item
that followed the history before (a collaborative candidate) or an item of the history itself
(repeat consumption) is easier to point at. The copy head reads the decoder state h that
predicts the first SID level (it has cross-attended to the whole encoder) and scores every item
token t of the encoder memory m (candidates, IGR long-history items, short history):

    pi_t = softmax_t( (W_q h) . (W_k m_t) / sqrt(d) )  over item tokens,   g = sigmoid(w_g . h + b_g)
    p(item i) = (1 - g) * p_gen(i) + g * sum_t pi_t [item_t = i]

(a pointer-generator / RepeatNet-style repeat-explore mixture). Training maximises log p(target)
of the mixture (oxygen.model.losses.mixture_nll); decoding mixes the beam's items with the copy
distribution the same way (oxygen.decoding.rerank). A row with no item token has g = 0.

    head = CopyHead(d_model)
    gate, probs = head(hidden, memory, token_items, mask)     # Float[B], Float[B, T]
    p_target = copy_prob(probs, token_items, target_index)    # Float[B]
"""

from __future__ import annotations

import math

import torch
from torch import nn


class CopyHead(nn.Module):
    """Pointer scores over item tokens and the copy gate, from the first-level decoder state."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model)
        self.gate = nn.Linear(d_model, 1)
        nn.init.constant_(self.gate.bias, -2.0)  # start mostly generative (g ~ 0.12)

    def forward(self, hidden: torch.Tensor, memory: torch.Tensor, token_items: torch.Tensor,
                mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """hidden Float[B, d], memory Float[B, T, d], token_items Long[B, T] (item index + 1, 0 = not
        an item), mask Bool[B, T] -> (gate Float[B], probs Float[B, T]: 0 off item tokens, rows sum
        to 1 where any item token exists)."""
        copyable = (token_items > 0) & mask
        scores = torch.einsum("bd,btd->bt", self.q(hidden), self.k(memory)) / math.sqrt(hidden.shape[-1])
        scores = scores.masked_fill(~copyable, float("-inf"))
        any_item = copyable.any(dim=1)
        probs = torch.softmax(torch.where(any_item[:, None], scores, torch.zeros_like(scores)), dim=1)
        probs = probs * copyable
        gate = torch.sigmoid(self.gate(hidden)).squeeze(-1) * any_item
        return gate, probs


def copy_prob(probs: torch.Tensor, token_items: torch.Tensor, target_index: torch.Tensor) -> torch.Tensor:
    """Float[B]: the copy distribution's mass on each row's target (dense index, Long[B]); an item
    that appears in several tokens collects all their mass."""
    return (probs * (token_items == (target_index + 1)[:, None])).sum(dim=1)
