"""The one device setting: where tensors live and in which precision the matmuls run.

Every job that runs a model has `device: auto | cpu | cuda` (auto: CUDA when this process sees a
GPU, else the CPU) and `precision: auto | fp32 | bf16` (auto: bf16 autocast on CUDA, fp32 on the
CPU, where bf16 matmuls are slow). `resolve_device` turns the setting into a `torch.device` and
refuses `cuda` on a machine without one (no silent CPU fallback); `autocast` is the context the
training step and the decode path run their forward passes in. `move` puts a batch, a state dict
or any nest of them on a device once (not per step).

    dev = resolve_device("auto")                      # torch.device("cpu") here
    with autocast(dev, "auto"):
        loss = model(batch.to(dev)).loss
    state = move(optimizer.state_dict(), "cpu")       # a portable checkpoint
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import fields, is_dataclass, replace
from typing import Any, Literal

import torch

DeviceSetting = Literal["auto", "cpu", "cuda"]
PrecisionSetting = Literal["auto", "fp32", "bf16"]


class DeviceError(ValueError):
    """A device setting this machine cannot honour (e.g. `cuda` without a visible GPU)."""


def cuda_available() -> bool:
    """Whether this process sees a CUDA GPU (Ray hides GPUs from actors that did not ask for one)."""
    return torch.cuda.is_available()


def resolve_device(setting: str | torch.device | None = "auto") -> torch.device:
    """The torch.device of a setting: "auto" (or None) -> cuda when available else cpu; "cpu";
    "cuda" or "cuda:N" -> that GPU, a DeviceError naming the fix when there is none."""
    if isinstance(setting, torch.device):
        setting = str(setting)
    name = "auto" if setting is None else str(setting).strip().lower()
    if name == "auto":
        return torch.device("cuda" if cuda_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not cuda_available():
            raise DeviceError(f"device={setting!r} but this process sees no CUDA GPU (torch {torch.__version__}, "
                              f"CUDA build {torch.version.cuda}); run it on a GPU node (a Ray actor needs num_gpus >= 1), "
                              "or set device to auto or cpu")
        index = int(name.split(":")[1]) if ":" in name else None
        if index is not None and index >= torch.cuda.device_count():
            raise DeviceError(f"device={setting!r} but only {torch.cuda.device_count()} GPU(s) are visible; "
                              "pick cuda:0.. or set device to cuda")
        return torch.device(name)
    raise DeviceError(f"unknown device {setting!r}: use auto, cpu, cuda or cuda:N")


def ray_gpus_wanted(setting: str, needed: int, visible: float, on_cluster: bool, what: str) -> bool:
    """Whether Ray work on device `setting` asks Ray for GPUs, `needed` of them for `what`, when the
    Ray cluster shows `visible`: cpu -> no; auto -> when they are there; cuda -> yes, and a
    DeviceError when a local Ray (not `on_cluster`, whose autoscaler may still add GPU nodes) has
    too few."""
    kind = str(setting).split(":")[0]
    if kind == "cpu":
        return False
    if kind == "auto":
        return visible >= needed
    if kind != "cuda":
        raise DeviceError(f"unknown device {setting!r}: use auto, cpu or cuda")
    if visible < needed and not on_cluster:
        raise DeviceError(f"device={setting} needs {needed} GPU(s) for {what}, but this Ray has {visible:g}; "
                          "run on a GPU machine or cluster, or set device to auto or cpu")
    return True


def autocast_dtype(device: torch.device | str, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype of `precision` on `device` (None: plain fp32). auto: bf16 on CUDA only;
    bf16 on the CPU is honoured when asked for explicitly (slow; the agreement tests use it)."""
    device = torch.device(device)
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    raise DeviceError(f"unknown precision {precision!r}: use auto, fp32 or bf16")


def autocast(device: torch.device | str, precision: str = "auto") -> AbstractContextManager:
    """The context forward passes run in: torch.autocast to bf16 where `precision` asks for it on
    `device`, else a no-op (fp32)."""
    dtype = autocast_dtype(device, precision)
    if dtype is None:
        return nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


def module_device(module: Any) -> torch.device:
    """The device of a module's first parameter or buffer (cpu for a module without tensors or an
    object that is not a module, e.g. a test double)."""
    if isinstance(module, torch.nn.Module):
        for t in module.parameters():
            return t.device
        for t in module.buffers():
            return t.device
    inner = getattr(module, "model", None)
    return module_device(inner) if inner is not None and inner is not module else torch.device("cpu")


def move(obj: Any, device: torch.device | str) -> Any:
    """`obj` with every tensor on `device`: tensors, objects with `.to(device)` (ModelBatch),
    dataclasses, dicts, lists and tuples of them; anything else as it is."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if hasattr(obj, "to") and callable(obj.to) and not isinstance(obj, torch.nn.Module):
        return obj.to(device)
    if is_dataclass(obj) and not isinstance(obj, type):
        return replace(obj, **{f.name: move(getattr(obj, f.name), device) for f in fields(obj) if f.init})
    if isinstance(obj, dict):
        return {k: move(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(move(v, device) for v in obj)
    return obj
