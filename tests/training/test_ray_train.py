"""Ray Train with 2 CPU workers (DDP, gloo) runs THE loop: it matches the single-process loop step
for step, and a second run with the same storage and name resumes from the last checkpoint."""

from __future__ import annotations

import copy
from functools import partial

import pytest
import ray
import torch

from oxygen.training.loop import LoopConfig, adamw_cosine, fit
from oxygen.training.ray_train import RayJob, fit_ray
from tests.training.toy import ToyModel, toy_data, toy_trainable


def _optimizer(model, steps: int):
    return adamw_cosine(model, 0.05, 0.01, 0, steps)


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _job(data, init, loop: LoopConfig) -> RayJob:
    steps = loop.epochs * (len(data) // loop.batch_size)
    return RayJob(factory=ToyModel, init_state=init, data=data, optimizer=partial(_optimizer, steps=steps), loop=loop)


@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
def test_two_workers_match_single_process(local_ray, tmp_path, ema_decay):
    data, _ = toy_data(n_rows=64)
    loop = LoopConfig(epochs=2, batch_size=16, ema_decay=ema_decay, grad_clip=1.0)
    torch.manual_seed(0)
    init = copy.deepcopy(ToyModel().state_dict())
    model = ToyModel()
    model.load_state_dict(init)
    fit(toy_trainable(model, data, epochs=2), loop)
    result, got = fit_ray(_job(data, init, loop), num_workers=2, storage=tmp_path)
    assert [h["epoch"] for h in result.history] == [1, 2]
    for k, v in model.state_dict().items():
        assert torch.allclose(got[k], v, atol=1e-5), k
    assert not torch.equal(got["head.weight"], init["head.weight"])  # it did train


class FailOnce:
    """Validation that raises at epoch `at` unless `ok` (a file) exists: the first run dies there."""

    def __init__(self, at: int, ok):
        self.at, self.ok, self.calls = at, ok, 0

    def __call__(self, model) -> dict[str, float]:
        self.calls += 1
        if self.calls >= self.at and not self.ok.exists():
            raise RuntimeError("simulated crash")
        return {"score": -float(model.head.weight.abs().sum())}


def test_a_crashed_run_resumes_from_its_last_checkpoint(local_ray, tmp_path):
    data, _ = toy_data(n_rows=64)
    torch.manual_seed(0)
    init = copy.deepcopy(ToyModel().state_dict())
    loop = LoopConfig(epochs=3, batch_size=16, patience=5, select="valid_score")
    job = _job(data, init, loop)
    job.validate = FailOnce(at=2, ok=tmp_path / "ok")
    with pytest.raises(Exception, match="simulated crash"):
        fit_ray(job, 2, tmp_path, name="run")                       # dies in epoch 2, after checkpoint 1
    (tmp_path / "ok").touch()
    resumed, got = fit_ray(job, 2, tmp_path, name="run")
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    model = ToyModel()  # the uninterrupted run, in one process (which 2 workers match step for step)
    model.load_state_dict(init)
    want = fit(toy_trainable(model, data, epochs=3), loop, FailOnce(at=99, ok=tmp_path / "ok"))
    assert [h["valid_score"] for h in resumed.history] == pytest.approx([h["valid_score"] for h in want.history], abs=1e-4)
    for k, v in model.state_dict().items():
        assert torch.allclose(got[k], v, atol=1e-5), k


@pytest.mark.parametrize("device, gpus, address, expect", [
    ("cpu", 8.0, None, False), ("auto", 0.0, None, False), ("auto", 1.0, None, False), ("auto", 2.0, None, True),
    ("cuda", 2.0, None, True), ("cuda:0", 4.0, None, True), ("cuda", 0.0, "ray://head:10001", True)])
def test_workers_take_a_gpu_by_the_device_setting(monkeypatch, device, gpus, address, expect):
    """cpu never; auto when the cluster has a GPU per worker (2 workers here); cuda always on a
    cluster (its autoscaler may still add GPU nodes)."""
    import oxygen.training.ray_train as rt

    monkeypatch.setattr(rt.ray, "cluster_resources", lambda: {"CPU": 4.0, "GPU": gpus})
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    if address:
        monkeypatch.setenv("RAY_ADDRESS", address)
    assert rt.gpu_workers(device, 2) is expect


def test_cuda_workers_on_a_local_ray_without_gpus_are_a_clear_error(monkeypatch):
    import oxygen.training.ray_train as rt
    from oxygen.device import DeviceError

    monkeypatch.setattr(rt.ray, "cluster_resources", lambda: {"CPU": 4.0})
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(DeviceError, match=r"needs 2 GPU\(s\) for 2 Ray Train worker\(s\), one each, but this Ray has 0"):
        rt.gpu_workers("cuda", 2)
