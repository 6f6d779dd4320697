"""A cluster's Serve config, deployed for real: `ray start --head` on this machine, `serve deploy` of
deployments/serve.yaml (its placeholders filled as on a head), the HTTP contract checked through
Serve's proxy, then closed-loop load while one `Recommender` replica is killed.

    python -m bench.serve_deploy --bundle runs/demo/train/bundle --users-from runs/demo/world \
        --out runs/bench/serve_deploy.json

What the unit tests cannot show: that the YAML's deployment names, options and runtime_env fit the
app graph `build_app` returns, that the secrets arrive from the environment (`POST /v1/events`
refuses a request without the key), and that a crashed model replica costs no 5xx in the config
clusters run. The Ray here is its own head (ports `--ray-port` / `--dashboard-port`, token
authentication on with a fresh token); `ray stop` at the end stops every Ray on this machine.
Redis is the embedded server, with the demo users written into it.
"""

from __future__ import annotations

import argparse
import os
import secrets
import string
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import yaml

from apps.cli import write_report
from apps.serve import load_instructions, load_users
from bench.load import run_load, summary
from bench.serving import logged_queries, request_mix, trigger_items
from oxygen.serving.local import wait_ready
from oxygen.store.embedded import EmbeddedRedis

ROOT = Path(__file__).resolve().parents[1]


def render(config: Path, env: dict[str, str], bundle: Path, port: int) -> str:
    """The config as a head deploys it: `${VAR}` placeholders filled from `env` (a missing one is an
    error), the bundle an absolute path, the proxy on `port`."""
    cfg = yaml.safe_load(string.Template(config.read_text()).substitute(env))
    cfg["http_options"]["port"] = port
    for app in cfg["applications"]:
        app["args"]["bundle"] = str(bundle.resolve())
    return yaml.safe_dump(cfg, sort_keys=False)


def sh(args: list[str], env: dict[str, str]) -> None:
    """Run a Ray / Serve CLI command; a RuntimeError with its output when it fails."""
    r = subprocess.run(args, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"`{' '.join(args)}` failed ({r.returncode}): {(r.stdout + r.stderr)[-2000:]}")


def contract(url: str, api_key: str, user: str) -> dict:
    """Through the proxy: one homepage answer (and whether it came through the split layout's
    front), and an event posted without and with the API key."""
    body = {"scenario": "homepage", "user_id": user, "k": 5}
    rec = httpx.post(f"{url}/v1/recommend", json=body, timeout=30)
    event = {"events": [{"user_id": user, "type": "click", "item": rec.json()["items"][0]["item_id"],
                         "scenario": "homepage", "ts": int(time.time())}]}
    return {"recommend": rec.status_code, "items": len(rec.json()["items"]),
            "layout_stages": sorted(k for k in rec.json()["timing_ms"] if k in ("front_wait", "handle")),
            "events_without_key": httpx.post(f"{url}/v1/events", json=event, timeout=30).status_code,
            "events_with_key": httpx.post(f"{url}/v1/events", json=event, headers={"X-API-Key": api_key},
                                          timeout=30).status_code}


KILL = """
import time
import ray
ray.init(address="auto", namespace="serve", logging_level="ERROR", log_to_driver=False)
names = sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
               if a["namespace"] == "serve" and "Recommender" in a["name"])
ray.kill(ray.get_actor(names[0], namespace="serve"), no_restart=False)
print(len(names), time.time())
"""  # run in a child with the head's environment (this driver's Ray was imported before the token was set)


def kill_under_load(url: str, bodies: list[dict], env: dict[str, str], clients: int, seconds: float) -> dict:
    """Closed-loop load through the proxy; a third of the way in, one Recommender replica is killed
    (Serve starts another)."""
    info: dict = {}

    def kill() -> None:
        r = subprocess.run([sys.executable, "-c", KILL], env=env, capture_output=True, text=True)
        if r.returncode != 0:
            info["fault_error"] = r.stderr[-500:]
            return
        replicas, at = r.stdout.split()[-2:]
        info.update(replicas_before=int(replicas), fault_at=float(at))

    timer = threading.Timer(seconds / 3, kill)
    timer.start()
    log = run_load(url, bodies, "closed", clients=clients, seconds=seconds)
    timer.join()
    after = [s for t, lat, s, _ in log if t + lat >= info.get("fault_at", float("inf"))]
    start = min((t for t, *_ in log), default=0.0)
    return {**summary(log, seconds), **{k: v for k, v in info.items() if k != "fault_at"},
            "fault_after_s": round(info["fault_at"] - start, 1) if "fault_at" in info else None,
            "requests_after_fault": len(after), "errors_after_fault": sum(s >= 500 for s in after)}


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, default=ROOT / "deployments" / "serve.yaml")
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument("--users-from", type=Path, required=True, help="world / dataset folder whose users go to Redis")
    p.add_argument("--instructions", type=Path, default=None, help="instruction records to store first")
    p.add_argument("--port", type=int, default=8017, help="Serve's HTTP proxy")
    p.add_argument("--ray-port", type=int, default=6391)
    p.add_argument("--dashboard-port", type=int, default=8266)
    p.add_argument("--num-cpus", type=int, default=4, help="logical CPUs of the head (replicas ask 1 each)")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--out", type=Path, required=True)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    a = parse(argv)
    with EmbeddedRedis() as redis_server:
        users = sorted(load_users(redis_server.url, a.users_from))
        if a.instructions:
            load_instructions(redis_server.url, a.instructions)
        api_key = secrets.token_hex(16)
        env = {**os.environ, "REDIS_URL": redis_server.url, "OXYGEN_API_KEY": api_key, "HF_HUB_OFFLINE": "1",
               "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
        rendered = Path(tempfile.mkdtemp()) / "serve.yaml"
        rendered.write_text(render(a.config, env, a.bundle, a.port))
        dashboard = f"http://127.0.0.1:{a.dashboard_port}"
        report: dict = {"config": str(a.config.relative_to(ROOT) if a.config.is_relative_to(ROOT) else a.config)}
        sh(["ray", "start", "--head", f"--port={a.ray_port}", f"--dashboard-port={a.dashboard_port}",
            "--dashboard-host=127.0.0.1", f"--num-cpus={a.num_cpus}", "--disable-usage-stats"], env)
        try:
            t0 = time.time()
            sh(["serve", "deploy", str(rendered), "-a", dashboard], env)
            url = f"http://127.0.0.1:{a.port}"
            wait_ready(url, timeout_s=300)
            report["ready_s"] = round(time.time() - t0, 1)
            report["contract"] = contract(url, api_key, users[0])
            bodies = request_mix(users, trigger_items(a.bundle), 2048, logged_queries(a.users_from))
            run_load(url, bodies[:64], "closed", clients=8, seconds=4)  # warm-up
            report["replica_kill"] = kill_under_load(url, bodies, env, a.clients, a.seconds)
            report["serve_status_after"] = subprocess.run(["serve", "status", "-a", dashboard], env=env,
                                                          capture_output=True, text=True).stdout
            print(report, flush=True)
        finally:
            subprocess.run(["serve", "shutdown", "-y", "-a", dashboard], env=env, capture_output=True)
            subprocess.run(["ray", "stop"], env=env, capture_output=True)
    write_report(a.out, report)
    return report


if __name__ == "__main__":
    main()
