"""`sasrec` baseline: SASRec (Kang & McAuley, 2018) trained on train.jsonl, epoch selected on valid.

Defaults are the paper's standard configuration: 2 causal self-attention blocks, 1 head, hidden 64,
learned positions, dropout 0.2, Adam (lr 1e-3, betas 0.9/0.98), max_len 20 (histories here hold
<= 10 items). Loss: full softmax cross-entropy over all catalogue items at every position
(`loss="ce"`, the default: stronger than, and for a few thousand items as cheap as, the paper's
BCE with one uniformly sampled negative per position, available as `loss="bce"`).

Training data: each train row gives the sequence `history + [target]` (last max_len + 1 items);
sequences that are a prefix of another one are dropped, and the loss is taken at every position,
which is exactly training on every prefix of every train history (each (prefix, next item) pair
once, however many chained rows repeat it). Only train rows are used for training; after every
epoch the model ranks valid rows, and the epoch with the best valid `select_metric` (NDCG@10 by
default) is kept (early stopping after `patience` epochs without improvement).
Trained by THE loop (oxygen.training.loop). CPU, fp32, `torch.set_num_threads(cfg.threads)`.

    rec = SASRecRecommender(SASRecConfig(hidden=64)).fit(train_rows, valid_rows, items)
    rec.recommend(test_rows, k=10)      # Int64[n, 10]
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from oxygen.config import SASRecConfig
from oxygen.data.schema import Item, Row
from oxygen.device import module_device
from oxygen.eval.metrics import ranking_metrics
from oxygen.recommenders.base import ItemIndex, Recommender, check_k, mask_history, top_k
from oxygen.recommenders.sasrec_model import SASRecNet
from oxygen.training.loop import LoopConfig, Trainable, fit

EVAL_BATCH = 512


def training_sequences(rows: Sequence[Row], index: ItemIndex, max_len: int) -> list[tuple[int, ...]]:
    """Distinct `history + [target]` sequences (dense index + 1, last max_len + 1 items, length >= 2)
    that are not a proper prefix of another one, sorted for determinism."""
    seqs = set()
    for r in rows:
        seq = tuple(index.index(i, "a train row") + 1 for i in (*r.history, r.target))
        if len(seq) >= 2:
            seqs.add(seq[-(max_len + 1):])
    prefixes = {s[:j] for s in seqs for j in range(2, len(s))}
    return sorted(s for s in seqs if s not in prefixes)


def left_pad(seqs: Sequence[Sequence[int]], length: int) -> torch.Tensor:
    """Long[n, length]: each sequence's last `length` entries, left-padded with 0."""
    out = torch.zeros(len(seqs), length, dtype=torch.long)
    for i, s in enumerate(seqs):
        s = list(s)[-length:] if length else []
        if s:
            out[i, length - len(s):] = torch.tensor(s, dtype=torch.long)
    return out


def batch_loss(net: SASRecNet, batch: torch.Tensor, gen: torch.Generator, loss: str) -> torch.Tensor:
    """The training loss of one batch of sequences Long[B, L+1]: all-pad columns dropped first."""
    batch = batch[:, int((batch > 0).any(0).float().argmax()):]
    return sequence_loss(net, batch, loss, gen)


def sequence_loss(net: SASRecNet, batch: torch.Tensor, loss: str, gen: torch.Generator) -> torch.Tensor:
    """Mean next-item loss over real positions of batch Long[B, L+1] (0 = pad, left-padded)."""
    inputs, labels = batch[:, :-1], batch[:, 1:]
    real = inputs > 0
    h = net(inputs)
    if loss == "ce":
        return F.cross_entropy(net.all_logits(h[real]), labels[real] - 1)
    neg = torch.randint(1, net.num_items + 1, labels.shape, generator=gen, device="cpu").to(labels.device)
    pos_l, neg_l = net.item_logits(h, labels)[real], net.item_logits(h, neg)[real]
    return (F.softplus(-pos_l) + F.softplus(neg_l)).mean()


