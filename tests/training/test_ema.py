"""EMA of the weights: the update matches a slow reference, `applied` restores the live weights,
and `fit` validates and keeps the averaged weights."""

from __future__ import annotations

import pytest
import torch

from oxygen.training.ema import Ema, make_ema
from oxygen.training.loop import LoopConfig, fit
from tests.training.toy import ToyModel, toy_data, toy_trainable


def _reference_ema(snapshots: list[dict[str, torch.Tensor]], init: dict[str, torch.Tensor],
                   decay: float) -> dict[str, torch.Tensor]:
    """Slow reference: shadow = d * shadow + (1 - d) * live, d = min(decay, (1 + n) / (10 + n))."""
    shadow = {k: v.clone().double() for k, v in init.items()}
    for n, live in enumerate(snapshots):
        d = min(decay, (1 + n) / (10 + n))
        shadow = {k: d * shadow[k] + (1 - d) * live[k].double() for k in shadow}
    return shadow


def test_update_matches_reference_and_applied_restores():
    torch.manual_seed(0)
    model = ToyModel()
    init = {k: v.clone() for k, v in model.state_dict().items()}
    ema, snapshots = Ema(model, decay=0.9), []
    for _ in range(30):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        ema.update()
    want = _reference_ema(snapshots, init, 0.9)
    live = {k: v.clone() for k, v in model.state_dict().items()}
    with ema.applied() as m:
        for k, v in m.state_dict().items():
            assert torch.allclose(v.double(), want[k], atol=1e-5), k
    for k, v in model.state_dict().items():
        assert torch.equal(v, live[k])  # live weights back after validation
    ema.copy_to_module()
    assert torch.allclose(model.state_dict()["head.weight"].double(), want["head.weight"], atol=1e-5)


def test_bad_decay_is_a_clear_error_and_zero_means_off():
    with pytest.raises(ValueError, match="EMA decay"):
        Ema(ToyModel(), decay=1.0)
    assert make_ema(ToyModel(), 0.0) is None


def _fit_rising(ema_decay: float) -> tuple[ToyModel, list[dict[str, torch.Tensor]]]:
    """fit 3 epochs on the toy data with a validation score that rises every epoch."""
    data, _ = toy_data()
    torch.manual_seed(0)
    model, seen = ToyModel(), []

    def validate(m):
        seen.append({k: v.clone() for k, v in m.state_dict().items()})
        return {"hr@10": float(len(seen))}

    torch.manual_seed(0)
    fit(toy_trainable(model, data, epochs=3), LoopConfig(epochs=3, batch_size=16, ema_decay=ema_decay, grad_clip=1.0,
                                                     select="valid_hr@10"), validate)
    return model, seen


def test_fit_validates_and_keeps_the_ema_weights():
    with_ema, seen = _fit_rising(0.9)
    live, _ = _fit_rising(0.0)  # same seed and batches: the live weights of the EMA run
    for k, v in with_ema.state_dict().items():
        assert torch.equal(v, seen[-1][k])  # what was validated is what is kept
    assert not torch.allclose(with_ema.state_dict()["head.weight"], live.state_dict()["head.weight"])
