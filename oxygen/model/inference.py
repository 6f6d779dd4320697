"""The StepModel inference API of OxygenModel (oxygen.decoding.protocol): start / step / select
with a self-attention KV cache and cross-attention K/V computed once per request.

Shapes: B requests, N live beams, T encoder length, t decoder positions so far, h heads, dh head dim.
Beam layout: beams are contiguous per request with equal counts (row = [0]*n + [1]*n + ...), which
the decoding engine guarantees and `select` checks. Cross-attention then reshapes the N beam
queries to [B, h, n, dh] against the request's K/V Float[B, h, T, dh]: the K/V are never copied
per beam (see oxygen.model.attention). Only the self-attention cache Float[N, h, t, dh], the last
hidden state Float[N, d] and `row` are gathered by `select`.

    state = model.start(batch)                       # N = B beams
    logp, state = model.step(state, None, 0)         # Float[B, K_0]
    state = model.select(state, index)               # e.g. top beams per request, contiguous
    logp, state = model.step(state, codes, 1)        # codes Long[N] of level 0 -> Float[N, K_1]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from oxygen.data.batch import ModelBatch
from oxygen.model.attention import KV

if TYPE_CHECKING:
    from oxygen.model.encdec import OxygenModel


@dataclass
class DecoderState:
    """Decoder state of N beams over B requests.

    cross    per decoder layer, cross-attention (K, V) Float[B, h, T, dh] (shared by a request's beams)
    mem_mask Bool[B, T] encoder key mask
    cache    per decoder layer, self-attention (k, v) Float[N, h, t, dh]
    hidden   Float[N, d] final-LN decoder output at the last fed position (feeds the next head)
    row      Long[N] beam -> request
    beams    beams per request (N // B) when the layout is contiguous and equal, else 0
    level    the next SID level `step` may score
    """

    cross: list[KV]
    mem_mask: torch.Tensor
    cache: list[KV]
    hidden: torch.Tensor
    row: torch.Tensor
    beams: int
    level: int

    @property
    def num_beams(self) -> int:
        """N, the number of live beams."""
        return int(self.row.shape[0])


def start(model: "OxygenModel", batch: ModelBatch) -> DecoderState:
    """Run the encoder once, each decoder layer's cross K/V once, and the decoder prefix."""
    cond = model.conditions(batch)
    memory, mask, _ = model.encode(batch, cond)
    x = model.prefix(batch, cond)
    cross, cache = [], []
    for block in model.decoder:
        kv = block.memory_kv(memory)
        x, self_kv, _ = block(x, kv, mask)
        cross.append(kv)
        cache.append(self_kv)
    hidden = model.dec_ln(x[:, -1])
    row = torch.arange(len(batch), device=hidden.device)
    return DecoderState(cross, mask, cache, hidden, row, 1, 0)


def step(model: "OxygenModel", state: DecoderState, codes: torch.Tensor | None,
         level: int) -> tuple[torch.Tensor, DecoderState]:
    """Log-probs Float[N, K_level] of the codes of `level`, feeding `codes` Long[N] of level-1."""
    L = len(model.codebook_sizes)
    if level != state.level or not 0 <= level < L:
        raise ValueError(f"step(level={level}) but the state expects level {state.level} of {L} levels")
    if level == 0:
        if codes is not None:
            raise ValueError("step at level 0 takes codes=None (nothing has been generated yet)")
        logp = torch.log_softmax(model.heads[0](state.hidden), dim=-1)
        return logp, DecoderState(state.cross, state.mem_mask, state.cache, state.hidden, state.row,
                                  state.beams, 1)
    if codes is None or codes.shape != (state.num_beams,):
        raise ValueError(f"step(level={level}) needs codes Long[{state.num_beams}] of level {level - 1}")
    if state.beams == 0:
        raise ValueError("beams must be contiguous per request with equal counts (row = [0]*n + [1]*n + ...); "
                         "reorder the select index by request")
    x = model.code_tokens(codes[:, None], level - 1)
    cache = []
    for block, kv, self_kv in zip(model.decoder, state.cross, state.cache):
        x, new_kv, _ = block(x, kv, state.mem_mask, cache=self_kv, beams=state.beams)
        cache.append(new_kv)
    hidden = model.dec_ln(x[:, 0])
    logp = torch.log_softmax(model.heads[level](hidden), dim=-1)
    return logp, DecoderState(state.cross, state.mem_mask, cache, hidden, state.row, state.beams, level + 1)


def _beams(row: torch.Tensor, n_requests: int) -> int:
    """n when row == [0]*n + [1]*n + ... + [B-1]*n, else 0."""
    n = row.shape[0] // n_requests if n_requests else 0
    if n == 0 or n * n_requests != row.shape[0]:
        return 0
    expect = torch.arange(n_requests, device=row.device).repeat_interleave(n)
    return n if torch.equal(row, expect) else 0


def select(state: DecoderState, index: torch.Tensor) -> DecoderState:
    """Beams `index` Long[N'] of `state` (new beam i copies old beam index[i]); cross K/V untouched."""
    if index.dim() != 1:
        raise ValueError(f"select index must be Long[N'], got shape {tuple(index.shape)}")
    cache = [(k.index_select(0, index), v.index_select(0, index)) for k, v in state.cache]
    row = state.row.index_select(0, index)
    return DecoderState(state.cross, state.mem_mask, cache, state.hidden.index_select(0, index), row,
                        _beams(row, state.mem_mask.shape[0]), state.level)
