"""Instruction guidance (oxygen.decoding.guidance): the batched `Guided` wrapper decodes like a slow
reference that runs the model with and without the instruction separately, per-request weights
decode each request as its own weight would, the decode path applies a bundle's per-pool weights
(and not under beam sampling), gated pools guide only the requests whose gate is on (checked
against guided and plain lists picked row by row), a bundle keeps its weights, gated scenarios and
levels across save and load, and the guided scores equal two teacher-forced passes (with the
instruction and with the default) per level."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from bench.tiny_bundle import make_bundle
from oxygen.data.batching import collate
from oxygen.data.schema import Row
from oxygen.decoding.generate import generate_items
from oxygen.decoding.guidance import Guided, unconditioned
from oxygen.decoding.reference import reference_beam_search
from oxygen.model import OxygenModel
from oxygen.model.bundle import Bundle
from oxygen.semantic_ids.trie import PrefixTrie
from tests.model.helpers import random_batch, tiny_config

SCENARIOS = ["homepage", "search", "homepage", "channel", "homepage", "cart"]


class ReferenceGuided:
    """One beam at a time: a beam's state is the pair (with the instruction, with the default),
    each advanced by its own model call; the guided log-probs are computed from the two."""

    def __init__(self, model, weight: float) -> None:
        self.model, self.weight, self.codebook_sizes = model, weight, model.codebook_sizes

    def start(self, batch):
        return self.model.start(batch), self.model.start(unconditioned(batch))

    def step(self, state, codes, level):
        cond, c_state = self.model.step(state[0], codes, level)
        plain, u_state = self.model.step(state[1], codes, level)
        w = self.weight
        return torch.log_softmax((1 + w) * cond - w * plain, dim=-1), (c_state, u_state)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Bundle:
    return make_bundle(tmp_path_factory.mktemp("guidance") / "b")


@pytest.fixture(scope="module")
def batch(bundle):
    """Six requests, each with a random instruction embedding (the last one: the default)."""
    rows = [Row(user_id=f"u{k}", history=[3 * k, 3 * k + 1, 7], target=5, scenario=s, trigger=k + 30)
            for k, s in enumerate(SCENARIOS)]
    b = collate(rows, bundle.space, bundle.collate_cfg, with_targets=False)
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(b.instr_emb.shape, generator=g)
    mask = torch.ones_like(b.instr_mask)
    emb[-1], mask[-1] = 0.0, False
    return replace(b, instr_emb=emb, instr_mask=mask)


def _tries(bundle):
    dec = bundle.decoder()
    return dec, [dec.tries[dec.names.index(s)] for s in SCENARIOS]


@pytest.mark.parametrize("w", [-0.5, 0.0, 0.8])
def test_guided_decoding_matches_the_slow_reference(bundle, batch, w):
    dec, tries = _tries(bundle)
    pool = list(range(len(SCENARIOS)))
    ids, scores = generate_items(Guided(bundle.model, w), batch, tries, beam=6, k=4, pool_index=torch.tensor(pool))
    ref_ids, ref_scores = reference_beam_search(ReferenceGuided(bundle.model, w), batch, tries, pool, 6, 4)
    for b in range(len(batch)):
        assert ids[b].tolist() == ref_ids[b]
        np.testing.assert_allclose(scores[b].numpy(), ref_scores[b], rtol=1e-4, atol=1e-4)


def test_guidance_at_zero_and_on_a_default_instruction_changes_nothing(bundle, batch):
    dec, tries = _tries(bundle)
    pool = torch.arange(len(SCENARIOS))
    plain = generate_items(bundle.model, batch, tries, beam=6, k=4, pool_index=pool)
    zero = generate_items(Guided(bundle.model, 0.0), batch, tries, beam=6, k=4, pool_index=pool)
    strong = generate_items(Guided(bundle.model, 1.5), batch, tries, beam=6, k=4, pool_index=pool)
    assert zero[0].tolist() == plain[0].tolist()
    np.testing.assert_allclose(zero[1].numpy(), plain[1].numpy(), atol=1e-5)
    assert strong[0][-1].tolist() == plain[0][-1].tolist()  # the last request has no instruction: c = u
    assert strong[0][:-1].tolist() != plain[0][:-1].tolist()  # the weight does act on the others


def test_per_request_weights_decode_each_request_as_its_own_weight(bundle, batch):
    dec, tries = _tries(bundle)
    pool = torch.arange(len(SCENARIOS))
    weights = torch.tensor([0.0, -0.5, 0.8, 0.0, -0.15, 0.3])
    ids, scores = generate_items(Guided(bundle.model, weights), batch, tries, beam=6, k=4, pool_index=pool)
    for w in set(weights.tolist()):
        alone, alone_scores = generate_items(Guided(bundle.model, w), batch, tries, beam=6, k=4, pool_index=pool)
        for b in np.flatnonzero(weights.numpy() == w):
            assert ids[b].tolist() == alone[b].tolist()
            np.testing.assert_allclose(scores[b].numpy(), alone_scores[b].numpy(), atol=1e-5)


def test_the_decode_path_applies_the_weight_of_each_requests_pool(bundle, batch):
    histories = [[1, 2]] * len(SCENARIOS)
    plain = bundle.decoder().decode(batch, histories, beam=6, k=4, pools=SCENARIOS)
    dec = bundle.decoder()
    dec.guidance = {"homepage": 0.8}
    guided = dec.decode(batch, histories, beam=6, k=4, pools=SCENARIOS)
    dec.guidance = {}
    dec.model = Guided(bundle.model, 0.8)
    everywhere = dec.decode(batch, histories, beam=6, k=4, pools=SCENARIOS)
    for b, s in enumerate(SCENARIOS):
        want = everywhere if s == "homepage" else plain
        assert guided.items[b].tolist() == want.items[b].tolist(), s
    dec = bundle.decoder()
    dec.guidance = {"homepage": 0.8}
    sampled = dec.decode(batch, histories, beam=6, k=4, pools=SCENARIOS, sampling={"seed": 3})
    unguided = bundle.decoder().decode(batch, histories, beam=6, k=4, pools=SCENARIOS, sampling={"seed": 3})
    assert sampled.items.tolist() == unguided.items.tolist()  # beam sampling draws from the model as it is


def test_a_gated_pool_guides_only_the_requests_whose_gate_is_on(bundle, batch):
    histories = [[1, 2]] * len(SCENARIOS)
    gates = [True, True, False, True, True, False]
    plain = bundle.decoder().decode(batch, histories, beam=6, k=4, pools=SCENARIOS)
    dec = bundle.decoder()
    dec.model = Guided(bundle.model, 0.8, (0,))
    everywhere = dec.decode(batch, histories, beam=6, k=4, pools=SCENARIOS)
    dec = bundle.decoder()
    dec.guidance, dec.gated, dec.guidance_levels = {"homepage": 0.8, "channel": 0.8}, frozenset({"homepage"}), (0,)
    gated = dec.decode(batch, histories, beam=6, k=4, pools=SCENARIOS, gates=gates)
    off = dec.decode(batch, histories, beam=6, k=4, pools=SCENARIOS)  # no gates: every gate off
    for b, s in enumerate(SCENARIOS):
        guided = s == "channel" or (s == "homepage" and gates[b])
        assert gated.items[b].tolist() == (everywhere if guided else plain).items[b].tolist(), (b, s)
        assert off.items[b].tolist() == (everywhere if s == "channel" else plain).items[b].tolist(), (b, s)
    assert gated.items[0].tolist() != plain.items[0].tolist()  # the weight acts where the gate is on
    beam = dec.beam(batch, 6, 4, SCENARIOS, gates=gates)[0]  # the model alone, gated the same way
    guided_beam = Guided(bundle.model, 0.8, (0,))
    want = [bundle.decoder().beam(batch, 6, 4, SCENARIOS)[0]]
    dec.model, dec.guidance = guided_beam, {}
    want.append(dec.beam(batch, 6, 4, SCENARIOS)[0])
    for b, s in enumerate(SCENARIOS):
        guided = s == "channel" or (s == "homepage" and gates[b])
        assert beam[b].tolist() == want[int(guided)][b].tolist(), (b, s)
    with pytest.raises(ValueError, match="one flag per request"):
        dec.decode(batch, histories, beam=6, k=4, pools=SCENARIOS, gates=[True])


def test_a_bundle_keeps_gated_scenarios_and_levels_and_reads_the_flat_file(bundle, tmp_path):
    import json

    bundle.guidance, bundle.guidance_gated, bundle.guidance_levels = {"homepage": 0.5}, frozenset({"homepage"}), (0,)
    try:
        bundle.save(tmp_path / "g")
    finally:
        bundle.guidance, bundle.guidance_gated, bundle.guidance_levels = {}, frozenset(), (0, 1, 2)
    again = Bundle.load(tmp_path / "g")
    dec = again.decoder()
    assert (again.guidance_gated, again.guidance_levels) == (frozenset({"homepage"}), (0,))
    assert (dec.gated, dec.guidance_levels) == (frozenset({"homepage"}), (0,))
    (tmp_path / "g" / "guidance.json").write_text(json.dumps({"homepage": -0.15}))  # written before gating
    old = Bundle.load(tmp_path / "g")
    assert (old.guidance, old.guidance_gated, old.guidance_levels) == ({"homepage": -0.15}, frozenset(), (0, 1, 2))
    (tmp_path / "g" / "guidance.json").write_text(json.dumps({"weights": {"homepage": 1.0}, "gated": ["search"]}))
    with pytest.raises(ValueError, match=r"gated guidance for scenarios \['search'\] without a guidance weight"):
        Bundle.load(tmp_path / "g")
    (tmp_path / "g" / "guidance.json").write_text(json.dumps({"weights": {"homepage": 1.0}, "levels": [3]}))
    with pytest.raises(ValueError, match="guidance levels"):
        Bundle.load(tmp_path / "g")


def test_a_bundle_keeps_its_weights_and_refuses_unknown_scenarios(bundle, tmp_path):
    bundle.guidance = {"homepage": -0.15}
    try:
        bundle.save(tmp_path / "g")
    finally:
        bundle.guidance = {}
    again = Bundle.load(tmp_path / "g")
    assert again.guidance == {"homepage": -0.15} and again.decoder().guidance == {"homepage": -0.15}
    assert Bundle.load(tmp_path / "g").decoder(tables=again.decoder().tables()).guidance == {"homepage": -0.15}
    with pytest.raises(ValueError, match=r"guidance names pools \['mall'\]"):
        again.decoder().guidance = {"mall": 0.5}
    (tmp_path / "g" / "guidance.json").write_text('{"mall": 0.5}')
    with pytest.raises(ValueError, match=r"guidance weights for scenarios \['mall'\]"):
        Bundle.load(tmp_path / "g")


@pytest.fixture(scope="module")
def toy():
    torch.manual_seed(0)
    cfg = tiny_config(codebook_sizes=(6, 5, 4))
    model = OxygenModel(cfg).eval()
    batch = random_batch(cfg, B=6)
    batch.instr_mask[:] = True
    codes = np.array(np.meshgrid(*[np.arange(k) for k in cfg.codebook_sizes], indexing="ij")).reshape(3, -1).T
    return model, batch, PrefixTrie(codes, np.arange(len(codes)))


def test_weight_zero_is_the_plain_model(toy):
    model, batch, trie = toy
    plain = generate_items(model, batch, [trie], beam=8, k=5)
    guided = generate_items(Guided(model, 0.0), batch, [trie], beam=8, k=5)
    assert torch.equal(plain[0], guided[0]) and torch.allclose(plain[1], guided[1], atol=1e-5)


@pytest.mark.parametrize("weight, levels", [(1.0, (0, 1, 2)), (2.0, (0,))])
def test_guided_scores_match_the_two_pass_reference(toy, weight, levels):
    model, batch, trie = toy
    items, scores = generate_items(Guided(model, weight, levels), batch, [trie], beam=8, k=5)
    paths = torch.as_tensor(trie.codes)[items.clamp(min=0)]  # item id == row of the full trie here
    with torch.no_grad():
        for b in range(len(batch)):
            one = batch.select(torch.tensor([b]).repeat(5))
            cond = model.level_log_probs(one, paths[b])
            plain = model.level_log_probs(unconditioned(one), paths[b])
            total = torch.zeros(5)
            for level, (c, u) in enumerate(zip(cond, plain)):
                w = weight if level in levels else 0.0
                mixed = torch.log_softmax((1 + w) * c - w * u, dim=-1)
                total += mixed.gather(1, paths[b][:, level:level + 1])[:, 0]
            assert torch.allclose(scores[b], total, atol=1e-4), (b, scores[b], total)
    plain_items, _ = generate_items(model, batch, [trie], beam=8, k=5)
    assert not torch.equal(plain_items, items)
