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
bundle's guidance.json chosen on valid). It doubles the model's work for the chunk it decodes.

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
    request or Float[B], one per request; `levels` the SID levels guided. Its decoder state holds
    2B requests: the B requests as given, then the same B with the default instruction; the beams
    of both halves stay aligned (the model's state must map beams to requests in `row`)."""

    def __init__(self, model: Any, weight: float | torch.Tensor, levels: tuple[int, ...] = LEVELS) -> None:
        self.model, self.weight, self.levels = model, weight, levels

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def start(self, batch: ModelBatch) -> Any:
        """The wrapped model's start on [batch; batch with the default instruction]."""
        plain = unconditioned(batch)
        both = ModelBatch(**{f.name: torch.cat([getattr(batch, f.name), getattr(plain, f.name)]) for f in fields(batch)})
        return self.model.start(both)

    def step(self, state: Any, codes: torch.Tensor | None, level: int) -> tuple[torch.Tensor, Any]:
        """Guided log-probs Float[N, K_level] of the N beams (codes Long[N] fed to both halves)."""
        rows = state.row[: state.num_beams // 2]
        logp, state = self.model.step(state, None if codes is None else torch.cat([codes, codes]), level)
        cond, plain = logp.chunk(2)
        if level not in self.levels:
            return cond, state
        w = self.weight if not torch.is_tensor(self.weight) else self.weight.to(cond.device, cond.dtype)[rows][:, None]
        return torch.log_softmax((1 + w) * cond - w * plain, dim=-1), state

    def select(self, state: Any, index: torch.Tensor) -> Any:
        """Beams `index` Long[N'] of both halves."""
        return self.model.select(state, torch.cat([index, index + state.num_beams // 2]))


def request_weights(guidance: dict[str, float], names: list[str], pool: torch.Tensor,
                    gated: frozenset[str] = frozenset(), gates: Sequence[bool] | None = None) -> torch.Tensor | None:
    """Float[B]: each request's weight from its pool's (`pool` Long[B] indexes `names`), 0 for a
    request of a `gated` pool whose gate (`gates`, one per request; None: all off) is off; None
    when every weight is 0 (nothing to guide)."""
    on = [bool(g) for g in gates] if gates is not None else [False] * len(pool)
    w = torch.tensor([float(guidance.get(names[int(p)], 0.0)) if names[int(p)] not in gated or on[b] else 0.0
                      for b, p in enumerate(pool)])
    return w if bool(w.any()) else None
