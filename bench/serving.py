"""Serving benchmark: latency and throughput of the HTTP service, where the time goes, faults.

    python -m bench.serving --bundle runs/demo/train/bundle --users-from runs/demo/world \
        --clients 8 --seconds 20 --out runs/bench/serving.json [--plot docs/img/serving_open_loop.png]

Load comes from a separate process pinned to the last core (bench/load.py). Each phase is a fresh
Serve app on local Ray with embedded Redis:
- closed loop, `--clients` clients for `--seconds`: `before` (the service as it was: an HTTP front
  deployment over the recommender, `@serve.batch`, through Serve's proxy, Serve's defaults, in its
  own Ray instance), `batching_on` (the fused app, the greedy batcher, max_batch_size 32, requests
  sent to the replica's own port: direct ingress), `via_proxy` (the same through the proxy port),
  `serve_batch` (`@serve.batch` instead of the greedy batcher), `batching_off` (max_batch_size 1),
  `split` (the split layout: a front batching requests over one back replica, direct to the front),
  `two_replicas` (two fused replicas, the client spreading its requests over their own ports),
  `replica_kill` (two fused replicas behind the proxy, one killed mid-run: its in-flight requests
  fail), `replica_kill_split` (the split layout, one of two back replicas killed: the front sends
  those requests again), `redis_down` (Redis stopped mid-run; answers degrade to the default
  instruction); `errors_after_fault` counts the 5xx answered at or after the fault;
- `time_budget`: p50 / p99 per stage over the batching_on answers (their `timing_ms`), and
  `time_budget_split` over the split ones;
- open loop (Poisson arrivals at each `--rates` rate for `--rate-seconds`): p50 / p99 / errors per
  offered rate and the rates where p99 crosses 50 and 100 ms;
- `autoscale`: 1..2 replicas with target ongoing requests 2, a high-load then low-load stretch,
  the replica count every second.
Without --bundle a tiny random-weight bundle is used (bench/tiny_bundle.py). `--instructions FILE`
(records of `apps.instructions generate`) stores the users' reasoning instructions in Redis first, as
production serving has them: homepage requests then read theirs, and a bundle with guidance applies
it; without it every request reads the default instruction.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import ray
from ray import serve

from apps.cli import write_report
from apps.serve import load_instructions, load_users
from bench.load import client_core, run_load, summary, time_budget
from bench.tiny_bundle import make_bundle
from oxygen.serving.local import FAST_SERVE, direct_urls
from oxygen.serving.local import start_local as start
from oxygen.store.embedded import EmbeddedRedis

SCENARIOS = [("search", False), ("homepage", False), ("channel", True), ("cart", True)]
BEFORE = {"layout": "split", "max_ongoing_requests": 5, "torch_threads": 2, "batcher": "serve",
          "embed_ahead": False, "gil_switch_interval_ms": 5.0}  # as it was (5 ms: Python's default)
BEFORE_ENV = {"RAY_SERVE_ENABLE_DIRECT_INGRESS": "0", "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "1"}  # Serve's defaults
AUTOSCALE = {"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 2, "upscale_delay_s": 3,
             "downscale_delay_s": 15, "look_back_period_s": 10}  # Serve pushes load metrics every 10 s


QUERIES = ["usb cable", "baby bottle", "winter coat", "ink cartridge"]  # without a dataset


def logged_queries(data: Path | None) -> list[str]:
    """The search queries of the dataset's test split, as logged (repeats kept, so the mix has the
    real head and tail: what the query-embedding cache sees); QUERIES without a dataset."""
    if data is None or not (data / "test.jsonl").exists():
        return QUERIES
    with open(data / "test.jsonl") as f:
        out = [q for q in (json.loads(line).get("query") for line in f) if q]
    return out or QUERIES


def request_mix(users: list[str], items: list[int], n: int, queries: list[str] = QUERIES,
                seed: int = 0) -> list[dict]:
    """n request bodies cycling over scenarios, users with stored state, trigger items and queries."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        scen, trig = SCENARIOS[i % len(SCENARIOS)]
        body = {"scenario": scen, "user_id": users[int(rng.integers(len(users)))], "k": 10}
        if scen == "search":
            body["query"] = queries[int(rng.integers(len(queries)))]
        if trig:
            body["trigger_item"] = int(items[int(rng.integers(len(items)))])
        out.append(body)
    return out


