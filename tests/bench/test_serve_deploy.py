"""bench.serve_deploy renders a cluster's Serve config as a head deploys it."""

from pathlib import Path

import pytest
import yaml

from bench.serve_deploy import ROOT, render

ENV = {"REDIS_URL": "redis://:pw@10.0.0.5:6390/0", "OXYGEN_API_KEY": "k" * 32}


def test_the_config_is_rendered_with_its_secrets_an_absolute_bundle_and_the_port(tmp_path):
    cfg = yaml.safe_load(render(ROOT / "deployments" / "serve.yaml", ENV, Path("runs/b"), 8017))
    app = cfg["applications"][0]
    assert app["runtime_env"]["env_vars"]["REDIS_URL"] == ENV["REDIS_URL"]
    assert app["runtime_env"]["env_vars"]["OXYGEN_API_KEY"] == ENV["OXYGEN_API_KEY"]
    assert Path(app["args"]["bundle"]).is_absolute() and app["args"]["bundle"].endswith("runs/b")
    assert cfg["http_options"]["port"] == 8017
    assert "$" not in render(ROOT / "deployments" / "serve.yaml", ENV, Path("b"), 8000)


def test_a_missing_secret_stops_the_render():
    with pytest.raises(KeyError, match="OXYGEN_API_KEY"):
        render(ROOT / "deployments" / "serve.yaml", {"REDIS_URL": "redis://x"}, Path("b"), 8000)
