"""Save / load an OxygenModel: `model.safetensors` (weights) + `config.json` (its ModelConfig).

    model.save("runs/m1")                      # or checkpoint.save(model, "runs/m1")
    model = OxygenModel.load("runs/m1")
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from safetensors.torch import load_file, save_file

from oxygen.config import ModelConfig

if TYPE_CHECKING:
    from oxygen.model.encdec import OxygenModel

WEIGHTS, CONFIG = "model.safetensors", "config.json"


def save(model: "OxygenModel", directory: Path | str) -> None:
    """Write the weights and config of `model` into `directory` (created if missing)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(d / WEIGHTS))
    (d / CONFIG).write_text(model.cfg.model_dump_json(indent=2))


def load(cls: type["OxygenModel"], directory: Path | str) -> "OxygenModel":
    """Rebuild a model of class `cls` from `directory` written by `save` (eval mode, CPU)."""
    d = Path(directory)
    for name in (WEIGHTS, CONFIG):
        if not (d / name).exists():
            raise FileNotFoundError(f"{d / name} not found; pass a directory written by OxygenModel.save")
    model = cls(ModelConfig.model_validate_json((d / CONFIG).read_text()))
    model.load_state_dict(load_file(str(d / WEIGHTS)))
    return model.eval()
