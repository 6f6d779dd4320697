"""The device a benchmark runs on: its measured matmul peak (what MFU and "% of peak" are fractions
of) and a synchronise that makes wall-clock timings of CUDA work honest (kernels run asynchronously:
without it a timer measures the launch, not the work).

    dev = torch.device("cuda")
    peak = measure_peak(dev, peak_dtype(dev, "auto"))   # bf16 GFLOP/s of an [8192, 8192] matmul
    sync(dev); t0 = time.perf_counter(); run(); sync(dev); seconds = time.perf_counter() - t0
"""

from __future__ import annotations

import os
import time

import torch

from oxygen.device import autocast_dtype


def sync(device: torch.device | str) -> None:
    """Wait for the work queued on `device` (torch.cuda.synchronize on CUDA; nothing on the CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def peak_dtype(device: torch.device | str, precision: str) -> torch.dtype:
    """The dtype the matmuls of `precision` run in on `device` (oxygen.device.autocast's; fp32 when
    autocast is off): the dtype to measure the peak in."""
    return autocast_dtype(device, precision) or torch.float32


def measure_peak(device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, n: int | None = None,
                 reps: int = 10) -> float:
    """Best GFLOP/s of an [n, n] @ [n, n] matmul in `dtype` on `device` over `reps` calls after 2
    warm-ups (n: 2048 on the CPU, 8192 on CUDA, where smaller matmuls do not fill the GPU), with the
    current torch thread count."""
    device = torch.device(device)
    n = n or (8192 if device.type == "cuda" else 2048)
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    for _ in range(2):
        a @ b
    sync(device)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


def machine(device: torch.device, precision: str, threads: int) -> dict:
    """The device's figures: the matmul peak in the dtype of `precision` with `threads` torch threads
    (MFU's denominator) and, on the CPU, with 1 thread; the dtype, device name, threads, CPUs, torch."""
    dtype = peak_dtype(device, precision)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        peak = measure_peak(device, dtype)
        torch.set_num_threads(1)
        peak1 = measure_peak(device, dtype) if device.type == "cpu" else None
    finally:
        torch.set_num_threads(old)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {"peak_gflops": peak, "peak_gflops_1_thread": peak1, "peak_dtype": str(dtype).removeprefix("torch."),
            "device": str(device), "device_name": name, "precision": precision, "threads": threads,
            "cpus": os.cpu_count(), "torch": torch.__version__}
