"""SASRec: the training sequences cover exactly every prefix of every train row; attention is causal
and padding-invariant; the model learns a tiny sequential pattern (item i -> i+1) to high HR."""

from __future__ import annotations

import numpy as np
import torch

from oxygen.config import SASRecConfig
from oxygen.data.schema import Item, Row
from oxygen.eval.metrics import hit_rate
from oxygen.recommenders.base import ItemIndex
from oxygen.recommenders.sasrec import SASRecRecommender, left_pad, training_sequences
from oxygen.recommenders.sasrec_model import SASRecNet


def pairs_of(seqs) -> set:
    return {(tuple(s[:j]), s[j]) for s in seqs for j in range(1, len(s))}


def test_training_sequences_cover_every_prefix_once():
    rng = np.random.default_rng(0)
    index = ItemIndex([Item(item_id=i) for i in range(30)])
    rows = []
    for u in range(12):                      # chained rows as in train.jsonl, plus random ones
        seq = rng.integers(0, 30, rng.integers(2, 9)).tolist()
        rows += [Row(user_id=f"u{u}", history=seq[:j], target=seq[j]) for j in range(1, len(seq))]
    rows += [Row(user_id="r", history=rng.integers(0, 30, 12).tolist(), target=3)]
    for max_len in (3, 20):
        kept = training_sequences(rows, index, max_len)
        brute = [tuple(index.of[i] + 1 for i in (*r.history, r.target))[-(max_len + 1):] for r in rows]
        assert pairs_of(kept) == pairs_of(brute)
        assert len(kept) < len(rows)
        assert all(a[: len(b)] != b for a in kept for b in kept if a != b)


def test_causal_and_padding_invariant():
    torch.manual_seed(0)
    net = SASRecNet(10, SASRecConfig(hidden=16, max_len=6, dropout=0.0)).eval()
    a = net(torch.tensor([[0, 3, 4, 5, 6]]))
    b = net(torch.tensor([[0, 3, 4, 5, 9]]))
    torch.testing.assert_close(a[:, :4], b[:, :4])            # the future does not leak back
    short = net(left_pad([[3, 4]], 2))[:, -1]
    long = net(left_pad([[3, 4]], 6))[:, -1]
    torch.testing.assert_close(short, long)                  # left padding changes nothing
    assert torch.isfinite(net(left_pad([[]], 3))).all()      # an empty history still gives scores


def test_learns_next_item_pattern():
    v = 20
    items = [Item(item_id=i) for i in range(v)]
    rng = np.random.default_rng(0)

    def rows(n: int, user: str) -> list[Row]:
        out = []
        for i in range(n):
            start, length = int(rng.integers(0, v)), int(rng.integers(1, 6))
            seq = [(start + j) % v for j in range(length + 1)]
            out.append(Row(user_id=f"{user}{i}", history=seq[:-1], target=seq[-1]))
        return out

    train, valid = rows(150, "t"), rows(60, "v")
    cfg = SASRecConfig(hidden=32, max_len=8, dropout=0.1, lr=1e-2, epochs=20, patience=20,
                       batch_size=64, select_metric="ndcg@10", threads=1)
    rec = SASRecRecommender(cfg).fit(train, valid, items)
    ranked = rec.recommend(valid, 10)
    assert ranked.shape == (60, 10) and ranked.dtype == np.int64
    assert hit_rate(ranked, [r.target for r in valid], 1) > 0.9
    assert rec.fit_info["best_epoch"] >= 1 and rec.num_params() > 0


def test_refit_retrains_for_the_selected_epochs():
    items = [Item(item_id=i) for i in range(40)]
    rows = [Row(user_id=f"u{i}", history=[i, (i + 1) % 40], target=(i + 2) % 40) for i in range(40)]
    cfg = SASRecConfig(hidden=16, max_len=4, epochs=6, patience=2, batch_size=16, threads=1)
    rec = SASRecRecommender(cfg)
    try:
        rec.refit(rows, items)
        raise AssertionError("refit before fit must fail")
    except RuntimeError as e:
        assert "fit" in str(e)
    rec.fit(rows[:30], rows[30:], items)
    before = {k: v.clone() for k, v in rec.net.state_dict().items()}
    rec.refit(rows, items)
    assert rec.fit_info["refit_epochs"] == rec.fit_info["best_epoch"] >= 1
    assert rec.fit_info["refit_sequences"] > rec.fit_info["train_sequences"]
    assert any(not torch.equal(v, rec.net.state_dict()[k]) for k, v in before.items())
    assert rec.recommend(rows[:3], 5).shape == (3, 5)
