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
