"""The one interface every recommender evaluated offline implements, and its shared helpers.

A `Recommender` is fitted on train rows (valid rows are for model selection / early stopping only)
and returns, for each row, the ids of its top-k items best first as Int64[n, k], padded with -1
when it has fewer than k items to offer. The baselines (`oxygen.recommenders`) and the adapters
of the generative models (registered in `oxygen.recommenders.registry`) all implement it, so
`oxygen.eval.ranking` can evaluate any of them the same way.

    rec = PopRecommender(PopConfig()).fit(train_rows, valid_rows, items)
    ranked = rec.recommend(test_rows, k=10)          # Int64[n, 10]
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

import numpy as np
import torch

from oxygen.data.schema import Item, Row


class Recommender(abc.ABC):
    """fit(train, valid, items) -> self; recommend(rows, k) -> Int64[n, k] item ids, -1 padded.

    `fit_info` holds what fitting learnt that is worth reporting (best epoch, curves, choices).
    """

    name: str = "recommender"

    def __init__(self) -> None:
        self.fit_info: dict[str, object] = {}

    @abc.abstractmethod
    def fit(self, train_rows: Sequence[Row], valid_rows: Sequence[Row],
            items: Sequence[Item]) -> Recommender:
        """Learn from `train_rows`; use `valid_rows` only to select epochs/settings. Returns self."""

    def refit(self, rows: Sequence[Row], items: Sequence[Item]) -> Recommender:
        """Retrain from scratch on `rows` (train + valid) keeping what `fit` selected on valid; no
        held-out rows remain, so nothing is selected here. Default (models without epochs or
        selection): `fit(rows, [], items)`. Models that select an epoch count override it."""
        return self.fit(rows, [], items)

    @abc.abstractmethod
    def recommend(self, rows: Sequence[Row], k: int) -> np.ndarray:
        """Int64[len(rows), k]: each row's top-k item ids, best first, -1 where there are fewer."""

    @abc.abstractmethod
    def num_params(self) -> int:
        """How many numbers the fitted model stores (weights, counts): the 'params' of reports."""


class ItemIndex:
    """Dense 0..V-1 indices for a catalogue's item ids (ids may be sparse or unordered)."""

    def __init__(self, items: Sequence[Item]) -> None:
        if not items:
            raise ValueError("the catalogue is empty; fit needs at least one item")
        self.ids = np.array([it.item_id for it in items], dtype=np.int64)
        self.of = {int(i): n for n, i in enumerate(self.ids)}
        if len(self.of) != len(self.ids):
            raise ValueError("the catalogue holds duplicate item ids; give every item a unique id")

    def __len__(self) -> int:
        return len(self.ids)

    def index(self, item_id: int, where: str = "a row") -> int:
        """Dense index of `item_id`; a clear error when the catalogue lacks it."""
        try:
            return self.of[int(item_id)]
        except KeyError:
            raise ValueError(f"{where} mentions item {item_id}, which is not in the catalogue "
                             "passed to fit; add it to items.jsonl or drop the row") from None


def check_k(k: int) -> None:
    """Raise a clear error unless k >= 1."""
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an integer >= 1; got {k!r}")


def _top_columns_exact(scores: np.ndarray, kk: int) -> np.ndarray:
    """Int64[n, kk]: the columns of the kk best scores of each row, ties to the lower column
    (unordered). O(n V); used for rows whose k-th best score is tied beyond the top kk."""
    n = scores.shape[0]
    kth = -np.partition(-scores, kk - 1, axis=1)[:, kk - 1:kk]
    greater, equal = scores > kth, scores == kth
    need = kk - greater.sum(axis=1, keepdims=True)
    chosen = greater | (equal & (np.cumsum(equal, axis=1) <= need))      # exactly kk per row
    return np.nonzero(chosen)[1].reshape(n, kk)


def top_k(scores: np.ndarray, k: int, ids: np.ndarray) -> np.ndarray:
    """Int64[n, k] item ids of the k best columns of Float[n, V] `scores`, best first.

    Columns scored -inf are never returned (their slot is -1). Ties break towards the lower column:
    the same result as a stable argsort of -scores, computed with torch.topk (rows tied at the
    k-th score are redone exactly).
    """
    n, v = scores.shape
    out = np.full((n, k), -1, dtype=np.int64)
    kk = min(k, v)
    if kk == 0 or n == 0:
        return out
    vals, cols = torch.from_numpy(np.ascontiguousarray(scores)).topk(kk, dim=1)
    vals, cols = vals.numpy(), cols.numpy().astype(np.int64)
    kth = vals[:, -1:]
    tied = np.nonzero((scores == kth).sum(axis=1) > (vals == kth).sum(axis=1))[0]
    if tied.size:
        cols[tied] = _top_columns_exact(scores[tied], kk)
    vals = np.take_along_axis(scores, cols, axis=1)
    order = np.lexsort((cols, -vals), axis=-1)
    cols, best = np.take_along_axis(cols, order, axis=1), np.take_along_axis(vals, order, axis=1)
    out[:, :kk] = np.where(np.isneginf(best), -1, ids[cols])
    return out


def mask_history(scores: np.ndarray, rows: Sequence[Row], index: ItemIndex) -> None:
    """Set scores[i, item] = -inf in place for every item in row i's history (known items only)."""
    for i, r in enumerate(rows):
        cols = [index.of[h] for h in r.history if h in index.of]
        scores[i, cols] = -np.inf
