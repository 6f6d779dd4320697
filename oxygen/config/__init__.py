"""Pydantic models for every job's configuration, and YAML loading. No logic lives here.

Each job (world generation, SID building, training, serving, ...) has one config class. Configs
load from YAML with `load_config(path, Cls, sets=[...])`: a file may start from others
(`extends: base.yaml`, merged key by key), and `key.path=value` overrides (`--set` on every job's
command line) apply last. Unknown keys are errors, so a typo never passes.

    cfg = load_config("configs/office/oxygen.yaml", GenerativeConfig, sets=["train.epochs=3"])

Modules: `loading` (the mechanism), `device` (the device / precision fields a job running a
model inherits), `models` (recommenders and their parts), `jobs` (world, the
instruction LM, near-line), `rl` (post-training). Everything is importable from `oxygen.config`.
"""

from oxygen.config.device import OnDevice
from oxygen.config.jobs import InstructorConfig, LMConfig, NearlineConfig, WorldConfig
from oxygen.config.loading import ConfigError, StrictConfig, apply_set, load_config, merge
from oxygen.config.models import (
    RERANK_GRID,
    GenerativeConfig,
    InstructionsConfig,
    MarkovConfig,
    ModelConfig,
    PopConfig,
    RerankConfig,
    SASRecConfig,
    SIDConfig,
    TrainConfig,
    TransitionConfig,
)
from oxygen.config.rl import (
    ABTestConfig,
    ObjectiveConfig,
    PostTrainConfig,
    RankerConfig,
    RankingValue,
    RewardConfig,
    RewardParts,
    RolloutConfig,
)

__all__ = [
    "RERANK_GRID", "ABTestConfig", "ConfigError", "GenerativeConfig", "InstructionsConfig",
    "InstructorConfig", "LMConfig", "MarkovConfig", "ModelConfig", "NearlineConfig", "ObjectiveConfig", "OnDevice",
    "PostTrainConfig", "PopConfig",
    "RankerConfig", "RankingValue", "RerankConfig", "RewardConfig", "RewardParts", "RolloutConfig", "SASRecConfig",
    "SIDConfig", "StrictConfig", "TrainConfig", "TransitionConfig", "WorldConfig", "apply_set", "load_config",
    "merge",
]
