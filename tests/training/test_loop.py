"""The plain loop: loss falls, early stopping keeps the best weights, curves are written."""

from __future__ import annotations

import torch

from oxygen.config import TrainConfig
from oxygen.training.curves import save_curves
from oxygen.training.loop import batch_order, fit
from tests.training.toy import ToyModel, toy_data


def test_batch_order_covers_each_row_once():
    idx = torch.cat(list(batch_order(10, 3, torch.Generator().manual_seed(0))))
    assert sorted(idx.tolist()) == list(range(10))


def test_fit_learns_and_keeps_best(tmp_path):
    data, _ = toy_data()
    torch.manual_seed(0)
    model = ToyModel()
    scores = iter([0.1, 0.5, 0.2, 0.3, 0.4, 0.9])
    seen = []

    def validate(m):
        seen.append({k: v.clone() for k, v in m.state_dict().items()})
        return {"hr@10": next(scores)}

    res = fit(model, data, validate, TrainConfig(epochs=6, batch_size=16, lr=0.05, warmup_steps=0, patience=3))
    assert res.best_epoch == 2 and len(res.history) == 5  # stopped after 3 epochs without gain
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    for k, v in model.state_dict().items():
        assert torch.equal(v, seen[1][k])  # the best epoch's weights are restored
    png = save_curves(res.history, tmp_path / "curve.png")
    assert png.stat().st_size > 1000 and png.with_suffix(".json").exists()
