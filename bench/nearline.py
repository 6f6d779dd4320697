"""Near-line load and faults: the shop world's test-period events replayed through POST /v1/events.

    python -m bench.nearline --data runs/demo/world --speedup 10 --out runs/bench/nearline.json \\
        [--bundle DIR] [--max-wall-s 240] [--workers 1 4] [--plot docs/img/nearline_load.png] \
        [--service-backend vllm --model runs/demo/instructor]

Everything is real and local: the embedded Redis (password, AOF), Ray Serve (the HTTP app and the
instruction service holding the knowledge teacher, or with `--service-backend vllm` the small LM
on a real vLLM engine), the near-line supervisor and its workers.
Event times are replayed `--speedup` times faster than they happened, the window shrinks with
them (300 s / speedup), and the replay is cut to the first `--max-wall-s` seconds of wall time.
The events are split into four consecutive phases of equal size, each with its fault in the middle:
`steady` (none), `worker_killed` (one worker actor killed), `redis_restart` (Redis stopped for 3 s
and restarted from its append-only file), `service_stopped` (the instruction service deleted for
`--outage-s` and redeployed). A probe sends a recommendation every 0.25 s throughout (5xx counted).

Checked against the replayed log (the stream itself) and the workers' audit stream (one entry per
finished window, written atomically with the acks): lost events (high-value events no finished
window covers: must be 0), events covered twice, out-of-order writes (a user's written generations
must have increasing as-of times), the number of windows per user against a replay of the window
rule on the arrival times, latency from window end to the write, merge ratio, workers and lag over
time (plot).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import threading
import time
from collections import defaultdict
from pathlib import Path

import httpx
import numpy as np

from apps import cli
from apps.serve import load_users
from bench.tiny_bundle import catalogue_bundle
from oxygen.config import NearlineConfig
from oxygen.data.io import load_dataset
from oxygen.serving.client import OxygenClient
from oxygen.serving.instruction_service import ServiceArgs, start_instruction_service, stop_instruction_service
from oxygen.serving.local import start_local, stop_local
from oxygen.serving.nearline import NearlineArgs, kill_one_worker, nearline_status, start_nearline, stop_nearline
from oxygen.store.embedded import EmbeddedRedis
from oxygen.store.events import HIGH_VALUE, EventLog, UserEvent

PHASES = ("steady", "worker_killed", "redis_restart", "service_stopped")


def replay_log(ds) -> list[dict]:
    """The test split as events in time order: a search row is a search (query + clicked item),
    the others their behaviour on the target."""
    rows = sorted((r for r in ds.splits["test"] if r.timestamp is not None), key=lambda r: r.timestamp)
    return [{"user_id": r.user_id, "type": "search" if r.query else (r.behaviour or "click"), "item": r.target,
             "scenario": r.scenario, "ts": r.timestamp, **({"query": r.query} if r.query else {})} for r in rows]


class Probe(threading.Thread):
    """A recommendation request every 0.25 s; counts the status codes."""

    def __init__(self, url: str, user: str) -> None:
        super().__init__(daemon=True)
        self.url, self.user, self.codes, self.stop = url, user, defaultdict(int), threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                r = httpx.post(f"{self.url}/v1/recommend", json={"scenario": "homepage", "user_id": self.user, "k": 5},
                               timeout=30)
                self.codes[r.status_code] += 1
            except httpx.HTTPError:
                self.codes["connection"] += 1
            self.stop.wait(0.25)


def replay_phase(events: list[dict], client: OxygenClient, speedup: float, fault, t_event0: int, t_wall0: float) -> None:
    """Post `events` at their (sped-up) times in batches of what is due; start `fault()` halfway
    in a thread (the replay goes on during the fault) and wait for it at the end."""
    half, thread, i = len(events) // 2, None, 0
    while i < len(events):
        now = time.time()
        due = t_wall0 + (events[i]["ts"] - t_event0) / speedup
        if due > now:
            time.sleep(min(due - now, 0.05))
            continue
        j = i
        while j < len(events) and t_wall0 + (events[j]["ts"] - t_event0) / speedup <= now and j - i < 500:
            j += 1
        client.send_events(events[i:j])
        i = j
        if thread is None and i >= half and fault is not None:
            thread = threading.Thread(target=fault, daemon=True)
            thread.start()
    if thread is not None:
        thread.join()


def expected_windows(arrivals: list[float], window_s: float) -> int:
    """Windows the rule opens for one user's high-value arrival times (sorted): a window starts at
    the first event after the previous window's end and covers window_s."""
    n, end = 0, -np.inf
    for a in arrivals:
        if a > end:
            n, end = n + 1, a + window_s
    return n