class SASRecRecommender(Recommender):
    """SASRec next-item model (see module docstring)."""

    name = "sasrec"

    def __init__(self, cfg: SASRecConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or SASRecConfig()
        self.index: ItemIndex | None = None
        self.net: SASRecNet | None = None

    def fit(self, train_rows: Sequence[Row], valid_rows: Sequence[Row],
            items: Sequence[Item]) -> SASRecRecommender:
        """Train on train rows with early stopping on valid rows (on the train loss when there are
        none); keep the best epoch's weights."""
        data = self._start(train_rows, items)
        valid_rows = list(valid_rows)
        select = f"valid_{self.cfg.select_metric}" if valid_rows else "train_loss"
        result = fit(self._trainable(data), self._loop(self.cfg.epochs, select, bool(valid_rows)),
                     (lambda net: self._score(valid_rows)) if valid_rows else None)
        self.fit_info = {"train_sequences": len(data), "best_epoch": result.best_epoch,
                         "best_valid": result.best_valid, "epochs_run": len(result.history),
                         "seconds": result.train_seconds, "history": result.history}
        return self

    def refit(self, rows: Sequence[Row], items: Sequence[Item]) -> SASRecRecommender:
        """Retrain from scratch on `rows` (train + valid) for the epoch count `fit` selected."""
        epochs = int(self.fit_info.get("best_epoch", 0))
        if epochs < 1:
            raise RuntimeError("call fit(train_rows, valid_rows, items) before refit: it selects the epochs")
        data = self._start(rows, items)
        fit(self._trainable(data), self._loop(epochs, None))
        self.fit_info.update(refit_epochs=epochs, refit_sequences=len(data))
        return self

    def _start(self, rows: Sequence[Row], items: Sequence[Item]) -> torch.Tensor:
        """Seed, index the catalogue, build a fresh network and the padded training sequences
        Long[n, max_len + 1] of `rows`."""
        cfg = self.cfg
        torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        self.index = ItemIndex(items)
        seqs = training_sequences(rows, self.index, cfg.max_len)
        if not seqs:
            raise ValueError("no train row has a history; SASRec needs rows with >= 1 history item")
        self.net = SASRecNet(len(self.index), cfg)
        return left_pad(seqs, cfg.max_len + 1)

    def _trainable(self, data: torch.Tensor) -> Trainable:
        """The network, its sequences, Adam (betas 0.9 / 0.98) and the next-item loss."""
        opt = torch.optim.Adam(self.net.parameters(), lr=self.cfg.lr, betas=(0.9, 0.98),
                               weight_decay=self.cfg.weight_decay)
        return Trainable(self.net, data, opt, loss=partial(batch_loss, loss=self.cfg.loss))

    def _loop(self, epochs: int, select: str | None, maximize: bool = True) -> LoopConfig:
        c = self.cfg
        return LoopConfig(epochs=epochs, batch_size=c.batch_size, patience=c.patience, seed=c.seed,
                          select=select, maximize=maximize, device=c.device, precision=c.precision)

    def _score(self, rows: Sequence[Row]) -> dict[str, float]:
        """HR/NDCG@10 of the current weights on `rows` (used for epoch selection)."""
        ranked = self.recommend(rows, 10)
        m = ranking_metrics(ranked, np.array([r.target for r in rows]), ks=(10,))
        return {"hr@10": m["hr@10"], "ndcg@10": m["ndcg@10"]}

    @torch.no_grad()
    def recommend(self, rows: Sequence[Row], k: int) -> np.ndarray:
        """Int64[n, k]: items by the model's next-item score after each row's (last max_len) history."""
        check_k(k)
        if self.net is None:
            raise RuntimeError("call fit(train_rows, valid_rows, items) before recommend")
        was_training = self.net.training
        self.net.eval()
        out = np.empty((len(rows), k), dtype=np.int64)
        for s in range(0, len(rows), EVAL_BATCH):
            chunk = rows[s:s + EVAL_BATCH]
            hist = [[self.index.of[h] + 1 for h in r.history if h in self.index.of] for r in chunk]
            width = max(1, min(self.cfg.max_len, max(len(h) for h in hist)))
            h = self.net(left_pad(hist, width).to(module_device(self.net)))[:, -1]
            scores = self.net.all_logits(h).float().cpu().numpy()
            if self.cfg.exclude_history:
                mask_history(scores, chunk, self.index)
            out[s:s + len(chunk)] = top_k(scores, k, self.index.ids)
        self.net.train(was_training)
        return out

    def num_params(self) -> int:
        """Trainable weights of the network."""
        return sum(p.numel() for p in self.net.parameters()) if self.net else 0
