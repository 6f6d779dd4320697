"""Device discipline of the hot paths, checked without a GPU: the decode path and the training loop
must create every tensor on the device of the model or data they serve, never on torch's default
device. On a GPU run a tensor left on the default device (the CPU) next to CUDA tensors fails; here
the default device is made `meta` for the call, so any such tensor breaks the call the same way
while everything placed correctly runs on the CPU and gives the same answer as before."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oxygen.data.transitions import TransitionTable
from oxygen.decoding.decode import Decoder
from oxygen.decoding.rerank import RerankSpec
from oxygen.model import OxygenModel
from oxygen.semantic_ids.trie import PrefixTrie
from oxygen.training.loop import LoopConfig, Trainable, adamw_cosine, fit
from tests.model.helpers import random_batch, tiny_config


def _setup(copy_head: bool = False):
    torch.manual_seed(0)
    cfg = tiny_config(codebook_sizes=(6, 5, 4), copy_head=copy_head)
    model = OxygenModel(cfg).eval()
    codes = np.array(np.meshgrid(*[np.arange(k) for k in cfg.codebook_sizes], indexing="ij")).reshape(3, -1).T
    ids = np.arange(len(codes))[: cfg.n_items]
    trie = PrefixTrie(codes[: cfg.n_items], ids)
    pools = {"all": trie, "half": trie.restrict(ids[::2].tolist())}
    return model, random_batch(cfg, B=6), pools, ids


def _decode(dec: Decoder, batch, **kw):
    histories = [[1, 2, 3]] * len(batch)
    return dec.decode(batch, histories, beam=8, k=4, pools=["all", "half"] * 3, **kw)


@pytest.mark.parametrize("kw", [{}, {"sampling": {"seed": 3, "temperature": 0.7, "top_p": 0.9}},
                                {"exclude": [[0, 1, 2], [], [5], [], [2, 4, 6], []]}])
def test_the_decode_path_puts_every_tensor_on_the_models_device(kw):
    model, batch, pools, ids = _setup()
    dec = Decoder(model, pools, ids)
    expect = _decode(dec, batch, **kw)
    with torch.device("meta"):
        got = _decode(dec, batch, **kw)
    np.testing.assert_array_equal(got.items, expect.items)
    np.testing.assert_allclose(got.scores, expect.scores)


def test_the_rerank_mixtures_follow_the_models_device():
    model, batch, pools, ids = _setup(copy_head=True)
    dec = Decoder(model, pools, ids)
    expect = _decode(dec, batch)
    with torch.device("meta"):
        np.testing.assert_array_equal(_decode(dec, batch).items, expect.items)
    plain, _, _, _ = _setup()
    table = TransitionTable.build([])
    dec = Decoder(plain, pools, ids, table, RerankSpec(0.3))
    expect = _decode(dec, batch)
    with torch.device("meta"):
        np.testing.assert_array_equal(_decode(dec, batch).items, expect.items)


def test_the_training_loop_puts_every_tensor_on_the_models_device():
    def run(default: str) -> list[dict]:
        torch.manual_seed(0)
        cfg = tiny_config()
        model, data = OxygenModel(cfg), random_batch(cfg, B=16)
        t = Trainable(model, data, *adamw_cosine(model, 1e-2, 0.0, 2, 8))
        with torch.device(default):
            return fit(t, LoopConfig(epochs=2, batch_size=8, ema_decay=0.9, device="cpu")).history

    expect = run("cpu")
    got = run("meta")
    assert [round(r["train_loss"], 5) for r in got] == [round(r["train_loss"], 5) for r in expect]


def test_a_post_training_iteration_puts_every_tensor_on_the_models_device(tmp_path):
    """Rollout (decode + old log-probs), rewards and the learner's update, on the policy's device."""
    from bench.tiny_bundle import make_bundle
    from oxygen.config import PostTrainConfig, RewardConfig, RewardParts, RolloutConfig
    from oxygen.data.schema import Row
    from oxygen.rl.post_train import post_train
    from oxygen.rl.rewards import RewardMapping

    bundle = make_bundle(tmp_path / "b")
    rng = np.random.default_rng(0)
    rows = [Row(user_id=f"u{k}", history=rng.choice(120, size=4, replace=False).tolist(), target=int(rng.integers(120)),
                scenario="homepage") for k in range(12)]
    only = RewardParts(format=0, relevance=0, ranking=1, diversity=0)
    mapping = RewardMapping({"ranking": lambda r, g: np.where(g % 7 == 0, 1.0, 0.0)},
                            RewardConfig(weights={"homepage": only}))
    cfg = PostTrainConfig(iterations=2, requests=6, epochs=2, minibatch=16, lr=3e-3, device="cpu",
                          objective={"kl_beta": 0.1}, rollout=RolloutConfig(group=4))

    def run(default: str) -> list[dict]:
        torch.manual_seed(0)
        with torch.device(default):
            return post_train(bundle, mapping, rows, cfg).history

    expect, got = run("cpu"), run("meta")
    keys = ("reward", "loss", "kl", "ratio_max")
    assert [[round(h[k], 5) for k in keys] for h in got] == [[round(h[k], 5) for k in keys] for h in expect]


def test_the_ranker_and_the_reward_mapping_put_every_tensor_on_their_models_device(tmp_path):
    """The ranking reward (ranker predictions) and the relevance reward (the bundle's Q2I space) run
    with the default device made `meta` (the ranker trains on THE loop, checked above)."""
    from bench.tiny_bundle import catalogue_bundle
    from oxygen.config import RankerConfig, RewardConfig
    from oxygen.data.io import load_impressions
    from oxygen.rl.rank_data import RankSpace, requests_from_impressions
    from oxygen.rl.rank_fit import fit_ranker, pack
    from oxygen.rl.rewards import RankingReward, RelevanceReward
    from tests.worlds import tiny_world

    ds = tiny_world(tmp_path / "w", tmp_path / "s", users=40, seed=3, items=300, days=20)
    space = RankSpace.fit(ds.items, ds.splits["train"])
    cfg = RankerConfig(d_model=16, heads=2, d_ff=32, layers=1, max_events=8, epochs=1, device="cpu")
    reqs, all_rows = requests_from_impressions(load_impressions(tmp_path / "w")), [r for s in ds.splits.values() for r in s]
    train, valid = pack(space, reqs[:-20], all_rows, cfg), pack(space, reqs[-20:], all_rows, cfg)
    bundle = catalogue_bundle(tmp_path / "bundle", ds.items)
    rows = [r for r in ds.splits["test"] if r.query][:3] + [r for r in ds.splits["test"] if not r.query][:2]
    groups = np.array([[1, 2, 3]] * len(rows))

    def run(default: str) -> tuple[float, np.ndarray, np.ndarray]:
        torch.manual_seed(0)
        model, result = fit_ranker(cfg, space, train, valid)
        rel = RelevanceReward(bundle)
        rel.queries_cache.lookup(rows)  # the text encoder (sentence-transformers) embeds the queries first
        with torch.device(default):
            ranking = RankingReward(model, space, {it.item_id: 1.0 for it in ds.items}, RewardConfig().value)(rows, groups)
            relevance = rel(rows, groups)
        return result.history[-1]["train_loss"], ranking, relevance

    expect, got = run("cpu"), run("meta")
    assert got[0] == pytest.approx(expect[0], rel=1e-5)
    np.testing.assert_allclose(got[1], expect[1], rtol=1e-5)
    np.testing.assert_allclose(got[2], expect[2], rtol=1e-5, atol=1e-6)
