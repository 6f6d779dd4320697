"""The device fields every job that runs a model shares (the settings of oxygen.device)."""

from __future__ import annotations

from oxygen.config.loading import StrictConfig
from oxygen.device import DeviceSetting, PrecisionSetting


class OnDevice(StrictConfig):
    """Where a job's model runs: `device` auto (CUDA when this process sees a GPU, else the CPU) |
    cpu | cuda (an error without a GPU, never a silent CPU fallback); `precision` auto (bf16
    autocast on CUDA, fp32 on the CPU) | fp32 | bf16."""

    device: DeviceSetting = "auto"
    precision: PrecisionSetting = "auto"
