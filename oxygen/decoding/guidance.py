"""Instruction guidance: decoding that leans more on, or less on, the reasoning instruction.

Every beam is scored twice, with its request's instruction (c) and with the learnable default
instruction (u), and decoding follows log_softmax((1 + w) c - w u) at the guided SID levels, as
classifier-free guidance does. w = 0 is the plain model; w > 0 sharpens what the instruction adds;
-1 < w < 0 interpolates towards the model's own answer without the instruction (on the default
shop world a model trained with generated instructions keeps the interest rows it would otherwise
lose at w = -0.15, docs/benchmarks.d/instructions.md G). A request whose instruction is already the
default scores c = u, so any w leaves it as it is.

`Guided` wraps a StepModel, so the one decode path (trie constraint, pools, re-rank) is unchanged;
`Decoder` wraps its model in it when a request's pool has a weight (`Decoder.guidance`, the
bundle's guidance.json chosen on valid). It doubles the model's work for the requests it guides
(only those get a twin with the default instruction), not for the rest of the chunk.

Gated guidance (`Decoder.gated`, pools whose weight is gated): a request of such a pool is guided
only when its gate is on, i.e. its stored instruction states an open need (a need whose category
the user's history does not hold: `InstructionRecord.gate`, written by the generator); the others
decode as trained. On the demo shop world that gate finds the rows a contextual need explains (58%
of the gated rows, 3% of the others) and gated guidance lifts them without a loss elsewhere
(docs/benchmarks.d/instructions.md, E3).

    model = Guided(bundle.model, torch.tensor([0.0, -0.15]))     # one weight per request, all levels
    out = generate_items(model, batch, index, beam=30, k=10)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields, replace
from typing import Any

import torch

from oxygen.data.batch import ModelBatch

LEVELS = (0, 1, 2)


def unconditioned(batch: ModelBatch) -> ModelBatch:
    """`batch` with every request's instruction replaced by the learnable default."""
    return replace(batch, instr_emb=torch.zeros_like(batch.instr_emb), instr_mask=torch.zeros_like(batch.instr_mask))


class Guided:
    """A StepModel that decodes `model` with instruction guidance: `weight` is one float for every
    request or Float[B], one per request; `levels` the SID levels guided. Only the G requests with
    a nonzero weight get a twin with the default instruction: the decoder state holds B + G
    requests, the B as given, then the G twins (in request order), and the twins' beams follow
    their requests' beams through every select. A request with weight 0 costs what it costs
    unguided. The model's state must keep beams contiguous per request with equal counts (`row`)."""

    def __init__(self, model: Any, weight: float | torch.Tensor, levels: tuple[int, ...] = LEVELS) -> None:
        self.model, self.weight, self.levels = model, weight, levels
        self.requests, self.twins = 0, torch.zeros(0, dtype=torch.long)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def start(self, batch: ModelBatch) -> Any:
        """The wrapped model's start on [batch; the guided requests with the default instruction]."""
        self.requests = len(batch)
        if torch.is_tensor(self.weight):
            guided = self.weight.detach().cpu() != 0
            if len(guided) != len(batch):
                raise ValueError(f"{len(guided)} guidance weights for {len(batch)} requests; give one per request")
        else:
            guided = torch.full((len(batch),), float(self.weight) != 0.0)
        self.twins = torch.nonzero(guided).flatten()
        if len(self.twins) == 0:
            return self.model.start(batch)
        plain = unconditioned(batch.select(self.twins.to(batch.instr_emb.device)))
        both = ModelBatch(**{f.name: torch.cat([getattr(batch, f.name), getattr(plain, f.name)]) for f in fields(batch)})
        return self.model.start(both)

    def _beams(self, state: Any) -> int:
        """Beams per request (equal for every request and twin)."""
        return state.num_beams // (self.requests + len(self.twins))

    def _twin_beams(self, n: int, device: torch.device) -> torch.Tensor:
        """Long[G * n]: the positions, among the first B * n beams, of the guided requests' beams."""
        return (self.twins.to(device)[:, None] * n + torch.arange(n, device=device)).flatten()

    def step(self, state: Any, codes: torch.Tensor | None, level: int) -> tuple[torch.Tensor, Any]:
        """Guided log-probs Float[N, K_level] of the N = B * n beams (the twins fed the same codes)."""
        n = self._beams(state)
        cut = self.requests * n
        pos = self._twin_beams(n, state.row.device)
        feed = None if codes is None else torch.cat([codes, codes[pos]])
        logp, state = self.model.step(state, feed, level)
        cond, plain = logp[:cut], logp[cut:]
        if level not in self.levels or len(self.twins) == 0:
            return cond, state
        w = self.weight if not torch.is_tensor(self.weight) else \
            self.weight.to(cond.device, cond.dtype)[self.twins.to(cond.device)].repeat_interleave(n)[:, None]
        out = cond.clone()
        out[pos] = torch.log_softmax((1 + w) * cond[pos] - w * plain, dim=-1)
        return out, state

    def select(self, state: Any, index: torch.Tensor) -> Any:
        """Beams `index` Long[N'] (over the B * n beams, contiguous per request), and their twins."""
        if len(self.twins) == 0:
            return self.model.select(state, index)
        n, n_new = self._beams(state), len(index) // self.requests
        pos = self._twin_beams(n_new, index.device)
        src = index[pos]  # each guided request's new beams come from its own old beams
        owner = self.twins.to(index.device).repeat_interleave(n_new)
        rank = torch.arange(len(self.twins), device=index.device).repeat_interleave(n_new)
        twin_src = self.requests * n + rank * n + (src - owner * n)
        return self.model.select(state, torch.cat([index, twin_src]))


def request_weights(guidance: dict[str, float], names: list[str], pool: torch.Tensor,
                    gated: frozenset[str] = frozenset(), gates: Sequence[bool] | None = None) -> torch.Tensor | None:
    """Float[B]: each request's weight from its pool's (`pool` Long[B] indexes `names`), 0 for a
    request of a `gated` pool whose gate (`gates`, one per request; None: all off) is off; None
    when every weight is 0 (nothing to guide)."""
    on = [bool(g) for g in gates] if gates is not None else [False] * len(pool)
    w = torch.tensor([applied_weight(guidance, gated, names[int(p)], on[b]) for b, p in enumerate(pool)])
    return w if bool(w.any()) else None


def applied_weight(guidance: dict[str, float], gated: frozenset[str], pool: str, gate: bool) -> float:
    """The weight a request of `pool` is decoded with: the pool's, or 0 in a gated pool when the
    request's gate is off."""
    return float(guidance.get(pool, 0.0)) if pool not in gated or gate else 0.0
