"""bench.instruction_guidance's `Guided` StepModel: weight 0 decodes exactly as the plain model; the
guided scores equal a slow reference built from two teacher-forced passes (with the request's
instruction and with the default), and guidance changes the answers of requests with an instruction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.instruction_guidance import Guided, unconditioned
from oxygen.decoding.generate import generate_items
from oxygen.model import OxygenModel
from oxygen.semantic_ids.trie import PrefixTrie
from tests.model.helpers import random_batch, tiny_config


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    cfg = tiny_config(codebook_sizes=(6, 5, 4))
    model = OxygenModel(cfg).eval()
    batch = random_batch(cfg, B=6)
    batch.instr_mask[:] = True
    codes = np.array(np.meshgrid(*[np.arange(k) for k in cfg.codebook_sizes], indexing="ij")).reshape(3, -1).T
    return model, batch, PrefixTrie(codes, np.arange(len(codes)))


def test_weight_zero_is_the_plain_model(setup):
    model, batch, trie = setup
    plain = generate_items(model, batch, [trie], beam=8, k=5)
    guided = generate_items(Guided(model, 0.0), batch, [trie], beam=8, k=5)
    assert torch.equal(plain[0], guided[0]) and torch.allclose(plain[1], guided[1], atol=1e-5)


@pytest.mark.parametrize("weight, levels", [(1.0, (0, 1, 2)), (2.0, (0,))])
def test_guided_scores_match_the_two_pass_reference(setup, weight, levels):
    model, batch, trie = setup
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


def test_open_needs_counts_stated_needs_missing_from_the_history():
    """A situational need counts when its phrase names a leaf the row's history lacks; intent
    reasons ("complement: ...") and rows without a record count nothing."""
    from types import SimpleNamespace

    from bench.instruction_guidance import open_needs
    from oxygen.world.knowledge import Knowledge

    kb = Knowledge.load()
    coat, fan = kb.leaf_words[5][0], kb.leaf_words[9][0]
    rec = {"user_id": "u1", "at": 100, "reasons": [f"{coat}: winter in Harbin", f"{fan}: heat wave in Wuhan",
                                                   "complement: bought a phone; it goes with a case"]}
    leaf_of = {1: 5, 2: 7}  # item 1 is of the coat's leaf
    rows = [SimpleNamespace(user_id="u1", timestamp=100, history=[2]),
            SimpleNamespace(user_id="u1", timestamp=100, history=[1, 2]),
            SimpleNamespace(user_id="u2", timestamp=100, history=[])]
    assert open_needs(rows, [rec], kb, leaf_of).tolist() == [2, 1, 0]


def test_across_seeds_pools_hits_per_reason_against_a_loop():
    """Per arm and hidden reason the HR is the mean over seeds of the rows' hit rate, the deductive
    ratio divides by the default's, and the paired gap is the mean of seed-averaged differences."""
    from types import SimpleNamespace

    from bench.instruction_guidance import HomepageRows, across_seeds

    rng = np.random.default_rng(0)
    n, seeds = 40, 3
    reasons = np.array(["context"] * 15 + ["interest"] * 20 + ["popular"] * 5)
    test = HomepageRows([SimpleNamespace()] * n, reasons == "context", reasons, rng.random(n) < 0.5)
    hit = lambda: (rng.random(n) < 0.4).astype(float)  # noqa: E731
    per_seed = [{"test": {"plain": {0.0: hit()}, "gated": {1.0: hit()}}} for _ in range(seeds)]
    base = [hit() for _ in range(seeds)]
    out = across_seeds(test, per_seed, base, 1.0)
    for arm, seeds_hits in (("default", base), ("gated", [h["test"]["gated"][1.0] for h in per_seed])):
        for part, mask in (("deductive", reasons == "context"), ("reason:interest", reasons == "interest")):
            by_seed = [sum(h[i] for i in range(n) if mask[i]) / mask.sum() for h in seeds_hits]
            assert out["hr"][arm][part]["mean"] == pytest.approx(sum(by_seed) / seeds)
    ded = reasons == "context"
    assert out["deductive_x_default"]["gated"] == pytest.approx(
        out["hr"]["gated"]["deductive"]["mean"] / out["hr"]["default"]["deductive"]["mean"])
    diff = np.mean([per_seed[s]["test"]["gated"][1.0] - base[s] for s in range(seeds)], axis=0)[ded].mean()
    assert out["paired"]["gated-default"]["deductive"]["diff"] == pytest.approx(diff)
    assert out["rows"] == {"all": 40, "deductive": 15, "other": 25, "reason:context": 15,
                           "reason:interest": 20, "reason:popular": 5}


def test_frontier_reads_every_weight_against_the_default_like_a_loop():
    """Per weight: HR per reason of the seed-averaged hits, the deductive ratio to the baselines',
    and the paired gap to them, as loops over rows compute them."""
    from types import SimpleNamespace

    from bench.instruction_guidance import HomepageRows, frontier

    rng = np.random.default_rng(1)
    n, seeds, weights = 30, 2, (-0.5, 0.0)
    reasons = np.array(["context"] * 12 + ["interest"] * 18)
    test = HomepageRows([SimpleNamespace()] * n, reasons == "context", reasons, np.ones(n, dtype=bool))
    hit = lambda: (rng.random(n) < 0.5).astype(float)  # noqa: E731
    per_seed = [{"test": {"plain": {w: hit() for w in weights}}} for _ in range(seeds)]
    base = [hit() for _ in range(seeds)]
    out = frontier(test, per_seed, base, weights)
    assert set(out) == {"-0.5", "0.0"}
    for w in weights:
        rows = [i for i in range(n) if reasons[i] == "interest"]
        mine = [sum(per_seed[s]["test"]["plain"][w][i] for s in range(seeds)) / seeds for i in rows]
        theirs = [sum(base[s][i] for s in range(seeds)) / seeds for i in rows]
        assert out[str(w)]["hr"]["reason:interest"] == pytest.approx(sum(mine) / len(rows))
        assert out[str(w)]["paired_vs_default"]["reason:interest"]["diff"] == pytest.approx((sum(mine) - sum(theirs)) / len(rows))
        ded = [i for i in range(n) if reasons[i] == "context"]
        mine_ded = sum(per_seed[s]["test"]["plain"][w][i] for s in range(seeds) for i in ded)
        base_ded = sum(base[s][i] for s in range(seeds) for i in ded)
        assert out[str(w)]["deductive_x_default"] == pytest.approx(mine_ded / base_ded)
