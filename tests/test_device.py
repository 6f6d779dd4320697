"""oxygen.device: the one device setting (auto picks the CPU on this machine, `cuda` without a GPU is
a clear error, never a silent fallback), the precision setting's autocast, moving nests of tensors,
and bf16 autocast agreeing with fp32 on a tiny model (the check a GPU run relies on, here on the CPU)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from oxygen import device as dv
from oxygen.decoding.generate import generate_items
from oxygen.model import OxygenModel
from oxygen.semantic_ids.trie import PrefixTrie
from tests.model.helpers import random_batch, tiny_config


def test_auto_picks_the_cpu_on_this_machine():
    assert not torch.cuda.is_available()  # the machine the suite runs on has no GPU
    assert dv.resolve_device("auto") == torch.device("cpu")
    assert dv.resolve_device(None) == torch.device("cpu")
    assert dv.resolve_device("cpu") == torch.device("cpu")


def test_auto_picks_cuda_when_a_gpu_is_visible(monkeypatch):
    monkeypatch.setattr(dv, "cuda_available", lambda: True)
    assert dv.resolve_device("auto") == torch.device("cuda")


@pytest.mark.parametrize("setting", ["cuda", "cuda:0", "CUDA"])
def test_cuda_without_a_gpu_is_a_clear_error(setting):
    with pytest.raises(dv.DeviceError) as e:
        dv.resolve_device(setting)
    msg = str(e.value)
    assert repr(setting) in msg and "no CUDA GPU" in msg and "auto or cpu" in msg


def test_a_gpu_index_beyond_the_visible_ones_is_refused(monkeypatch):
    monkeypatch.setattr(dv, "cuda_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert dv.resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(dv.DeviceError, match="only 1 GPU"):
        dv.resolve_device("cuda:3")


def test_unknown_settings_are_refused():
    with pytest.raises(dv.DeviceError, match="unknown device 'tpu'"):
        dv.resolve_device("tpu")
    with pytest.raises(dv.DeviceError, match="unknown precision 'fp8'"):
        dv.autocast_dtype("cpu", "fp8")


def test_precision_auto_is_bf16_on_cuda_and_fp32_on_the_cpu():
    assert dv.autocast_dtype("cpu", "auto") is None
    assert dv.autocast_dtype("cuda", "auto") is torch.bfloat16
    assert dv.autocast_dtype("cuda", "fp32") is None
    assert dv.autocast_dtype("cpu", "bf16") is torch.bfloat16
    with dv.autocast("cpu", "auto"):
        assert not torch.is_autocast_enabled("cpu")
    with dv.autocast("cpu", "bf16"):
        assert torch.is_autocast_enabled("cpu")
        assert (torch.ones(2, 3) @ torch.ones(3, 2)).dtype is torch.bfloat16


@dataclass
class Pair:
    x: torch.Tensor
    extra: dict


def test_move_reaches_every_tensor_of_a_nest():
    nest = {"a": torch.ones(2), "b": [torch.zeros(1), (torch.ones(1), 3)], "c": Pair(torch.ones(1), {"y": torch.ones(1)})}
    out = dv.move(nest, "meta")
    assert out["a"].is_meta and out["b"][0].is_meta and out["b"][1][0].is_meta and out["b"][1][1] == 3
    assert out["c"].x.is_meta and out["c"].extra["y"].is_meta
    assert not nest["a"].is_meta  # the original is untouched


def test_module_device_follows_the_parameters_and_wrappers():
    m = torch.nn.Linear(2, 2)
    assert dv.module_device(m) == torch.device("cpu")
    assert dv.module_device(m.to("meta")) == torch.device("meta")

    class Wrapper:
        model = torch.nn.Linear(1, 1).to("meta")
    assert dv.module_device(Wrapper()) == torch.device("meta")
    assert dv.module_device(object()) == torch.device("cpu")


def test_bf16_autocast_agrees_with_fp32_on_a_tiny_model():
    """The loss within 2% and the decoded top-5 mostly the same under bf16 autocast (CPU here; the
    same autocast runs on CUDA under precision auto)."""
    torch.manual_seed(0)
    cfg = tiny_config(codebook_sizes=(6, 5, 4), d_model=32, d_ff=64)
    model = OxygenModel(cfg).eval()
    batch = random_batch(cfg, B=8)
    with torch.no_grad():
        fp32 = model(batch).loss
        with dv.autocast("cpu", "bf16"):
            bf16 = model(batch).loss
    assert abs(float(bf16) - float(fp32)) / float(fp32) < 0.02
    codes = np.array(np.meshgrid(*[np.arange(k) for k in cfg.codebook_sizes], indexing="ij")).reshape(3, -1).T
    trie = PrefixTrie(codes, np.arange(len(codes)))
    a, sa = generate_items(model, batch, [trie], beam=10, k=5, precision="fp32")
    b, sb = generate_items(model, batch, [trie], beam=10, k=5, precision="bf16")
    assert sb.dtype == torch.float32
    overlap = np.mean([len(set(x) & set(y)) / 5 for x, y in zip(a.tolist(), b.tolist())])
    assert overlap >= 0.8
    assert torch.allclose(sa[:, 0], sb[:, 0], atol=0.05)


def test_jobs_take_the_device_settings_and_refuse_unknown_ones():
    from oxygen.config import ConfigError, PostTrainConfig, RankerConfig, SASRecConfig, TrainConfig, load_config

    assert TrainConfig().device == "auto" and TrainConfig().precision == "auto"
    assert PostTrainConfig(device="cuda", precision="bf16").device == "cuda"
    assert RankerConfig(device="cpu").device == "cpu" and SASRecConfig().device == "auto"
    with pytest.raises(ConfigError, match="device"):
        load_config(None, TrainConfig, sets=["device=tpu"])


def test_a_bundle_or_a_service_asked_for_cuda_without_a_gpu_says_so(tmp_path):
    from bench.tiny_bundle import make_bundle
    from oxygen.model.bundle import Bundle
    from oxygen.serving.app import AppArgs, make_core

    make_bundle(tmp_path / "b")
    assert Bundle.load(tmp_path / "b", "auto").model.heads[0].weight.device == torch.device("cpu")
    with pytest.raises(dv.DeviceError, match="no CUDA GPU"):
        Bundle.load(tmp_path / "b", "cuda")
    with pytest.raises(dv.DeviceError, match="no CUDA GPU"):
        make_core(AppArgs(bundle=str(tmp_path / "b"), device="cuda", encode_queries=False))


def test_a_cuda_service_asks_ray_for_a_gpu_per_replica():
    from oxygen.serving.app import AppArgs, _scaling

    assert _scaling(AppArgs(bundle="b", device="cuda"))["ray_actor_options"] == {"num_cpus": 1, "num_gpus": 1}
    assert "ray_actor_options" not in _scaling(AppArgs(bundle="b", device="cpu"))
    assert "ray_actor_options" not in _scaling(AppArgs(bundle="b"))  # auto, no Ray cluster with a GPU here
