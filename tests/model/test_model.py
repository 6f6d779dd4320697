"""OxygenModel end to end: shapes, a tiny batch can be overfitted, bad inputs raise clear errors."""

from __future__ import annotations

import pytest
import torch

from oxygen.model import OxygenModel
from tests.model.helpers import random_batch, tiny_config


def test_forward_shapes_and_parts():
    torch.manual_seed(0)
    model = OxygenModel(tiny_config(moe_experts=3, moe_active=2))
    batch = random_batch(model.cfg, B=5)
    out = model(batch)
    assert out.loss.shape == () and out.ntp.shape == () and out.q2i.shape == ()
    cfg = model.cfg
    expect = out.ntp + cfg.q2i_weight * out.q2i + cfg.moe_aux_weight * out.aux
    assert abs(out.loss.item() - expect.item()) < 1e-6
    assert out.aux.item() > 0  # MoE load balancing is active
    assert {"acc_l0", "ntp_l2", "q2i_align"} <= set(out.metrics)
    logp = model.level_log_probs(batch)
    assert [tuple(x.shape) for x in logp] == [(5, k) for k in cfg.codebook_sizes]
    torch.testing.assert_close(logp[0].exp().sum(-1), torch.ones(5))
    assert model.num_parameters == sum(p.numel() for p in model.parameters()) > 0


@pytest.mark.parametrize("use_item_id", [False, True])
def test_overfits_a_tiny_batch(use_item_id: bool):
    torch.manual_seed(0)
    model = OxygenModel(tiny_config(use_item_id=use_item_id, moe_experts=2, moe_active=1))
    batch = random_batch(model.cfg, B=8)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = model(batch).ntp.item()
    for _ in range(80):
        out = model(batch)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    assert out.ntp.item() < 0.2 * first
    assert out.metrics["acc_l0"] == 1.0


def test_bad_inputs_raise_clear_errors():
    model = OxygenModel(tiny_config())
    batch = random_batch(model.cfg)
    wrong_levels = batch.select(torch.arange(len(batch)))
    wrong_levels.short_codes = wrong_levels.short_codes[..., :2]
    with pytest.raises(ValueError, match="short_codes has 2 SID levels"):
        model(wrong_levels)
    big_code = batch.select(torch.arange(len(batch)))
    big_code.target_codes[0, 1] = 99
    with pytest.raises(ValueError, match="codebook_sizes"):
        model(big_code)
    bad_profile = batch.select(torch.arange(len(batch)))
    bad_profile.profile[0, 0] = 100
    with pytest.raises(ValueError, match="profile_size"):
        model(bad_profile)
    with pytest.raises(ValueError, match="max_positions"):
        OxygenModel(tiny_config(max_positions=8))(batch)
    with pytest.raises(ValueError, match="candidate slots"):
        OxygenModel(tiny_config(candidates=2, use_item_id=True))(random_batch(tiny_config(candidates=3)))


def test_config_rejects_inconsistent_settings():
    with pytest.raises(ValueError, match="divisible"):
        tiny_config(d_model=15)
    with pytest.raises(ValueError, match="moe_active"):
        tiny_config(moe_experts=2, moe_active=3)


def test_rows_without_any_history_stay_finite():
    torch.manual_seed(0)
    model = OxygenModel(tiny_config(profile_slots=0)).eval()
    batch = random_batch(model.cfg)
    batch.short_mask[:] = False
    batch.long_mask[:] = False
    with torch.no_grad():
        assert all(torch.isfinite(x).all() for x in model.level_log_probs(batch))
        state = model.start(batch)
        logp, _ = model.step(state, None, 0)
    assert torch.isfinite(logp).all()