def trigger_items(bundle: Path) -> list[int]:
    """Items every trigger scenario of the mix accepts, to draw trigger items from."""
    from oxygen.model.bundle import Bundle

    b = Bundle.load(bundle)
    return sorted(set.intersection(*(set(b.scenarios[s].pool) for s, trig in SCENARIOS if trig)))


def replicas() -> list:
    """Actor handles of the live Recommender replicas (named actors in the serve namespace)."""
    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
             if a["namespace"] == "serve" and "Recommender" in a["name"]]
    return [ray.get_actor(n, namespace="serve") for n in sorted(names)]


def app_up(ctx: dict, via: str = "direct", **app) -> str | list[str]:
    """A fresh app with these AppArgs, warmed up; where to send load: the replicas' own ports
    (`direct`, when Serve's direct ingress is on) or the proxy port (`proxy`)."""
    proxy = start(ctx["bundle"], ctx["redis"].url, ctx["port"], **app)
    urls = direct_urls() if via == "direct" else []
    target = urls or proxy
    run_load(target, ctx["bodies"][:64], "closed", clients=8, seconds=4)  # warm-up: every scenario, batch sizes up to 8
    return target


def closed_phase(name: str, ctx: dict, fault=None, via: str = "direct", **app) -> tuple[dict, list]:
    """Closed-loop load on a fresh app (optionally injecting `fault()` a third of the way in)."""
    url = app_up(ctx, via, **app)
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
    log = run_load(url, ctx["bodies"], "closed", clients=ctx["clients"], seconds=ctx["seconds"])
    if timer is not None:
        timer.join()
    serve.delete("default")
    out = {**summary(log, ctx["seconds"]), "app": app, "via": "direct" if isinstance(url, list) else "proxy", **info}
    if "fault_at" in info:
        out["errors_after_fault"] = sum(1 for t, lat, s, _ in log if t + lat >= info["fault_at"] and s >= 500)
    print(f"[{name}] {json.dumps(out)}", flush=True)
    return out, log


def before_phase(ctx: dict) -> dict:
    """The closed loop on the service as it was (split layout, Serve's default settings, torch on
    every core), in its own Ray instance because Serve reads those settings when Ray starts."""
    saved = {k: os.environ.get(k) for k in FAST_SERVE}
    serve.shutdown()
    ray.shutdown()
    os.environ.update(BEFORE_ENV)
    try:
        out, _ = closed_phase("before: split layout, Serve defaults", ctx, via="proxy", **BEFORE)
    finally:
        serve.shutdown()
        ray.shutdown()
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    return {**out, "serve_env": BEFORE_ENV}


def kill_one_replica() -> dict:
    """Kill one Recommender replica; return when the fault happened and how long until 2 are back."""
    t0 = time.time()
    ray.kill(replicas()[0], no_restart=False)
    while time.time() < t0 + 60:
        time.sleep(0.5)
        if len(replicas()) >= 2:
            break
    return {"fault_at": t0, "recovery_s": round(time.time() - t0, 1)}


def crossing(curve: list[dict], ms: float) -> float | None:
    """The offered rate where p99 first exceeds `ms` (linear between the measured points); the
    highest rate tried when it never does; None when even the lowest rate exceeds it."""
    prev = None
    for pt in curve:
        if pt["p99_ms"] is None or pt["p99_ms"] > ms:
            if prev is None:
                return None
            frac = (ms - prev["p99_ms"]) / max(pt["p99_ms"] - prev["p99_ms"], 1e-9) if pt["p99_ms"] else 0.0
            return round(prev["rate"] + frac * (pt["rate"] - prev["rate"]), 1)
        prev = pt
    return prev["rate"] if prev else None


