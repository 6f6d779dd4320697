"""Instruction token placements, the scenario / trigger / reasoning conditioning and their defaults."""

from __future__ import annotations

import itertools

import pytest
import torch

from oxygen.model import OxygenModel
from tests.model.helpers import random_batch, tiny_config

PLACEMENTS = ["none", "right_of_bos", "replace_bos", "add_to_bos", "left_of_bos", "two_tokens"]


def _first_level(model: OxygenModel, batch) -> torch.Tensor:
    with torch.no_grad():
        return model.level_log_probs(batch)[0]


def _copy(batch):
    return batch.select(torch.arange(len(batch)))


def test_placements_run_and_differ():
    batch = random_batch(tiny_config())
    outs = {}
    for p in PLACEMENTS:
        torch.manual_seed(0)
        model = OxygenModel(tiny_config(instruction_placement=p)).eval()
        assert model.start(batch).prefix[0][0].shape[2] == model.instr.length
        outs[p] = _first_level(model, batch)
    for a, b in itertools.combinations(PLACEMENTS, 2):
        assert not torch.allclose(outs[a], outs[b], atol=1e-4), (a, b)


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_scenario_reaches_decoder_only_through_an_instruction(placement: str):
    torch.manual_seed(0)
    model = OxygenModel(tiny_config(instruction_placement=placement, use_igr=False)).eval()
    batch = random_batch(model.cfg)
    other = _copy(batch)
    other.scenario = (batch.scenario + 1) % model.cfg.n_scenarios
    changed = not torch.allclose(_first_level(model, other), _first_level(model, batch))
    assert changed == (placement != "none")


@pytest.mark.parametrize("placement", ["right_of_bos", "two_tokens"])
def test_missing_trigger_uses_learnable_default(placement: str):
    torch.manual_seed(0)
    model = OxygenModel(tiny_config(instruction_placement=placement)).eval()
    batch = random_batch(model.cfg)
    batch.trigger_mask = torch.tensor([True, False, True, False])
    other = _copy(batch)
    other.trigger_codes = (batch.trigger_codes + 1) % torch.tensor(model.codebook_sizes)
    a, b = _first_level(model, batch), _first_level(model, other)
    torch.testing.assert_close(a[1::2], b[1::2])  # no trigger: codes ignored
    assert not torch.allclose(a[0::2], b[0::2])  # real trigger: codes matter
    with torch.no_grad():
        model.instr.default_trigger.add_(torch.randn_like(model.instr.default_trigger))
    c = _first_level(model, batch)
    assert not torch.allclose(a[1::2], c[1::2]) and torch.allclose(a[0::2], c[0::2])


def test_missing_instruction_uses_learnable_default():
    torch.manual_seed(0)
    model = OxygenModel(tiny_config()).eval()
    batch = random_batch(model.cfg)
    batch.instr_mask = torch.tensor([True, False, True, False])
    other = _copy(batch)
    other.instr_emb = torch.randn_like(batch.instr_emb)
    a, b = _first_level(model, batch), _first_level(model, other)
    torch.testing.assert_close(a[1::2], b[1::2])
    assert not torch.allclose(a[0::2], b[0::2])
    model.train()
    model(batch).loss.backward()
    assert model.instr.default_reasoning.grad.abs().sum() > 0


def test_reasoning_off_ignores_instruction_text():
    torch.manual_seed(0)
    model = OxygenModel(tiny_config(use_reasoning=False)).eval()
    batch = random_batch(model.cfg)
    other = _copy(batch)
    other.instr_emb = torch.randn_like(batch.instr_emb)
    torch.testing.assert_close(_first_level(model, batch), _first_level(model, other))


def test_query_adapter_takes_search_rows_only():
    """With `query_adapter`, each row's reasoning vector equals a per-row reference: the query adapter
    on search rows, the instruction adapter elsewhere, the default where the mask is off; changing
    the instruction adapter moves only non-search rows."""
    from oxygen.model.instruction import SEARCH_ID

    torch.manual_seed(0)
    model = OxygenModel(tiny_config(query_adapter=True)).eval()
    ip = model.instr
    emb = torch.randn(4, model.cfg.instr_dim)
    mask = torch.tensor([True, True, False, True])
    scen = torch.tensor([SEARCH_ID, SEARCH_ID + 1, SEARCH_ID, 0])
    with torch.no_grad():
        r = ip.reasoning(emb, mask, scen)
        for b in range(4):
            want = (ip.default_reasoning if not mask[b] else
                    ip.query_adapter(emb[b]) if scen[b] == SEARCH_ID else ip.adapter(emb[b]))
            torch.testing.assert_close(r[b], want)
        ip.adapter[-1].bias.add_(1.0)
        moved = (ip.reasoning(emb, mask, scen) - r).abs().sum(-1) > 0
    assert moved.tolist() == [False, True, False, True]
    assert OxygenModel(tiny_config()).instr.query_adapter is None
