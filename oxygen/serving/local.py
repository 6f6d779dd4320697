"""The service on this machine: start local Ray + Ray Serve with the app, wait until it is ready,
and shut both down. What `python -m apps.serve` and the demo use (a cluster uses `serve deploy`).

    url = start_local(bundle, redis_url, port=8000)     # http://127.0.0.1:8000 once /readyz answers
    stop_local()
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx
import ray
from ray import serve

from oxygen.config import NearlineConfig
from oxygen.serving.app import build_app
from oxygen.serving.instruction_service import ServiceArgs, start_instruction_service
from oxygen.serving.nearline import NearlineArgs, start_nearline

# a busy 2-core laptop can take >15 s to start the HTTP proxy; Serve's default gives up
SLOW_START = {"RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "60", "RAY_SERVE_PROXY_HEALTH_CHECK_TIMEOUT_S": "60"}
# Serve settings measured faster on this CPU (docs/benchmarks.d/serving.md): the ingress replica
# answers HTTP on its own port (Serve's direct ingress: `direct_url`, no proxy hop; the proxy port
# still works and forwards to it), and user code runs on the replica's main event loop (no thread
# hop per request). A replica drains 1 s before it stops (30 s by default, for an external load
# balancer to deregister it; none locally). Read when Ray starts; an explicit environment wins.
SERVE_CONTROLLER_NAME, SERVE_NAMESPACE = "SERVE_CONTROLLER_ACTOR", "serve"  # Serve's own names
FAST_SERVE = {"RAY_SERVE_ENABLE_DIRECT_INGRESS": "1", "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
              "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "1"}


def wait_ready(url: str, timeout_s: float = 120) -> None:
    """Poll `url`/readyz until it answers 200; a RuntimeError after `timeout_s`."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError(f"the service did not become ready at {url}/readyz within {timeout_s:.0f} s")


def start_local(bundle: Path, redis_url: str, port: int, **app: Any) -> str:
    """Start local Ray + Serve with the app on 127.0.0.1:port; return the base URL once ready.
    `app` are further AppArgs fields (max_batch_size, recommender_replicas, layout, autoscaling, ...)."""
    init_local(redis_url)  # logical CPUs: the recommender replicas (1 CPU each) and a split layout's front
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(build_app({"bundle": str(Path(bundle).resolve()), "redis_url": redis_url, **app}), route_prefix="/")
    url = f"http://127.0.0.1:{port}"
    wait_ready(url)
    return url


def direct_urls(app: str = "default") -> list[str]:
    """Base URLs of the app's ingress replicas' own HTTP ports (direct ingress; what an external
    load balancer targets), from the Serve controller's target groups; [] without direct ingress
    (the targets are then the proxies). Local Ray is one node, so they are on 127.0.0.1."""
    controller = ray.get_actor(SERVE_CONTROLLER_NAME, namespace=SERVE_NAMESPACE)
    groups = ray.get(controller.get_target_groups.remote(app))
    return [f"http://127.0.0.1:{t.port}" for g in groups if g.protocol == "HTTP" and g.app_name == app
            for t in g.targets if t.name.startswith("SERVE_REPLICA")]


def init_local(redis_url: str) -> None:
    """Local Ray: 6 logical CPUs at least, so the service (ingress + recommender), the instruction
    service and the near-line workers all get theirs (a redeployed service must find a free one)."""
    env = {"HF_HUB_OFFLINE": "1", "REDIS_URL": redis_url, **SLOW_START, **FAST_SERVE}
    os.environ.update({k: v for k, v in env.items() if k not in os.environ})
    env = {k: os.environ[k] for k in env}
    if not ray.is_initialized():
        ray.init(num_cpus=max(6, os.cpu_count() or 1), include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": env})


def start_nearline_local(data: Path, redis_url: str, cfg: NearlineConfig, prefix: str = "oxygen"):
    """Near-line workers (and, for backend `service`, the vLLM instruction service on cfg.model)
    on local Ray; returns the supervisor's handle."""
    init_local(redis_url)
    if cfg.backend == "service":
        start_instruction_service(ServiceArgs(model_dir=str(Path(cfg.model).resolve())))
    return start_nearline(NearlineArgs(data=str(Path(data).resolve()), redis_url=redis_url, prefix=prefix,
                                       config=cfg))


def stop_local() -> None:
    """Shut down Serve and the local Ray instance."""
    serve.shutdown()
    ray.shutdown()
