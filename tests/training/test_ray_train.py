"""Ray Train with 2 CPU workers (DDP, gloo) matches the single-process loop step for step."""

from __future__ import annotations

import copy

import pytest
import ray
import torch

from oxygen.config import TrainConfig
from oxygen.training.ema import make_ema
from oxygen.training.loop import make_optimizer, run_epoch
from oxygen.training.ray_train import RayJob, fit_ray
from tests.training.toy import ToyModel, toy_data


def _single_process(init: dict, data, cfg: TrainConfig) -> dict:
    model = ToyModel()
    model.load_state_dict(init)
    opt, sched = make_optimizer(model, cfg, cfg.epochs * (len(data) // cfg.batch_size))
    gen, ema = torch.Generator().manual_seed(cfg.seed), make_ema(model, cfg.ema_decay)
    for _ in range(cfg.epochs):
        run_epoch(model, data, opt, sched, cfg, gen, ema=ema)
    return ema.state_dict() if ema is not None else model.state_dict()


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
def test_two_workers_match_single_process(local_ray, tmp_path, ema_decay):
    data, _ = toy_data(n_rows=64)
    cfg = TrainConfig(epochs=2, batch_size=16, lr=0.05, warmup_steps=0, threads=2, ema_decay=ema_decay)
    torch.manual_seed(0)
    init = copy.deepcopy(ToyModel().state_dict())
    want = _single_process(init, data, cfg)
    job = RayJob(factory=ToyModel, init_state=init, data=data, validate=None, cfg=cfg)
    result, got = fit_ray(job, num_workers=2, storage=tmp_path)
    assert result.history[-1]["epoch"] == 2
    for k in want:
        assert torch.allclose(got[k], want[k], atol=1e-5), k
    assert not torch.equal(got["head.weight"], init["head.weight"])  # it did train