def check(log: EventLog, window_s: float, phase_of) -> dict:
    """Lost / doubled events, out-of-order writes, windows per user, latency, from the streams."""
    hv, arrival, user_of, total = set(), {}, {}, 0
    for sid, f in log.client.xrange(log.stream):
        total += 1
        ev = UserEvent.from_json(f[b"event"].decode())
        sid = sid.decode()
        if ev.type in HIGH_VALUE:
            hv.add(sid)
            arrival[sid], user_of[sid] = int(sid.split("-")[0]) / 1000, ev.user_id
    seen: dict[str, int] = defaultdict(int)
    windows: dict[str, int] = defaultdict(int)
    last_asof: dict[str, float] = {}
    latency, out_of_order, outcomes = [], 0, defaultdict(int)
    by_phase: dict[str, list[float]] = defaultdict(list)
    for aid, user, ids, outcome in log.audit():
        outcomes[outcome] += 1
        for i in ids:
            seen[i] += 1
        windows[user] += outcome != "dead"
        asof = max(arrival.get(i, 0.0) for i in ids) if ids else 0.0
        if outcome == "written":
            out_of_order += asof <= last_asof.get(user, -1.0)
            last_asof[user] = asof
            first = min(arrival.get(i, 0.0) for i in ids)
            latency.append(int(aid.split("-")[0]) / 1000 - (first + window_s))
            by_phase[phase_of(first)].append(latency[-1] * 1000)
    lost = sorted(hv - set(seen))
    per_user: dict[str, list[float]] = defaultdict(list)
    for sid in sorted(hv, key=lambda s: arrival[s]):
        per_user[user_of[sid]].append(arrival[sid])
    expect = {u: expected_windows(a, window_s) for u, a in per_user.items()}
    lat = np.array(latency) * 1000 if latency else np.zeros(1)
    return {"events": total, "high_value_events": len(hv), "regenerations": sum(windows.values()),
            "outcomes": dict(outcomes), "lost_events": len(lost), "covered_twice": sum(1 for v in seen.values() if v > 1),
            "out_of_order_writes": int(out_of_order),
            "latency_ms": {"p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)),
                           "mean": float(lat.mean())},
            "merge_ratio": len(hv) / max(sum(windows.values()), 1),
            "windows_vs_rule": {"users": len(expect), "exact": sum(windows[u] == n for u, n in expect.items()),
                                "more": sum(windows[u] > n for u, n in expect.items()),
                                "fewer": sum(windows[u] < n for u, n in expect.items()),
                                "expected_windows": sum(expect.values())},
            "lost_by_phase": {p: sum(1 for s in lost if phase_of(arrival[s]) == p) for p in PHASES},
            "latency_by_phase": {p: {"windows": len(v), "p50_ms": float(np.percentile(v, 50)),
                                     "p99_ms": float(np.percentile(v, 99))} for p, v in by_phase.items() if v}}


def drain(log: EventLog, timeout_s: float) -> dict:
    """Wait until nothing is unread, open, leased or pending; the last backlog."""
    deadline, b = time.time() + timeout_s, {}
    while time.time() < deadline:
        b = log.backlog()
        if not (b["unread"] or b["open"] or b["leased"] or b["pending"]):
            break
        time.sleep(0.5)
    return b


