"""Item-to-item transitions counted on train rows: the collaborative candidates of the encoder.

A transition a -> b is a consecutive pair in a row's `history + [target]`; each (user, a, b) counts
once, so a user's chained rows (every prefix of one sequence) do not inflate it. The same counts
drive the `markov` baseline (oxygen.recommenders.markov) and, here, the candidate tokens of the
generative model: for a history h (oldest first), the candidates are the items b with the highest

    score[b] = sum_{j < max_back} decay**j * P[h[-1-j], b],   P[a, :] = counts[a, :] / sum_b counts[a, b]

(the last item dominates; earlier ones break ties and fill in). The encoder reads them as extra
tokens, so the model can copy an often-seen next item, learning when to trust the count and when
its own generalisation, instead of memorising every single pair through the SID tokens.

Training rows would see their own target among their candidates (their own pair is in the
counts). `candidates(..., exclude_user=u)` leaves user u's pairs out, so a train row's candidates
come from other users only, as a new request's would mostly do.

    table = TransitionTable.build(train_rows)
    table.candidates(row.history, k=20, exclude_user=row.user_id)   # item ids, best first
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from itertools import pairwise

from oxygen.data.schema import Row


def distinct_pairs(rows: Iterable[Row]) -> set[tuple[str, int, int]]:
    """Every (user, a, b) with a -> b consecutive in some row's history + [target] (item ids)."""
    pairs: set[tuple[str, int, int]] = set()
    for r in rows:
        pairs.update((r.user_id, a, b) for a, b in pairwise((*r.history, r.target)))
    return pairs


class TransitionTable:
    """Sparse counts a -> {b: n} over item ids (+ each user's own pairs, to leave them out)."""

    def __init__(self, counts: dict[int, Counter], user_pairs: dict[str, set[tuple[int, int]]] | None = None) -> None:
        self.counts = counts
        self.user_pairs = user_pairs or {}

    @classmethod
    def build(cls, rows: Iterable[Row]) -> "TransitionTable":
        """Count the distinct (user, a, b) transitions of `rows`."""
        return cls.from_pairs(distinct_pairs(rows))

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, int, int]]) -> "TransitionTable":
        """Count distinct (user, a, b) transitions (e.g. merged from chunks, oxygen.data.stats)."""
        counts: dict[int, Counter] = defaultdict(Counter)
        user_pairs: dict[str, set[tuple[int, int]]] = defaultdict(set)
        for user, a, b in pairs:
            counts[a][b] += 1
            user_pairs[user].add((a, b))
        return cls(dict(counts), dict(user_pairs))

    def __len__(self) -> int:
        """Number of distinct a -> b transitions."""
        return sum(len(c) for c in self.counts.values())

    def successors(self, a: int, exclude_user: str | None = None) -> dict[int, float]:
        """P[a, :] as {b: probability} (user `exclude_user`'s own a -> b pairs left out)."""
        row = self.counts.get(a)
        if not row:
            return {}
        own = self.user_pairs.get(exclude_user, set()) if exclude_user is not None else set()
        kept = {b: n - ((a, b) in own) for b, n in row.items()}
        kept = {b: n for b, n in kept.items() if n > 0}
        total = sum(kept.values())
        return {b: n / total for b, n in kept.items()}

    def distribution(self, history: Sequence[int], decay: float = 0.3, max_back: int = 10,
                     exclude_user: str | None = None) -> dict[int, float]:
        """score[b] (module docstring) normalised to sum 1: the transition channel's next-item
        distribution {b: probability} given the history ({} when no recent item has successors)."""
        scores: dict[int, float] = defaultdict(float)
        for j, a in enumerate(list(history)[::-1][:max_back]):
            for b, p in self.successors(a, exclude_user).items():
                scores[b] += decay ** j * p
        total = sum(scores.values())
        return {b: v / total for b, v in scores.items()}

    def candidates(self, history: Sequence[int], k: int, decay: float = 0.3, max_back: int = 10,
                   exclude_user: str | None = None) -> list[int]:
        """Up to k item ids by decayed transition score from the recent history, best first (ties:
        smaller item id first, so the order is deterministic)."""
        scores = self.distribution(history, decay, max_back, exclude_user)
        return sorted(scores, key=lambda b: (-scores[b], b))[:k]

    def to_json(self) -> list[list[int]]:
        """[[a, b, count], ...] sorted (the serving bundle stores this; user pairs are not kept)."""
        return [[a, b, n] for a in sorted(self.counts) for b, n in sorted(self.counts[a].items())]

    @classmethod
    def from_json(cls, triples: list[list[int]]) -> "TransitionTable":
        """Inverse of `to_json` (without per-user pairs: serving never leaves a user out)."""
        counts: dict[int, Counter] = defaultdict(Counter)
        for a, b, n in triples:
            counts[int(a)][int(b)] = int(n)
        return cls(dict(counts))
