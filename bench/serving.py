"""Serving load and fault benchmark: closed-loop HTTP clients on 127.0.0.1 for a fixed time.

    python -m bench.serving [--bundle runs/demo/train/bundle --users-from runs/demo/world]
                            [--seconds 20] [--clients 16] [--out runs/bench/serving.json]

Phases (each a fresh Serve app): batching on (max_batch_size 32) vs off (1); two replicas with one
killed mid-run (errors and recovery time); Redis stopped mid-run (degraded mode). Reports
requests/s, p50/p99 latency, status-code counts and 5xx per phase. Without --bundle a tiny
random-weight bundle is used (bench/tiny_bundle.py).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import ray
from ray import serve

from apps.serve import load_users
from bench.tiny_bundle import make_bundle
from oxygen.serving.local import start_local as start
from oxygen.store.embedded import EmbeddedRedis

SCENARIOS = [("search", False), ("homepage", False), ("channel", True), ("cart", True)]


def request_mix(users: list[str], items: list[int], n: int, seed: int = 0) -> list[dict]:
    """n request bodies cycling over scenarios, users with stored state, and trigger items."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        scen, trig = SCENARIOS[i % len(SCENARIOS)]
        body = {"scenario": scen, "user_id": users[int(rng.integers(len(users)))], "k": 10}
        if scen == "search":
            body["query"] = ["usb cable", "baby bottle", "winter coat", "ink cartridge"][i % 4]
        if trig:
            body["trigger_item"] = int(items[int(rng.integers(len(items)))])
        out.append(body)
    return out


def closed_loop(url: str, bodies: list[dict], clients: int, seconds: float) -> list[tuple[float, float, int]]:
    """Each client sends its next request as soon as the last answered; (t, latency s, status)."""
    stop_at, log, lock = time.perf_counter() + seconds, [], threading.Lock()

    def client(c: int) -> None:
        with httpx.Client(timeout=30) as http:
            i = c
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                try:
                    status = http.post(f"{url}/v1/recommend", json=bodies[i % len(bodies)]).status_code
                except httpx.HTTPError:
                    status = 599  # connection error: counted as a server-side failure
                with lock:
                    log.append((t0, time.perf_counter() - t0, status))
                i += clients

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    return log


def summary(log: list[tuple[float, float, int]], seconds: float) -> dict:
    """Throughput, latency percentiles (ms) and status counts of one phase."""
    lat = np.array([x[1] for x in log]) * 1000
    codes: dict[str, int] = {}
    for _, _, s in log:
        codes[str(s)] = codes.get(str(s), 0) + 1
    return {"requests": len(log), "rps": round(len(log) / seconds, 2),
            "p50_ms": round(float(np.percentile(lat, 50)), 1) if len(lat) else None,
            "p99_ms": round(float(np.percentile(lat, 99)), 1) if len(lat) else None,
            "status": codes, "5xx": sum(n for s, n in codes.items() if s.startswith("5"))}


def recommender_replicas() -> list:
    """Actor handles of the live Recommender replicas (named actors in the serve namespace)."""
    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
             if a["namespace"] == "serve" and "Recommender" in a["name"]]
    return [ray.get_actor(n, namespace="serve") for n in sorted(names)]


def run_phase(name: str, ctx: dict, fault=None, **app) -> dict:
    """Start an app, drive load (optionally injecting `fault(t_start)` mid-run), stop the app."""
    url = start(ctx["bundle"], ctx["redis"].url, ctx["port"], **app)
    httpx.post(f"{url}/v1/recommend", json=ctx["bodies"][0], timeout=60)  # warm-up
    info: dict = {}
    timer = None
    if fault is not None:
        def inject() -> None:
            try:
                info.update(fault())
            except Exception as e:  # a fault that could not be injected must show in the report
                info["fault_error"] = repr(e)

        timer = threading.Timer(ctx["seconds"] / 3, inject)
        timer.start()
    log = closed_loop(url, ctx["bodies"], ctx["clients"], ctx["seconds"])
    if timer is not None:
        timer.join()
    serve.delete("default")
    out = {**summary(log, ctx["seconds"]), **info}
    if "fault_at" in info:
        out["errors_after_fault"] = sum(1 for t, _, s in log if t >= info["fault_at"] and s >= 500)
    print(f"[{name}] {json.dumps(out)}", flush=True)
    return out


def kill_one_replica() -> dict:
    """Kill one Recommender replica; return when the fault happened and how long until 2 are back."""
    t0 = time.perf_counter()
    ray.kill(recommender_replicas()[0], no_restart=False)
    deadline = t0 + 60
    while time.perf_counter() < deadline:
        time.sleep(0.5)
        if len(recommender_replicas()) >= 2:
            break
    return {"fault_at": t0, "recovery_s": round(time.perf_counter() - t0, 1)}


def main(argv: list[str] | None = None) -> dict:
    """Run every phase and write the JSON report."""
    p = argparse.ArgumentParser(prog="python -m bench.serving", description=__doc__.split("\n")[0])
    p.add_argument("--bundle", type=Path, default=None)
    p.add_argument("--users-from", type=Path, default=None)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--port", type=int, default=8013)
    p.add_argument("--out", type=Path, default=Path("runs/bench/serving.json"))
    a = p.parse_args(argv)
    bundle = a.bundle or Path(tempfile.mkdtemp()) / "bundle"
    if a.bundle is None:
        make_bundle(bundle)
    with EmbeddedRedis() as redis_server:
        if a.users_from:
            users = list(load_users(redis_server.url, a.users_from))
        else:
            import redis

            from oxygen.store.users import UserState, UserStateStore
            users = [f"u{i}" for i in range(50)]
            UserStateStore(redis.Redis.from_url(redis_server.url)).put_many([UserState(u, [i, i + 1]) for i, u in enumerate(users)])
        from oxygen.model.bundle import Bundle
        b = Bundle.load(bundle)
        trig = sorted(set(b.scenarios["channel"].pool) & set(b.scenarios["cart"].pool))
        ctx = {"bundle": bundle, "redis": redis_server, "port": a.port, "seconds": a.seconds, "clients": a.clients,
               "bodies": request_mix(users, trig, 512)}
        report = {"clients": a.clients, "seconds": a.seconds, "bundle": str(a.bundle or "tiny random bundle"),
                  "batching_on": run_phase("batching on", ctx, max_batch_size=32),
                  "batching_off": run_phase("batching off", ctx, max_batch_size=1),
                  "replica_kill": run_phase("2 replicas, one killed", ctx, kill_one_replica, replicas=2),
                  "redis_down": run_phase("redis stopped", ctx, lambda: (redis_server.stop(), {"fault_at": time.perf_counter()})[1])}
    serve.shutdown()
    ray.shutdown()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
