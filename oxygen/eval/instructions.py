"""Measuring slow thinking against the shop world's hidden truth (evaluation only: nothing here
feeds a model, a teacher or a reward).

- which test rows are *deductive* (hidden reason `context`: a need from the date, place and
  persona that the user's history does not show) and what each row's hidden reason is;
- whether an instruction states the user's true need (the need's product nouns in its text);
- the oracle instruction (the true need written out: the ceiling of what an instruction can do);
- query-rewrite pairs made the way the world types queries (a clean phrase, then typing noise),
  and the rewrite accuracy / false-correction rate on them.

    mask = deductive(test_rows); hit = need_stated(text, row.truth.need, kb)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from oxygen.data.schema import Row
from oxygen.world.knowledge import Knowledge
from oxygen.world.text import add_noise, clean_query


def reason_of(row: Row) -> str:
    """The row's hidden reason ('' when the dataset has no truth)."""
    return row.truth.reason if row.truth is not None and row.truth.reason else ""


def reason_masks(ded: np.ndarray, reasons: np.ndarray) -> dict[str, np.ndarray]:
    """{part: Bool[n]}: all rows, deductive, other, and one mask per hidden reason, from the
    deductive mask Bool[n] and the reasons Str[n] of n rows."""
    return {"all": np.ones(len(ded), dtype=bool), "deductive": ded, "other": ~ded,
            **{f"reason:{r}": reasons == r for r in sorted(set(reasons.tolist()) - {""})}}


def deductive(rows: Sequence[Row]) -> np.ndarray:
    """Bool[len(rows)]: rows whose hidden reason is a contextual need."""
    return np.array([reason_of(r) == "context" for r in rows], dtype=bool)


def _leaf(kb: Knowledge, need: str) -> int:
    return kb.leaves.index(need)


def need_stated(text: str, need: str, kb: Knowledge) -> bool:
    """Whether `text` names the need (leaf name or any of its product nouns, case-insensitive)."""
    low = text.lower()
    words = (need, *kb.leaf_words[_leaf(kb, need)])
    return any(w.lower() in low for w in words)


def oracle_text(need: str, generated: str | None = None) -> str:
    """The true need written as an instruction, in the generated instruction's own form when there
    is one (its first clause's products replaced by the need: "Autumn in Wuhan for retirees:
    fleece jackets"), else "needs now: <need>"."""
    head, sep, _ = (generated or "").split("; ")[0].partition(": ")
    return f"{head}: {need.lower()}" if sep and generated else f"needs now: {need.lower()}"


def rewrite_pairs(kb: Knowledge, n: int, seed: int = 0) -> list[tuple[str, str]]:
    """n (typed, meant) query pairs the way the world makes them: a clean phrase for a random leaf,
    then typing noise (which often leaves it clean: those measure false corrections)."""
    rng = np.random.default_rng(seed)
    pairs = []
    for leaf in rng.integers(0, len(kb.leaves), size=n):
        clean = clean_query(kb, int(leaf), rng)
        pairs.append((add_noise(clean, rng), clean))
    return pairs


def rewrite_scores(pairs: Sequence[tuple[str, str]], rewritten: Sequence[str]) -> dict[str, float]:
    """accuracy: share of noisy queries restored exactly; false_correction_rate: share of clean
    queries changed; with the counts of each kind."""
    noisy = [(m, r) for (t, m), r in zip(pairs, rewritten) if t != m]
    clean = [(m, r) for (t, m), r in zip(pairs, rewritten) if t == m]
    return {"accuracy": float(np.mean([r == m for m, r in noisy])) if noisy else float("nan"),
            "false_correction_rate": float(np.mean([r != m for m, r in clean])) if clean else float("nan"),
            "noisy": len(noisy), "clean": len(clean)}