def open_loop(ctx: dict, rates: list[float], seconds: float) -> dict:
    """p50 / p99 / errors against offered load on one fused app; stops after a point past 2 s p99."""
    url = app_up(ctx)
    curve = []
    for rate in rates:
        s = summary(run_load(url, ctx["bodies"], "open", rate=rate, seconds=seconds, seed=int(rate)), seconds)
        curve.append({"rate": rate, "achieved_rps": s["rps"], "p50_ms": s["p50_ms"], "p99_ms": s["p99_ms"],
                      "errors_5xx": s["errors_5xx"], "requests": s["requests"]})
        print(f"[open loop] {json.dumps(curve[-1])}", flush=True)
        if s["p99_ms"] is None or s["p99_ms"] > 2000:
            break
    serve.delete("default")
    return {"seconds_per_rate": seconds, "curve": curve,
            "rate_at_p99_ms": {"50": crossing(curve, 50), "100": crossing(curve, 100)}}


def running_replicas() -> int:
    """RUNNING replicas of the Recommender deployment (0 when the app is not up)."""
    app = serve.status().applications.get("default")
    dep = app.deployments.get("Recommender") if app else None
    return int(dep.replica_states.get("RUNNING", 0)) if dep else 0


def autoscale(ctx: dict, high_s: float = 40, low_s: float = 60) -> dict:
    """Replicas follow the load: 16 closed-loop clients for `high_s`, then 1 for `low_s`."""
    url = app_up(ctx, "proxy", autoscaling=AUTOSCALE)  # the proxy routes to however many replicas run
    timeline: list[tuple[float, int]] = []
    stop, t0 = threading.Event(), time.time()

    def poll() -> None:
        while not stop.is_set():
            timeline.append((round(time.time() - t0, 1), running_replicas()))
            time.sleep(1)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    high = summary(run_load(url, ctx["bodies"], "closed", clients=16, seconds=high_s), high_s)
    t_low = round(time.time() - t0, 1)
    low = summary(run_load(url, ctx["bodies"], "closed", clients=1, seconds=low_s), low_s)
    stop.set()
    poller.join()
    serve.delete("default")
    up = next((t for t, n in timeline if n >= 2), None)
    down = next((t for t, n in timeline if up is not None and t > up and n == 1), None)
    out = {"config": AUTOSCALE, "high": {"clients": 16, **high}, "low": {"clients": 1, "from_s": t_low, **low},
           "scaled_up_at_s": up, "scaled_down_at_s": down, "max_replicas_seen": max(n for _, n in timeline),
           "timeline": timeline}
    print(f"[autoscale] up at {up} s, down at {down} s (low load from {t_low} s)", flush=True)
    return out


def plot(report: dict, path: Path) -> None:
    """Open-loop p50 / p99 against offered rate, and the autoscaling timeline."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    curve = report["open_loop"]["curve"]
    rates = [p["rate"] for p in curve]
    for key, style in (("p50_ms", "o-"), ("p99_ms", "s-")):
        axes[0].plot(rates, [p[key] for p in curve], style, label=key.replace("_ms", ""))
    for ms in (50, 100):
        axes[0].axhline(ms, color="grey", linestyle=":", linewidth=1)
    axes[0].set(xlabel="offered load (requests/s, Poisson)", ylabel="latency (ms)", yscale="log",
                title="open loop, fused app")
    axes[0].legend()
    if "autoscale" in report:
        t, n = zip(*report["autoscale"]["timeline"])
        axes[1].step(t, n, where="post")
        axes[1].axvline(report["autoscale"]["low"]["from_s"], color="grey", linestyle=":", label="load drops")
        axes[1].set(xlabel="seconds", ylabel="running replicas", title="autoscaling (16 clients, then 1)",
                    yticks=[0, 1, 2])
        axes[1].legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.serving", description=__doc__.split("\n")[0])
    p.add_argument("--bundle", type=Path, default=None)
    p.add_argument("--users-from", type=Path, default=None)
    p.add_argument("--instructions", type=Path, default=None,
                   help="instruction records to store first (apps.instructions generate; default: none)")
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--rates", default="10,20,40,60,80,100,120,150,200", help="open-loop offered rates, req/s")
    p.add_argument("--rate-seconds", type=float, default=10)
    p.add_argument("--skip", default="", help="comma-separated phases to skip: before, faults, open_loop, autoscale")
    p.add_argument("--port", type=int, default=8013)
    p.add_argument("--out", type=Path, default=Path("runs/bench/serving.json"))
    p.add_argument("--plot", type=Path, default=None)
    return p.parse_args(argv)


def users_in(redis_server: EmbeddedRedis, users_from: Path | None) -> list[str]:
    """User ids with stored state: the dataset's (loaded now) or 50 synthetic ones."""
    if users_from:
        return list(load_users(redis_server.url, users_from))
    import redis

    from oxygen.store.users import UserState, UserStateStore
    users = [f"u{i}" for i in range(50)]
    UserStateStore(redis.Redis.from_url(redis_server.url)).put_many([UserState(u, [i, i + 1]) for i, u in enumerate(users)])
    return users


