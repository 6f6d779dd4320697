"""THE loop: loss falls, early stopping keeps the best weights, a fixed-epoch run keeps the last
(or EMA) weights, selection may minimise a train metric, and a run resumed from any epoch's
LoopState ends exactly where the uninterrupted run ends."""

from __future__ import annotations

import pytest
import torch

from oxygen.training.curves import save_curves
from oxygen.training.loop import LoopConfig, batch_order, fit
from tests.training.toy import ToyModel, toy_data, toy_trainable


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

    res = fit(toy_trainable(model, data), LoopConfig(epochs=6, batch_size=16, patience=3, select="valid_hr@10"), validate)
    assert res.best_epoch == 2 and len(res.history) == 5  # stopped after 3 epochs without gain
    assert res.best_valid == {"hr@10": 0.5}
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    for k, v in model.state_dict().items():
        assert torch.equal(v, seen[1][k])  # the best epoch's weights are restored
    png = save_curves(res.history, tmp_path / "curve.png")
    assert png.stat().st_size > 1000 and png.with_suffix(".json").exists()


def test_fixed_epochs_keep_the_last_or_averaged_weights():
    data, _ = toy_data()
    for ema in (0.0, 0.9):
        torch.manual_seed(0)
        model = ToyModel()
        res = fit(toy_trainable(model, data, epochs=3), LoopConfig(epochs=3, batch_size=16, ema_decay=ema))
        assert len(res.history) == 3 and res.best_epoch == 3 and not model.training
    torch.manual_seed(0)
    live = ToyModel()
    fit(toy_trainable(live, data, epochs=3), LoopConfig(epochs=3, batch_size=16))
    assert not torch.allclose(live.head.weight, model.head.weight)  # the EMA run kept the average


def test_select_can_minimise_a_train_metric_and_names_a_missing_one():
    data, _ = toy_data()
    torch.manual_seed(0)
    res = fit(toy_trainable(ToyModel(), data), LoopConfig(epochs=4, batch_size=16, select="train_loss", maximize=False))
    losses = [h["train_loss"] for h in res.history]
    assert res.best_epoch == 1 + losses.index(min(losses))
    with pytest.raises(ValueError, match="valid_nope"):
        fit(toy_trainable(ToyModel(), data), LoopConfig(epochs=1, batch_size=16, select="valid_nope"))


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_resume_from_any_epoch_matches_the_uninterrupted_run(ema):
    data, _ = toy_data()
    cfg = LoopConfig(epochs=4, batch_size=16, ema_decay=ema, patience=10, select="valid_score")

    def run(resume=None):
        torch.manual_seed(0)
        model, states = ToyModel(), []
        validate = lambda m: {"score": -float(m.head.weight.abs().sum())}  # noqa: E731
        res = fit(toy_trainable(model, data, epochs=4), cfg, validate, on_epoch=states.append, resume=resume)
        return model, res, states

    full, res, states = run()
    assert [s.epoch for s in states] == [1, 2, 3, 4] and states[-1].done and not states[1].done
    for snapshot in states[:3]:
        model, res2, _ = run(resume=snapshot)
        assert [h["train_loss"] for h in res2.history] == [h["train_loss"] for h in res.history]
        assert res2.best_epoch == res.best_epoch
        for k, v in model.state_dict().items():
            assert torch.equal(v, full.state_dict()[k]), k
