"""`markov` baseline: first-order item-to-item transitions with back-off to earlier items, then
popularity.

Fit: every consecutive pair (a, b) in a train row's `history + [target]` is a transition; each
(user, a, b) counts once, so a user's overlapping chained rows do not inflate it. Optionally
(`symmetric` = s > 0) b -> a is added with weight s, and `self_loops=False` drops a -> a (repeat
purchases). Each source row is normalised to probabilities P[a, b].

Recommend for history h (oldest first):
    score[b] = sum_{j=0}^{max_back-1} decay**j * P[h[-1-j], b]  +  1e-12 * pop[b] / max(pop)
so the last item dominates, earlier items break its ties and fill in when it has few successors
(decay -> 0 is strict back-off), and popularity (as in `pop`) orders everything else.

    rec = MarkovRecommender(MarkovConfig(decay=0.3)).fit(train_rows, valid_rows, items)
    rec.recommend(rows, k=10)          # Int64[n, 10]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from oxygen.config import MarkovConfig
from oxygen.data.schema import Item, Row
from oxygen.data.transitions import distinct_pairs
from oxygen.recommenders.base import ItemIndex, Recommender, check_k, mask_history, top_k
from oxygen.recommenders.pop import user_item_counts

POP_EPS = 1e-12
CHUNK = 512


def transition_counts(rows: Sequence[Row], index: ItemIndex, cfg: MarkovConfig) -> Counter:
    """{(a, b): weight} over dense indices: distinct (user, a, b) consecutive pairs, as configured."""
    counts: Counter = Counter()
    for _, a_id, b_id in distinct_pairs(rows):
        a, b = index.index(a_id, "a train row"), index.index(b_id, "a train row")
        if a == b and not cfg.self_loops:
            continue
        counts[(a, b)] += 1.0
        if cfg.symmetric > 0 and a != b:
            counts[(b, a)] += cfg.symmetric
    return counts


class Transitions:
    """Row-normalised sparse transition matrix P[a, b] in CSR form over V dense item indices."""

    def __init__(self, counts: Counter, num_items: int) -> None:
        keys = sorted(counts)
        src = np.array([a for a, _ in keys], dtype=np.int64)
        self.indices = np.array([b for _, b in keys], dtype=np.int64)
        data = np.array([counts[key] for key in keys], dtype=np.float64)
        self.indptr = np.zeros(num_items + 1, dtype=np.int64)
        np.add.at(self.indptr, src + 1, 1)
        self.indptr = np.cumsum(self.indptr)
        totals = np.zeros(num_items, dtype=np.float64)
        np.add.at(totals, src, data)
        self.data = data / totals[src] if data.size else data
        self.num_items = num_items

    def scores(self, sources: Sequence[Sequence[tuple[int, float]]]) -> np.ndarray:
        """Float[n, V]: row i = sum over (a, w) in sources[i] of w * P[a, :]."""
        out = np.zeros((len(sources), self.num_items), dtype=np.float64)
        rows, cols, vals = [], [], []
        for i, src in enumerate(sources):
            for a, w in src:
                s, e = self.indptr[a], self.indptr[a + 1]
                rows.append(np.full(e - s, i))
                cols.append(self.indices[s:e])
                vals.append(w * self.data[s:e])
        if rows:
            np.add.at(out, (np.concatenate(rows), np.concatenate(cols)), np.concatenate(vals))
        return out


class MarkovRecommender(Recommender):
    """First-order Markov chain over consecutive items (see module docstring)."""

    name = "markov"

    def __init__(self, cfg: MarkovConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or MarkovConfig()
        self.index: ItemIndex | None = None
        self.trans: Transitions | None = None
        self.pop = np.zeros(0)

    def fit(self, train_rows: Sequence[Row], valid_rows: Sequence[Row],
            items: Sequence[Item]) -> MarkovRecommender:
        """Count transitions and popularity in train rows; valid rows are not used."""
        self.index = ItemIndex(items)
        counts = transition_counts(train_rows, self.index, self.cfg)
        self.trans = Transitions(counts, len(self.index))
        pop = user_item_counts(train_rows, self.index)
        self.pop = POP_EPS * pop / max(pop.max(), 1.0)
        self.fit_info = {"transitions": len(counts)}
        return self

    def _sources(self, row: Row) -> list[tuple[int, float]]:
        """(dense index, weight decay**j) of the last `max_back` known history items, newest first."""
        known = [self.index.of[h] for h in row.history if h in self.index.of]
        recent = known[::-1][: self.cfg.max_back]
        return [(a, self.cfg.decay ** j) for j, a in enumerate(recent)]

    def recommend(self, rows: Sequence[Row], k: int) -> np.ndarray:
        """Int64[n, k]: items by transition score from the recent history, then popularity."""
        check_k(k)
        if self.trans is None:
            raise RuntimeError("call fit(train_rows, valid_rows, items) before recommend")
        out = np.empty((len(rows), k), dtype=np.int64)
        for s in range(0, len(rows), CHUNK):
            chunk = rows[s:s + CHUNK]
            scores = self.trans.scores([self._sources(r) for r in chunk]) + self.pop[None, :]
            if self.cfg.exclude_history:
                mask_history(scores, chunk, self.index)
            out[s:s + len(chunk)] = top_k(scores, k, self.index.ids)
        return out

    def num_params(self) -> int:
        """Stored transition probabilities plus one popularity count per item."""
        return int(self.trans.data.size + self.pop.size) if self.trans else 0
