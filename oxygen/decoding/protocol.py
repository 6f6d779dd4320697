"""The interface between a generative model and the decoding engine.

The engine never sees model internals. It calls `start` once per batch of requests (encoder run
once, cross-attention keys/values computed once per request and shared by all of its beams, the
decoder prefix BOS + instruction token cached), then alternates `step` (score the codes of one SID
level for every live beam, extending the self-attention KV cache by one position) and `select`
(keep / duplicate beams after the top-k: gathers only the small self-attention cache and the
beam -> request map, never the cross-attention K/V).

`MixtureModel` adds `item_mixture`: the model's own copy distribution over the items in its
input (None when it has no copy head), which the one decode path (oxygen.decoding.decode) mixes
into the beam.

Shapes: B = requests, N = live beams over all requests, K_l = codes at SID level l.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch


class StepModel(Protocol):
    """What a model must offer to be decoded by `oxygen.decoding`."""

    codebook_sizes: tuple[int, ...]  # K_l for each SID level l = 0..L-1

    def start(self, batch: Any) -> Any:
        """Encode B requests; return a decoder state with N = B beams (beam i belongs to request i)."""
        ...

    def step(self, state: Any, codes: torch.Tensor | None, level: int) -> tuple[torch.Tensor, Any]:
        """Feed each beam's code of level `level - 1` (Long[N]; None at level 0) and return
        (log-probabilities Float[N, K_level] over the codes of `level`, the extended state)."""
        ...

    def select(self, state: Any, index: torch.Tensor) -> Any:
        """The state of beams `index` (Long[N']: each new beam copies old beam index[i])."""
        ...


class ResumableModel(StepModel, Protocol):
    """A StepModel that can start some of its requests again from a state it already encoded
    (need slots decode a request's rows once more in other pools, oxygen.decoding.decode)."""

    def restart(self, state: Any, rows: torch.Tensor) -> Any:
        """The state `start` would return for requests `rows` Long[B'] of the batch that gave the
        fresh `state` (rows may repeat), without running the encoder again."""
        ...


class MixtureModel(StepModel, Protocol):
    """A StepModel that may carry its own second expert for re-ranking (oxygen.decoding.rerank)."""

    def item_mixture(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """The model's copy distribution over the requests' encoder items: (gate Float[B], token
        item index + 1 Long[B, T] with 0 = no item, probs Float[B, T]); None when it has none."""
        ...
