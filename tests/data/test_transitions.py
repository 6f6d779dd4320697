"""Transition counts and collaborative candidates: distinct (user, a, b) counting, the decayed
score against a dense slow reference, leaving a user's own pairs out, JSON round trip, and the
same counts as the markov baseline."""

from __future__ import annotations

import numpy as np

from oxygen.config import MarkovConfig
from oxygen.data.schema import Item, Row
from oxygen.data.transitions import TransitionTable
from oxygen.recommenders.base import ItemIndex
from oxygen.recommenders.markov import transition_counts

N = 12


def _rows(seed: int = 0, users: int = 30) -> list[Row]:
    g = np.random.default_rng(seed)
    out = []
    for u in range(users):
        seq = [int(x) for x in g.integers(0, N, size=int(g.integers(2, 7)))]
        out += [Row(user_id=f"u{u}", history=seq[:t], target=seq[t]) for t in range(1, len(seq))]
    return out


def _dense_scores(rows: list[Row], history: list[int], decay: float, exclude: str | None) -> np.ndarray:
    """Slow reference: dense P from distinct (user, a, b) sets, decayed sum over the history."""
    pairs = {(r.user_id, a, b) for r in rows for a, b in zip([*r.history, r.target], [*r.history, r.target][1:])}
    counts = np.zeros((N, N))
    for user, a, b in pairs:
        if user != exclude:
            counts[a, b] += 1
    P = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    return sum(decay ** j * P[a] for j, a in enumerate(history[::-1][:10]))


def test_chained_rows_count_once():
    rows = [Row(user_id="a", history=[1], target=2), Row(user_id="a", history=[1, 2], target=3),
            Row(user_id="b", history=[1], target=2)]
    t = TransitionTable.build(rows)
    assert t.counts[1] == {2: 2} and t.counts[2] == {3: 1} and len(t) == 2


def test_candidates_match_dense_reference_with_and_without_leave_out():
    rows = _rows()
    table = TransitionTable.build(rows)
    for r in rows[::7]:
        for exclude in (None, r.user_id):
            ref = _dense_scores(rows, r.history, 0.3, exclude)
            got = table.candidates(r.history, k=5, decay=0.3, exclude_user=exclude)
            want = [b for b in sorted(range(N), key=lambda b: (-ref[b], b)) if ref[b] > 0][:5]
            assert got == want


def test_leave_user_out_hides_a_pair_only_that_user_made():
    rows = [Row(user_id="a", history=[1], target=9), Row(user_id="b", history=[1], target=2)]
    table = TransitionTable.build(rows)
    assert table.candidates([1], k=5) == [2, 9]  # equal scores: smaller item id first
    assert table.candidates([1], k=5, exclude_user="a") == [2]
    assert table.candidates([7], k=5) == []  # an item with no successors gives none


def test_json_round_trip_and_markov_uses_the_same_counts():
    rows = _rows(1)
    table = TransitionTable.build(rows)
    back = TransitionTable.from_json(table.to_json())
    assert back.counts == table.counts and back.user_pairs == {}
    index = ItemIndex([Item(item_id=i) for i in range(N)])
    markov = transition_counts(rows, index, MarkovConfig())
    assert markov == {(a, b): float(n) for a, row in table.counts.items() for b, n in row.items()}
