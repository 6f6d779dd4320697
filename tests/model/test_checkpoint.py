"""save / load round trip: same config, same weights, same outputs; clear error on a bad directory."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from oxygen.model import OxygenModel
from tests.model.helpers import random_batch, tiny_config


def test_save_load_round_trip(tmp_path: Path):
    torch.manual_seed(0)
    model = OxygenModel(tiny_config(use_item_id=True, moe_experts=2, moe_active=1,
                                    instruction_placement="two_tokens")).eval()
    model.save(tmp_path / "m")
    loaded = OxygenModel.load(tmp_path / "m")
    assert loaded.cfg == model.cfg
    batch = random_batch(model.cfg)
    with torch.no_grad():
        for a, b in zip(model.level_log_probs(batch), loaded.level_log_probs(batch)):
            torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert loaded.num_parameters == model.num_parameters


def test_load_missing_directory_is_clear(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="OxygenModel.save"):
        OxygenModel.load(tmp_path / "nothing")
