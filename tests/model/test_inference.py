"""The KV-cached StepModel API (start / step / select) against the full teacher-forced forward pass."""

from __future__ import annotations

import pytest
import torch

from oxygen.model import OxygenModel
from tests.model.helpers import random_batch, tiny_config

PLACEMENTS = ["none", "right_of_bos", "replace_bos", "add_to_bos", "left_of_bos", "two_tokens"]


def _model(**kw: object) -> OxygenModel:
    torch.manual_seed(0)
    return OxygenModel(tiny_config(**kw)).eval()


def _incremental(model: OxygenModel, batch, codes: torch.Tensor) -> list[torch.Tensor]:
    state = model.start(batch)
    out = []
    for level in range(len(model.codebook_sizes)):
        logp, state = model.step(state, None if level == 0 else codes[:, level - 1], level)
        out.append(logp)
    return out


@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("moe", [0, 3])
def test_cached_steps_match_teacher_forcing(placement: str, moe: int):
    model = _model(instruction_placement=placement, moe_experts=moe, moe_active=2)
    batch = random_batch(model.cfg)
    with torch.no_grad():
        ref = model.level_log_probs(batch)
        inc = _incremental(model, batch, batch.target_codes)
    for a, b in zip(inc, ref):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_candidate_tokens_are_read_and_cached_steps_still_match():
    model = _model(candidates=4, use_item_id=True)
    batch = random_batch(model.cfg)
    with torch.no_grad():
        ref = model.level_log_probs(batch)
        inc = _incremental(model, batch, batch.target_codes)
        other = batch.select(torch.arange(len(batch)))
        other.cand_items = (other.cand_items + 1) % (model.cfg.n_items + 1)
        moved = model.level_log_probs(other)
    for a, b in zip(inc, ref):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(moved[0], ref[0])  # the encoder does read the candidates


def test_beams_share_cross_kv_and_match_reference():
    model = _model(moe_experts=2, moe_active=1)
    batch, B, n = random_batch(model.cfg, B=3), 3, 4
    g = torch.Generator().manual_seed(1)
    codes = torch.stack([torch.randint(0, k, (B * n,), generator=g) for k in model.codebook_sizes], 1)
    with torch.no_grad():
        state = model.start(batch)
        kv0 = [k.data_ptr() for k, _ in state.cross]
        pre0 = [k.data_ptr() for k, _ in state.prefix]
        _, state = model.step(state, None, 0)
        state = model.select(state, torch.arange(B).repeat_interleave(n))  # n beams per request
        lp1, state = model.step(state, codes[:, 0], 1)
        # reverse the beams inside each request: still contiguous per request
        perm = torch.arange(B * n).view(B, n).flip(1).reshape(-1)
        state = model.select(state, perm)
        lp2, state = model.step(state, codes[perm, 1], 2)
        rows = torch.arange(B).repeat_interleave(n)
        ref = model.level_log_probs(batch.select(rows), codes)
    assert state.num_beams == B * n and state.beams == n
    for (k, v), ptr in zip(state.cross, kv0):
        assert k.shape[0] == B and v.shape[0] == B  # per request, not per beam
        assert k.data_ptr() == ptr  # the very tensors computed by start
    for (k, _), ptr in zip(state.prefix, pre0):
        assert k.shape[0] == B and k.data_ptr() == ptr  # decoder prefix K/V: per request, never copied
    torch.testing.assert_close(lp1, ref[1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(lp2, ref[2][perm], atol=1e-5, rtol=1e-5)


def test_restart_gives_the_rows_own_start_without_encoding():
    model = _model(moe_experts=2, moe_active=1)
    batch = random_batch(model.cfg, B=4)
    rows = torch.tensor([2, 0, 2])
    codes = batch.target_codes[rows]
    with torch.no_grad():
        state = model.start(batch)
        again = model.restart(state, rows)
        ref = _incremental(model, batch.select(rows), codes)
        got = []
        for level in range(len(model.codebook_sizes)):
            logp, again = model.step(again, None if level == 0 else codes[:, level - 1], level)
            got.append(logp)
        _, stepped = model.step(state, None, 0)
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="before any step"):
        model.restart(stepped, rows)


def test_state_shapes():
    model = _model()
    batch = random_batch(model.cfg, B=2)
    with torch.no_grad():
        state = model.start(batch)
    h, dh = model.cfg.n_heads, model.cfg.d_model // model.cfg.n_heads
    T = state.mem_mask.shape[1]
    assert state.cross[0][0].shape == (2, h, T, dh)
    assert state.prefix[0][0].shape == (2, h, model.instr.length, dh)
    assert state.gen[0][0].shape == (2, 0, h, dh)
    assert state.row.tolist() == [0, 1]


def test_bad_steps_raise():
    model = _model()
    batch = random_batch(model.cfg, B=2)
    with torch.no_grad():
        state = model.start(batch)
        with pytest.raises(ValueError, match="level"):
            model.step(state, None, 1)
        _, state = model.step(state, None, 0)
        with pytest.raises(ValueError, match="codes"):
            model.step(state, None, 1)
        mixed = model.select(state, torch.tensor([0, 1, 0, 1]))  # interleaved, not contiguous
        with pytest.raises(ValueError, match="contiguous"):
            model.step(mixed, torch.zeros(4, dtype=torch.long), 1)
