"""`pop` baseline: recommend the items most popular in the train split, the same list to everyone.

Popularity of an item = the number of distinct users who interacted with it in train.jsonl, in a
history or as a target (each (user, item) pair counts once, so a user's overlapping chained rows
do not inflate it, and a user's first item, which is never a target, still counts). Ties go to the
lower item id. Items never seen in train score 0 and come after every seen item.
With `exclude_history` the row's own history items are skipped.

    rec = PopRecommender(PopConfig()).fit(train_rows, valid_rows, items)
    rec.recommend(rows, k=10)          # Int64[n, 10]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from oxygen.config import PopConfig
from oxygen.data.schema import Item, Row
from oxygen.recommenders.base import ItemIndex, Recommender, check_k, mask_history, top_k


def user_item_counts(rows: Sequence[Row], index: ItemIndex) -> np.ndarray:
    """Float[V]: per item, the number of distinct users with it in a train history or target."""
    pairs = {(r.user_id, i) for r in rows for i in (*r.history, r.target)}
    counts = np.zeros(len(index), dtype=np.float64)
    for _, i in pairs:
        counts[index.index(i, "a train row")] += 1.0
    return counts


class PopRecommender(Recommender):
    """Most popular train items (see module docstring for the exact count)."""

    name = "pop"

    def __init__(self, cfg: PopConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or PopConfig()
        self.index: ItemIndex | None = None
        self.counts = np.zeros(0)

    def fit(self, train_rows: Sequence[Row], valid_rows: Sequence[Row],
            items: Sequence[Item]) -> PopRecommender:
        """Count train popularity; valid rows are not used."""
        self.index = ItemIndex(items)
        self.counts = user_item_counts(train_rows, self.index)
        self.fit_info = {"seen_items": int((self.counts > 0).sum())}
        return self

    def recommend(self, rows: Sequence[Row], k: int) -> np.ndarray:
        """Int64[n, k]: the most popular items (minus each row's history when configured)."""
        check_k(k)
        if self.index is None:
            raise RuntimeError("call fit(train_rows, valid_rows, items) before recommend")
        if not self.cfg.exclude_history:
            best = top_k(self.counts[None, :], k, self.index.ids)
            return np.repeat(best, len(rows), axis=0)
        out = np.empty((len(rows), k), dtype=np.int64)
        for s in range(0, len(rows), 512):
            chunk = rows[s:s + 512]
            scores = np.repeat(self.counts[None, :], len(chunk), axis=0)
            mask_history(scores, chunk, self.index)
            out[s:s + len(chunk)] = top_k(scores, k, self.index.ids)
        return out

    def num_params(self) -> int:
        """One count per catalogue item."""
        return int(self.counts.size)
