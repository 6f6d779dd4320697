"""The StepModel inference API of OxygenModel (oxygen.decoding.protocol): start / step / select
with a self-attention KV cache and cross-attention K/V computed once per request.

Shapes: B requests, N live beams, T encoder length, t decoder positions so far, h heads, dh head dim.
Beam layout: beams are contiguous per request with equal counts (row = [0]*n + [1]*n + ...), which
the decoding engine guarantees and `select` checks. Cross-attention then reshapes the N beam
queries to [B, h, n, dh] against the request's K/V Float[B, h, T, dh], and self-attention does the
same against the decoder prefix's K/V Float[B, h, P, dh] (identical for a request's beams): neither
is ever copied per beam (see oxygen.model.attention). Only the generated positions' self-attention
K/V Float[N, j, h, dh], the last hidden state Float[N, d] and `row` are gathered by `select`.

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
    prefix   per decoder layer, self-attention (K, V) of the P prefix positions Float[B, h, P, dh]
             (shared by a request's beams)
    gen      per decoder layer, self-attention (k, v) of the j generated positions Float[N, j, h, dh]
    hidden   Float[N, d] final-LN decoder output at the last fed position (feeds the next head)
    row      Long[N] beam -> request
    beams    beams per request (N // B) when the layout is contiguous and equal, else 0
    level    the next SID level `step` may score
    """

    cross: list[KV]
    mem_mask: torch.Tensor
    prefix: list[KV]
    gen: list[KV]
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
    cross, prefix = [], []
    for block in model.decoder:
        kv = block.memory_kv(memory)
        x, self_kv, _ = block(x, kv, mask)
        cross.append(kv)
        prefix.append(self_kv)
    hidden = model.dec_ln(x[:, -1])
    B, h, _, dh = prefix[0][0].shape
    empty = hidden.new_zeros(B, 0, h, dh)
    row = torch.arange(B, device=hidden.device)
    return DecoderState(cross, mask, prefix, [(empty, empty)] * len(prefix), hidden, row, 1, 0)


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
        return logp, DecoderState(state.cross, state.mem_mask, state.prefix, state.gen, state.hidden,
                                  state.row, state.beams, 1)
    if codes is None or codes.shape != (state.num_beams,):
        raise ValueError(f"step(level={level}) needs codes Long[{state.num_beams}] of level {level - 1}")
    if state.beams == 0:
        raise ValueError("beams must be contiguous per request with equal counts (row = [0]*n + [1]*n + ...); "
                         "reorder the select index by request")
    x = model.code_tokens(codes[:, None], level - 1)[:, 0]
    gen = []
    for block, kv, pre, g in zip(model.decoder, state.cross, state.prefix, state.gen):
        x, new = block.step(x, kv, state.mem_mask, pre, g, state.beams)
        gen.append(new)
    hidden = model.dec_ln(x)
    logp = torch.log_softmax(model.heads[level](hidden), dim=-1)
    return logp, DecoderState(state.cross, state.mem_mask, state.prefix, gen, hidden, state.row, state.beams,
                              level + 1)


def requests(state: DecoderState, rows: torch.Tensor) -> DecoderState:
    """A fresh state (one beam each, before any step) of the requests `rows` Long[B'] of the fresh
    `state`: their encoder cross K/V, mask, decoder prefix and hidden gathered, nothing run again.
    A request may be taken more than once."""
    if state.level != 0 or state.num_beams != state.mem_mask.shape[0]:
        raise ValueError("requests() takes the state `start` returned, before any step or select")
    rows = rows.to(state.row.device)

    def take(kvs: list[KV]) -> list[KV]:
        return [(k.index_select(0, rows), v.index_select(0, rows)) for k, v in kvs]

    return DecoderState(take(state.cross), state.mem_mask.index_select(0, rows), take(state.prefix),
                        take(state.gen), state.hidden.index_select(0, rows),
                        torch.arange(len(rows), device=rows.device), 1, 0)


def _beams(row: torch.Tensor, n_requests: int) -> int:
    """n when row == [0]*n + [1]*n + ... + [B-1]*n, else 0."""
    n = row.shape[0] // n_requests if n_requests else 0
    if n == 0 or n * n_requests != row.shape[0]:
        return 0
    expect = torch.arange(n_requests, device=row.device).repeat_interleave(n)
    return n if torch.equal(row, expect) else 0


def select(state: DecoderState, index: torch.Tensor) -> DecoderState:
    """Beams `index` Long[N'] of `state` (new beam i copies old beam index[i]); the per-request
    cross and prefix K/V are untouched."""
    if index.dim() != 1:
        raise ValueError(f"select index must be Long[N'], got shape {tuple(index.shape)}")
    gen = [(_rows(k, index), _rows(v, index)) for k, v in state.gen]
    row = state.row.index_select(0, index)
    return DecoderState(state.cross, state.mem_mask, state.prefix, gen, state.hidden.index_select(0, index),
                        row, _beams(row, state.mem_mask.shape[0]), state.level)


def _rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x[index] for Float[N, ...] through a 2-D view (CPU index_select is much faster on 2-D)."""
    n, rest = x.shape[0], x.shape[1:]
    return x.reshape(n, rest.numel()).index_select(0, index).view(index.shape[0], *rest)
