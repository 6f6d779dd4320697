"""Teacher-forced token log-probs of generated SID paths: their sum is the decode path's beam score
of each item, the trie-renormalised version is a distribution over the pool, rows repeat in place."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.tiny_bundle import make_bundle
from oxygen.data.batching import collate
from oxygen.data.schema import Row
from oxygen.rl.policy import repeat_rows, token_log_probs, trie_masks
from oxygen.semantic_ids.trie import PrefixTrie


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    bundle = make_bundle(tmp_path_factory.mktemp("policy") / "b")
    rows = [Row(user_id=f"u{k}", history=[3 * k + 1, 3 * k + 2, 40 + k], target=0, scenario=s)
            for k, s in enumerate(["homepage", "search", "cart", "homepage"])]
    rows[2] = rows[2].model_copy(update={"trigger": 7})
    batch = collate(rows, bundle.space, bundle.collate_cfg, None, with_targets=False)
    return bundle, rows, batch


def test_sum_of_token_log_probs_is_the_beam_score(setup):
    bundle, rows, batch = setup
    pools = [r.scenario for r in rows]
    out = bundle.decoder().decode(batch, [r.history for r in rows], beam=8, k=4, pools=pools)
    G = out.items.shape[1]
    codes = torch.as_tensor(np.stack([bundle.space.codes[[bundle.space.index(int(i)) for i in row]]
                                      for row in out.items]).reshape(-1, 3))
    with torch.no_grad():
        logp = token_log_probs(bundle.model.eval(), repeat_rows(batch, G), codes)
    np.testing.assert_allclose(logp.sum(-1).reshape(-1, G).numpy(), out.scores, rtol=1e-4, atol=1e-4)


def test_trie_renormalised_log_probs_form_a_distribution_over_the_pool(setup):
    bundle, rows, batch = setup
    pool = bundle.scenarios["cart"].pool
    trie = PrefixTrie(bundle.codebook.codes, bundle.codebook.item_ids).restrict(pool)
    codes = np.stack([bundle.space.codes[bundle.space.index(i)] for i in pool])
    rep = batch.select(torch.full((len(pool),), 2))  # the cart request, once per pool item
    masks = trie_masks([trie] * len(pool), codes, bundle.model.codebook_sizes)
    with torch.no_grad():
        model = bundle.model.eval()
        masked = token_log_probs(model, rep, torch.as_tensor(codes), masks)
        plain = token_log_probs(model, rep, torch.as_tensor(codes))
    assert float(masked.sum(-1).exp().sum()) == pytest.approx(1.0, abs=1e-4)
    assert (masked >= plain - 1e-6).all()


def test_repeat_rows_keeps_each_request_contiguous(setup):
    _, _, batch = setup
    rep = repeat_rows(batch, 3)
    assert len(rep) == 3 * len(batch)
    assert torch.equal(rep.scenario, batch.scenario.repeat_interleave(3))
    with pytest.raises(ValueError, match="group size"):
        repeat_rows(batch, 0)
