"""Every YAML under configs/ validates with its config class (with its `extends:` chain), carries no
output folder, names itself in its example command, and a few representative files give exactly
the settings their recorded runs used."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from oxygen.config import ConfigError, GenerativeConfig, PostTrainConfig, SASRecConfig, load_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").rglob("*.yaml"))
FUSION_WEIGHTS = [0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0]


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def config_class(path: Path) -> type[BaseModel]:
    """SASRecConfig for the sasrec files, PostTrainConfig for the post_* files, GenerativeConfig
    for every other one."""
    if path.stem.startswith("post"):
        return PostTrainConfig
    return SASRecConfig if "sasrec" in path.stem else GenerativeConfig


def load(rel: str) -> BaseModel:
    path = ROOT / rel
    return load_config(path, config_class(path))


def test_there_are_configs_in_folders_per_dataset():
    assert {p.parent.name for p in CONFIGS} == {"office", "world"}
    assert not list((ROOT / "configs").glob("*.yaml")), "configs/ holds one folder per dataset, no flat files"


@pytest.mark.parametrize("path", CONFIGS, ids=_rel)
def test_every_config_validates(path: Path):
    cls = config_class(path)
    try:
        load_config(path, cls)
    except ConfigError as e:
        pytest.fail(f"{_rel(path)} does not validate as {cls.__name__}: {e}")


@pytest.mark.parametrize("path", CONFIGS, ids=_rel)
def test_no_output_folders_and_the_example_names_the_file(path: Path):
    text = path.read_text()
    assert "out_dir:" not in text, f"{_rel(path)}: output folders belong on the command line (--out)"
    comment = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    assert f"--config {_rel(path)}" in comment, f"{_rel(path)}: keep an example command naming this file"


def test_post_ranking_is_the_recorded_post_training_setting():
    cfg = load("configs/world/post_ranking.yaml")
    assert cfg.learn_on == "valid_early" and cfg.objective.kl_beta == 4.0 and cfg.requests == 512
    assert (cfg.rollout.group, cfg.rollout.sampling, cfg.lr) == (16, False, 1e-4)
    assert all((w.ranking, w.relevance, w.diversity) == (1.0, 0.0, 0.0) for w in cfg.reward.weights.values())


def test_office_oxygen_is_the_selected_fused_setting():
    cfg = load("configs/office/oxygen.yaml")
    assert cfg.variant == "oxygen" and cfg.eval_beam == 50
    assert (cfg.sid.source, cfg.sid.width) == ("fused", 64)
    assert (cfg.model.d_model, cfg.model.d_ff, cfg.model.dropout) == (128, 256, 0.1)
    assert cfg.model.use_item_id and not cfg.model.use_q2i and not cfg.model.copy_head
    assert (cfg.train.epochs, cfg.train.patience, cfg.train.max_valid_rows) == (20, 5, None)
    assert (cfg.train.ema_decay, cfg.train.threads, cfg.model.candidates) == (0.99, 1, 0)
    assert cfg.rerank.weights == FUSION_WEIGHTS


def test_office_copy_and_tiger_differ_from_oxygen_only_where_stated():
    oxygen = load("configs/office/oxygen.yaml").model_dump()
    copy = load("configs/office/oxygen_copy.yaml")
    assert copy.model.copy_head and copy.model.candidates == 20 and copy.rerank.weights == []
    assert copy.model_dump()["sid"] == oxygen["sid"] and copy.train.ema_decay == 0.99
    tiger = load("configs/office/tiger.yaml")
    assert tiger.variant == "tiger" and tiger.model.use_q2i and tiger.rerank.weights == FUSION_WEIGHTS
    tiger_copy = load("configs/office/tiger_copy.yaml")
    assert tiger_copy.variant == "tiger" and tiger_copy.model.copy_head and not tiger_copy.model.use_q2i


def test_office_sasrec():
    cfg = load("configs/office/sasrec.yaml")
    assert isinstance(cfg, SASRecConfig) and (cfg.hidden, cfg.threads) == (128, 1)


def test_world_demo_and_ablation_settings():
    demo = load("configs/world/demo.yaml")
    assert (demo.model.d_model, demo.model.d_ff, demo.eval_beam) == (96, 192, 30)
    assert (demo.train.epochs, demo.train.patience, demo.train.threads) == (20, 3, 2)
    assert (demo.train.max_valid_rows, demo.train.long_len, demo.sid.source) == (800, 40, "auto")
    ablation = load("configs/world/ablation.yaml")
    assert (ablation.train.epochs, ablation.train.patience, ablation.train.threads) == (4, 2, 1)
    assert ablation.sid.source == "text"
    converged = load("configs/world/converged.yaml")
    assert (converged.train.epochs, converged.train.patience, converged.sid.source) == (20, 5, "text")
    copy = load("configs/world/copy.yaml")
    assert copy.model.copy_head and copy.model.candidates == 20
    assert copy.model_dump(exclude={"model": {"copy_head", "candidates"}}) == converged.model_dump(
        exclude={"model": {"copy_head", "candidates"}})


def test_documented_set_commands_reproduce_earlier_runs():
    # docs/notes/2026-11-23-office-first-session.md: oxygen_office.yaml as base.yaml + --set
    cfg = load_config(ROOT / "configs/office/base.yaml", GenerativeConfig, sets=[
        "sid.source=text", "sid.width=null", "model.use_q2i=true", "train.epochs=14", "train.patience=3",
        "train.max_valid_rows=2000", "train.ema_decay=0"])
    assert (cfg.sid.source, cfg.sid.width, cfg.model.use_q2i, cfg.model.dropout) == ("text", None, True, 0.1)
    assert (cfg.train.epochs, cfg.train.patience, cfg.train.max_valid_rows, cfg.train.ema_decay) == (14, 3, 2000, 0.0)