def main(argv: list[str] | None = None) -> dict:
    """Run every phase and write the JSON report (and the plot)."""
    a = parse(argv)
    skip = set(filter(None, a.skip.split(",")))
    bundle = a.bundle or Path(tempfile.mkdtemp()) / "bundle"
    if a.bundle is None:
        make_bundle(bundle)
    with EmbeddedRedis() as redis_server:
        users = users_in(redis_server, a.users_from)
        stored = load_instructions(redis_server.url, a.instructions) if a.instructions else 0
        ctx = {"bundle": bundle, "redis": redis_server, "port": a.port, "seconds": a.seconds, "clients": a.clients,
               "bodies": request_mix(users, trigger_items(bundle), 2048, logged_queries(a.users_from))}
        report: dict = {"clients": a.clients, "seconds": a.seconds, "bundle": str(a.bundle or "tiny random bundle"),
                        "instructions_stored": stored,
                        "cores": os.cpu_count(), "client_core": client_core(),
                        "sharing": "the load client runs in its own process pinned to client_core; Ray's HTTP "
                                   "proxy, the replicas, Redis and the driver are not pinned (they share every core)",
                        "serve_env": {k: os.environ.get(k, v) for k, v in FAST_SERVE.items()},  # as init_local sets them
                        "closed_loop": {}}
        closed = report["closed_loop"]
        if "before" not in skip:
            closed["before"] = before_phase(ctx)
        closed["batching_on"], log_on = closed_phase("batching on", ctx, max_batch_size=32)
        report["time_budget"] = time_budget(log_on)
        closed["via_proxy"], _ = closed_phase("batching on, through the proxy", ctx, via="proxy", max_batch_size=32)
        closed["serve_batch"], _ = closed_phase("@serve.batch", ctx, max_batch_size=32, batcher="serve")
        closed["batching_off"], _ = closed_phase("batching off", ctx, max_batch_size=1)
        closed["split"], log_split = closed_phase("split layout", ctx, max_batch_size=32, layout="split")
        report["time_budget_split"] = time_budget(log_split)
        closed["two_replicas"], _ = closed_phase("2 fused replicas, direct", ctx, max_batch_size=32,
                                                 recommender_replicas=2)
        if "before" in closed:
            closed["speedup_vs_before"] = round(closed["batching_on"]["rps"] / max(closed["before"]["rps"], 1e-9), 2)
        if "open_loop" not in skip:
            report["open_loop"] = open_loop(ctx, [float(r) for r in a.rates.split(",")], a.rate_seconds)
        if "autoscale" not in skip:
            report["autoscale"] = autoscale(ctx)
        if "faults" not in skip:
            closed["replica_kill"], _ = closed_phase("2 replicas, one killed", ctx, kill_one_replica, via="proxy",
                                                     recommender_replicas=2)
            closed["replica_kill_split"], _ = closed_phase("split layout, 2 back replicas, one killed", ctx,
                                                           kill_one_replica, via="proxy", recommender_replicas=2,
                                                           layout="split")
            closed["redis_down"], _ = closed_phase(
                "redis stopped", ctx, lambda: (redis_server.stop(), {"fault_at": time.time()})[1])
    serve.shutdown()
    ray.shutdown()
    write_report(a.out, report)
    if a.plot and "open_loop" in report:
        plot(report, a.plot)
    return report


if __name__ == "__main__":
    main()
