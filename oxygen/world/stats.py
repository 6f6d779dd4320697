"""Diagnostics of a simulated world, recorded in world.json and printed by `python -m apps.world`.

They show the world is calibrated: the mix of scenarios, reasons and behaviours; the share of
context events whose needed leaf is absent from the user's earlier events (deductive intents); and
two reference hit rates on the test split, per scenario: the popularity baseline (the 10 most
frequent train targets) and a leaf-aware ceiling (the 10 most frequent train targets of the
event's true need leaf, i.e. what a model that infers the need perfectly but knows nothing else
about the item would score).

    diag = diagnostics(world.split_days(), events, world.catalogue.leaf)
"""

from __future__ import annotations

import collections

import numpy as np

from oxygen.world.sessions import Event


def _share(counter: collections.Counter) -> dict[str, float]:
    """Counts as sorted shares rounded to 4 decimals."""
    total = max(sum(counter.values()), 1)
    return {k: round(v / total, 4) for k, v in sorted(counter.items())}


def _hit_rates(test: list[Event], predict) -> dict[str, float]:
    """HR@10 of `predict(event) -> set of item ids` on test events, overall and per scenario."""
    hits: dict[str, list[bool]] = collections.defaultdict(list)
    for ev in test:
        h = ev.item in predict(ev)
        hits[ev.scenario].append(h)
        hits["all"].append(h)
    return {k: round(float(np.mean(v)), 4) for k, v in sorted(hits.items())}


def deductive_share(events: list[list[Event]], item_leaf: np.ndarray) -> float:
    """Share of context events whose need leaf the user never interacted with before."""
    ctx = absent = 0
    for evs in events:
        seen: set[int] = set()
        for ev in evs:
            if ev.reason == "context":
                ctx += 1
                absent += ev.need not in seen
            seen.add(int(item_leaf[ev.item]))
    return round(absent / max(ctx, 1), 4)


def diagnostics(split_days: dict[str, tuple[int, int]], events: list[list[Event]],
                item_leaf: np.ndarray) -> dict:
    """Scenario/reason/behaviour mix, deductive share and reference HR@10 on test (see module doc)."""
    flat = [ev for evs in events for ev in evs]
    train_end, test_start = split_days["train"][1], split_days["test"][0]
    train = [ev for ev in flat if ev.day <= train_end]
    test = [ev for ev in flat if ev.day >= test_start]
    counts = collections.Counter(ev.item for ev in train)
    top10 = {i for i, _ in counts.most_common(10)}
    per_leaf: dict[int, collections.Counter] = collections.defaultdict(collections.Counter)
    for ev in train:
        per_leaf[int(item_leaf[ev.item])][ev.item] += 1
    leaf_top = {leaf: {i for i, _ in c.most_common(10)} for leaf, c in per_leaf.items()}

    def need_of(ev: Event) -> int:
        return ev.need if ev.need >= 0 else int(item_leaf[ev.item])

    return {"scenarios": _share(collections.Counter(ev.scenario for ev in flat)),
            "reasons": _share(collections.Counter(ev.reason for ev in flat)),
            "behaviours": _share(collections.Counter(ev.behaviour for ev in flat)),
            "context_need_absent_from_history": deductive_share(events, item_leaf),
            "test_hr10_popularity": _hit_rates(test, lambda ev: top10),
            "test_hr10_leaf_aware": _hit_rates(test, lambda ev: leaf_top.get(need_of(ev), set()))}
