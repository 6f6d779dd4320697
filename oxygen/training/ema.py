"""Exponential moving average (EMA) of a model's weights, for validation and the kept checkpoint.

After every optimiser step the shadow weights move toward the live ones,
    shadow <- d * shadow + (1 - d) * live,   d = min(decay, (1 + n) / (10 + n)) at update n,
so the early, fast-changing weights are forgotten quickly (the usual warm-up of the decay). Only
floating-point tensors (parameters and float buffers) are averaged; integer buffers follow the live
model. Validation runs with the shadow weights swapped in (`applied`), and the loop keeps the
shadow weights of the best epoch, so the model that is selected is the model that is saved.

    ema = Ema(model, decay=0.99)
    ...; opt.step(); ema.update()
    with ema.applied():
        metrics = validate(model)
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import Iterator

import torch


class Ema:
    """Shadow copy of `module`'s floating-point state, updated with `update()` after each step."""

    def __init__(self, module: torch.nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must lie in (0, 1), got {decay}; use 0.99-0.999, or turn EMA off")
        self.module, self.decay, self.updates = module, decay, 0
        self.shadow = {k: v.detach().clone() for k, v in module.state_dict().items() if v.is_floating_point()}

    def current_decay(self) -> float:
        """The decay used by the next update (warms up from 0.1 toward `decay`)."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self) -> None:
        """Move every shadow tensor toward the module's live value."""
        weight = 1.0 - self.current_decay()
        live = self.module.state_dict()
        for k, s in self.shadow.items():
            s.lerp_(live[k], weight)
        self.updates += 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The module's full state with the averaged tensors in place of the live ones (copies)."""
        state = {k: v.detach().clone() for k, v in self.module.state_dict().items()}
        state.update({k: v.clone() for k, v in self.shadow.items()})
        return state

    def copy_to_module(self) -> None:
        """Load the averaged weights into the module for good (the end of training)."""
        self.module.load_state_dict(self.shadow, strict=False)

    @contextmanager
    def applied(self) -> Iterator[torch.nn.Module]:
        """Temporarily swap the averaged weights in (e.g. for validation), then restore the live ones."""
        live = {k: v.detach().clone() for k, v in self.module.state_dict().items() if k in self.shadow}
        self.module.load_state_dict(self.shadow, strict=False)
        try:
            yield self.module
        finally:
            self.module.load_state_dict(live, strict=False)


def averaged(ema: Ema | None):
    """`ema.applied()` when EMA is on, else a no-op context: the weights validation should see."""
    return ema.applied() if ema is not None else nullcontext()


def make_ema(module: torch.nn.Module, decay: float) -> Ema | None:
    """An `Ema` of `module` when `decay` > 0 (the config's `ema_decay`), else None (EMA off)."""
    return Ema(module, decay) if decay > 0 else None