def plot(history: list[dict], phases: list[tuple[str, float]], path: Path) -> None:
    """Workers and lag (open windows + unread events) over time, phases marked."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = history[0]["t"]
    t = [h["t"] - t0 for h in history]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(t, [h["open"] + h["unread"] for h in history], label="lag: open windows + unread events")
    ax.set_xlabel("wall seconds")
    ax.set_ylabel("lag")
    ax2 = ax.twinx()
    ax2.step(t, [h["workers"] for h in history], color="tab:red", where="post", label="workers")
    ax2.set_ylabel("workers")
    for name, start in phases:
        ax.axvline(start - t0, color="grey", lw=0.8, ls="--")
        ax.text(start - t0, ax.get_ylim()[1] * 0.95, f" {name}", fontsize=8, va="top")
    fig.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def service_args(args) -> ServiceArgs:
    """The instruction service this run deploys (and redeploys after its outage)."""
    return ServiceArgs(backend=args.service_backend, model_dir=str(args.model) if args.model else None)


def faults(server: EmbeddedRedis, sup, outage_s: float, service: ServiceArgs) -> dict:
    """The fault injected halfway through each phase."""
    def restart_redis():
        server.stop()
        time.sleep(3)
        server.start()

    def stop_service():
        stop_instruction_service()
        time.sleep(outage_s)
        start_instruction_service(service)

    return {"steady": None, "worker_killed": lambda: kill_one_worker(sup), "redis_restart": restart_redis,
            "service_stopped": stop_service}


def run_bench(args, work: Path) -> dict:
    """Start everything, replay the phases with their faults, drain, check."""
    ds = load_dataset(args.data)
    events = replay_log(ds)
    t_event0 = events[0]["ts"]
    events = [e for e in events if (e["ts"] - t_event0) / args.speedup <= args.max_wall_s]
    window_s = 300.0 / args.speedup
    shutil.rmtree(work / "redis", ignore_errors=True)  # a fresh store: the append-only file of a previous run would replay
    server = EmbeddedRedis(aof=True, data_dir=str(work / "redis"), password=secrets.token_hex(12)).start()
    key = os.environ.setdefault("OXYGEN_API_KEY", secrets.token_hex(12))
    try:
        users = load_users(server.url, args.data, splits=("train", "valid"))
        bundle = args.bundle
        if bundle is None:
            bundle = work / "bundle"
            catalogue_bundle(bundle, ds.items)
        url = start_local(Path(bundle), server.url, args.port)
        start_instruction_service(service_args(args))
        # the window and the replay are sped up, the work is not: leases and reclaims keep real-time sizes
        cfg = NearlineConfig(window_s=window_s, lease_s=40, reclaim_idle_s=45,
                             max_tries=100, backoff_s=0.5, backend="service", min_workers=args.workers[0],
                             max_workers=args.workers[1], users_per_worker=args.users_per_worker, scale_down_after_s=5)
        sup = start_nearline(NearlineArgs(data=str(args.data), redis_url=server.url, config=cfg, tick_s=0.25))
        log = EventLog.connect(server.url, window_s=window_s)
        while nearline_status(sup)["workers"] < cfg.min_workers or not nearline_status(sup)["running"]:
            time.sleep(0.5)
        probe = Probe(url, next(iter(users)))
        probe.start()
        client, chunks, starts = OxygenClient(url, key), np.array_split(np.arange(len(events)), 4), []
        t_wall0 = time.time()
        for name, idx, fault in zip(PHASES, chunks, faults(server, sup, args.outage_s, service_args(args)).values()):
            starts.append((name, time.time()))
            replay_phase([events[i] for i in idx], client, args.speedup, fault, t_event0, t_wall0)
        last = drain(log, timeout_s=120)
        probe.stop.set()
        status = nearline_status(sup)
        stop_nearline(sup)
        bounds = [s for _, s in starts]
        phase_of = lambda t: PHASES[max(0, int(np.searchsorted(bounds, t, side="right")) - 1)]  # noqa: E731
        out = check(log, window_s, phase_of)
        out.update(speedup=args.speedup, window_s=window_s, replayed_event_span_s=events[-1]["ts"] - t_event0,
                   wall_s=time.time() - t_wall0, posted=len(events), post_retries=client.retried,
                   drained=last, max_workers=max(h["workers"] for h in status["history"]),
                   probe_status_codes={str(k): v for k, v in probe.codes.items()},
                   probe_5xx=sum(v for k, v in probe.codes.items() if isinstance(k, int) and k >= 500),
                   phases={n: {"lost_events": out["lost_by_phase"][n], **out["latency_by_phase"].get(n, {})}
                           for n in PHASES},
                   dead_letters=last.get("dead", 0), service_backend=args.service_backend)
        if args.plot:
            plot(status["history"], starts, args.plot)
        return out
    finally:
        stop_local()
        server.stop()


def main(argv: list[str] | None = None) -> dict:
    """Parse, run, write the JSON."""
    p = argparse.ArgumentParser(prog="python -m bench.nearline", description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--speedup", type=float, default=10.0, help="replay this many times faster than real time")
    p.add_argument("--max-wall-s", type=float, default=240.0, help="replay only the first this-many wall seconds")
    p.add_argument("--bundle", type=Path, default=None, help="a trained bundle (default: random weights over the catalogue)")
    p.add_argument("--workers", type=int, nargs=2, default=[1, 4], metavar=("MIN", "MAX"))
    p.add_argument("--users-per-worker", type=int, default=20)
    p.add_argument("--outage-s", type=float, default=10.0, help="how long the instruction service is down")
    p.add_argument("--port", type=int, default=8021)
    p.add_argument("--plot", type=Path, default=None)
    p.add_argument("--service-backend", default="knowledge", choices=("knowledge", "vllm"),
                   help="what the instruction service holds")
    p.add_argument("--model", type=Path, default=None, help="LM folder for --service-backend vllm")
    cli.add_common(p)
    args = p.parse_args(argv)
    work = args.out.with_suffix("")
    work.mkdir(parents=True, exist_ok=True)
    out = run_bench(args, work)
    args.out.write_text(json.dumps(out, indent=1))
    print(json.dumps({k: out[k] for k in ("events", "regenerations", "lost_events", "out_of_order_writes",
                                          "latency_ms", "merge_ratio", "max_workers", "phases", "probe_5xx")}, indent=1))
    return out


if __name__ == "__main__":
    cli.run(main)
