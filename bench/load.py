"""HTTP load generation for bench/serving.py, in its own process pinned to one core, so the client
does not starve the server of the other (on a 2-core laptop the server's processes still share
both cores; the report says how).

    log = run_load(url, bodies, mode="closed", clients=8, seconds=20)        # closed loop
    log = run_load(url, bodies, mode="open", rate=60, seconds=15)             # Poisson arrivals
    log = run_load([url1, url2], bodies, ...)   # several replicas' own ports: round robin, as a load balancer
    summary(log, seconds)     # rps, p50/p99 ms, status counts, 5xx

Closed loop: each client sends its next request when the last one answered. Open loop: requests
start at Poisson arrival times at a fixed offered rate whatever the answers do (what real traffic
does), so queueing shows as latency. Each log entry: (start s, latency s, status, timing_ms).
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import time
from queue import Empty as queue_empty

import httpx
import numpy as np

Entry = tuple[float, float, int, dict]
TIMEOUT_S = 30.0


async def _send(http: httpx.AsyncClient, url: str, body: dict, log: list[Entry]) -> None:
    """One request; a connection error or timeout is logged as 599 (a server-side failure), its
    exception's name in the timing dict under 'error'."""
    t0 = time.time()
    try:
        r = await http.post(f"{url}/v1/recommend", json=body)
        body = r.json() if r.status_code == 200 else {}
        status, timing = r.status_code, {**body.get("timing_ms", {}), "batch_size": body.get("batch_size", 0)}
    except httpx.HTTPError as e:
        status, timing = 599, {"error": type(e).__name__}
    log.append((t0, time.time() - t0, status, timing))


async def _closed(urls: list[str], bodies: list[dict], clients: int, seconds: float) -> list[Entry]:
    log: list[Entry] = []
    stop_at = time.time() + seconds

    async def client(c: int) -> None:
        i = c
        while time.time() < stop_at:
            await _send(http, urls[c % len(urls)], bodies[i % len(bodies)], log)
            i += clients

    async with httpx.AsyncClient(timeout=TIMEOUT_S, limits=httpx.Limits(max_connections=clients)) as http:
        await asyncio.gather(*(client(c) for c in range(clients)))
    return log


async def _open(urls: list[str], bodies: list[dict], rate: float, seconds: float, seed: int) -> list[Entry]:
    log: list[Entry] = []
    gaps = np.random.default_rng(seed).exponential(1.0 / rate, size=int(rate * seconds * 2) + 10)
    starts = np.cumsum(gaps)
    starts = starts[starts < seconds]
    t0, tasks = time.time(), []
    async with httpx.AsyncClient(timeout=TIMEOUT_S, limits=httpx.Limits(max_connections=512)) as http:
        for n, at in enumerate(starts):
            delay = t0 + at - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_send(http, urls[n % len(urls)], bodies[n % len(bodies)], log)))
        await asyncio.gather(*tasks)
    return log


def _child(queue: mp.Queue, urls: list[str], bodies: list[dict], mode: str, clients: int, rate: float,
           seconds: float, core: int | None, seed: int) -> None:
    if core is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {core})
    run = _closed(urls, bodies, clients, seconds) if mode == "closed" else _open(urls, bodies, rate, seconds, seed)
    queue.put(asyncio.run(run))


def client_core() -> int | None:
    """The core the load client is pinned to: the last one (None with a single core)."""
    n = os.cpu_count() or 1
    return n - 1 if n > 1 else None


def run_load(url: str | list[str], bodies: list[dict], mode: str = "closed", clients: int = 8, rate: float = 10.0,
             seconds: float = 20.0, seed: int = 0) -> list[Entry]:
    """Drive load from a fresh process (spawned, pinned to `client_core()`) at `url` (or round
    robin over a list of base URLs); its log."""
    if mode not in ("closed", "open"):
        raise ValueError(f"mode must be 'closed' or 'open', got {mode!r}")
    urls = [url] if isinstance(url, str) else list(url)
    if not urls:
        raise ValueError("no URL to send load to")
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, urls, bodies, mode, clients, rate, seconds, client_core(), seed))
    proc.start()
    deadline = time.time() + seconds + TIMEOUT_S + 120
    while time.time() < deadline:
        try:
            log = queue.get(timeout=1)
            proc.join(timeout=30)
            return log
        except queue_empty:
            if not proc.is_alive():
                raise RuntimeError(f"the load client process died (exit code {proc.exitcode}) before reporting") from None
    proc.kill()
    raise RuntimeError(f"the load client did not report within {seconds + TIMEOUT_S + 120:.0f} s")


def summary(log: list[Entry], seconds: float) -> dict:
    """Throughput, latency percentiles (ms) and status counts of one phase."""
    lat = np.array([x[1] for x in log]) * 1000
    codes: dict[str, int] = {}
    for _, _, s, _ in log:
        codes[str(s)] = codes.get(str(s), 0) + 1
    pct = (lambda q: round(float(np.percentile(lat, q)), 1) if len(lat) else None)
    return {"requests": len(log), "rps": round(len(log) / seconds, 2), "p50_ms": pct(50), "p99_ms": pct(99),
            "status": codes, "errors_5xx": sum(n for s, n in codes.items() if s.startswith("5"))}


def time_budget(log: list[Entry]) -> dict[str, dict[str, float]]:
    """p50 / p99 ms per stage over the answered requests, plus `http` (client latency minus the
    route handler: HTTP proxy, uvicorn, request parsing and response serialisation)."""
    stages: dict[str, list[float]] = {}
    for _, lat, status, timing in log:
        if status != 200 or not timing:
            continue
        for k, v in timing.items():
            stages.setdefault(k, []).append(v)
        stages.setdefault("http", []).append(lat * 1000 - timing.get("route", 0.0))
        stages.setdefault("client_total", []).append(lat * 1000)
    return {k: {"p50": round(float(np.percentile(v, 50)), 2), "p99": round(float(np.percentile(v, 99)), 2)}
            for k, v in sorted(stages.items())}
