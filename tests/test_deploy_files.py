"""cluster.yaml, deployments/serve*.yaml, the GPU training config and docs/cluster.md parse and point at
code that exists."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import yaml

from oxygen.serving.app import AppArgs

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["serve.yaml", "serve-gpu.yaml"])
def test_serve_yaml_import_path_resolves(name):
    cfg = yaml.safe_load((ROOT / "deployments" / name).read_text())
    for app in cfg["applications"]:
        module, attr = app["import_path"].split(":")
        assert callable(getattr(importlib.import_module(module), attr))
        args = AppArgs(**app["args"])  # the args build_app validates
        names = {d["name"] for d in app.get("deployments", [])}
        layout_names = {"fused": {"Recommender"}, "split": {"Ingress", "Recommender"}}[args.layout]
        assert names <= layout_names, f"serve.yaml configures {names - layout_names}, which layout {args.layout} lacks"


def test_cluster_yaml_parses_and_installs_requirements():
    cfg = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    assert cfg["head_node_type"] in cfg["available_node_types"]
    setup = " ".join(cfg["setup_commands"])
    assert "requirements.txt" in setup and "requirements-gpu.txt" in setup
    assert any("redis-server" in c for c in cfg["head_start_ray_commands"])


def test_every_documented_job_exists():
    text = (ROOT / "docs" / "cluster.md").read_text() + (ROOT / "README.md").read_text()
    jobs = set(re.findall(r"python -m (apps\.\w+|bench\.\w+)", text))
    assert {"apps.world", "apps.build_sids", "apps.train", "apps.serve"} <= jobs
    for job in jobs:
        assert (ROOT / (job.replace(".", "/") + ".py")).exists(), f"{job} is documented but missing"


def test_the_cluster_redis_needs_a_password_and_stays_private():
    cfg = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    text = " ".join(cfg["head_setup_commands"] + cfg["head_start_ray_commands"])
    assert "--protected-mode no" not in text and "0.0.0.0" not in re.sub(r"--dashboard-host=\S+", "", text)
    assert "requirepass" in text and "bind 127.0.0.1 %s" in text and "appendonly yes" in text
    assert "redis://:%s@" in text  # REDIS_URL carries the credentials
    assert not re.search(r"requirepass [A-Za-z0-9]{8,}", text)  # no literal password in the repo


@pytest.mark.parametrize("name", ["serve.yaml", "serve-gpu.yaml"])
def test_a_cluster_survives_a_crashed_model_replica(name):
    """Both cluster configs put a front before the model replicas (it resends a crashed replica's
    in-flight reads), and the model replicas scale on batches: their target is small, and the
    fronts at their most can put more batches in flight than one replica's target."""
    app = yaml.safe_load((ROOT / "deployments" / name).read_text())["applications"][0]
    args = AppArgs(**app["args"])
    deps = {d["name"]: d for d in app["deployments"]}
    assert args.layout == "split" and set(deps) == {"Ingress", "Recommender"}
    target = deps["Recommender"]["autoscaling_config"]["target_ongoing_requests"]
    assert target <= 4 and deps["Ingress"]["autoscaling_config"]["max_replicas"] * args.forward_in_flight > target
    if name == "serve.yaml":  # CPU replicas are cheap: a crash of either kind leaves one serving
        assert all(d["autoscaling_config"]["min_replicas"] >= 2 for d in deps.values())


@pytest.mark.parametrize("name", ["serve.yaml", "serve-gpu.yaml"])
def test_serve_yaml_takes_its_secrets_from_the_environment(name):
    app = yaml.safe_load((ROOT / "deployments" / name).read_text())["applications"][0]
    env = app["runtime_env"]["env_vars"]
    assert env["REDIS_URL"] == "${REDIS_URL}" and env["OXYGEN_API_KEY"] == "${OXYGEN_API_KEY}"
    assert all(k.startswith("RAY_SERVE_") for k in set(env) - {"REDIS_URL", "OXYGEN_API_KEY"})  # settings, no secrets
    assert app["args"]["require_api_key"] is True


def test_the_gpu_settings_put_the_model_on_a_gpu():
    """serve-gpu.yaml: each replica asks Ray for a GPU and runs on it; configs/world/gpu.yaml trains on CUDA."""
    from oxygen.config import GenerativeConfig, load_config

    app = yaml.safe_load((ROOT / "deployments" / "serve-gpu.yaml").read_text())["applications"][0]
    (rec,) = [d for d in app["deployments"] if d["name"] == "Recommender"]
    assert rec["ray_actor_options"]["num_gpus"] >= 1 and AppArgs(**app["args"]).device == "cuda"
    # split: a CPU front resends a crashed GPU replica's in-flight reads, and is itself replicated
    (front,) = [d for d in app["deployments"] if d["name"] == "Ingress"]
    assert AppArgs(**app["args"]).layout == "split" and front["ray_actor_options"].get("num_gpus", 0) == 0
    assert front["autoscaling_config"]["min_replicas"] >= 2
    cpu = yaml.safe_load((ROOT / "deployments" / "serve.yaml").read_text())["applications"][0]
    assert AppArgs(**app["args"]).max_batch_size > AppArgs(**cpu["args"]).max_batch_size
    cfg = load_config(ROOT / "configs" / "world" / "gpu.yaml", GenerativeConfig)
    assert cfg.train.device == "cuda" and cfg.train.precision == "auto"
    text = (ROOT / "docs" / "cluster.md").read_text()
    assert "serve-gpu.yaml" in text and "configs/world/gpu.yaml" in text and "bench/gpu_check.sh" in text
