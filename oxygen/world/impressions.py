"""Logged impressions: what a production-like logging policy showed at each simulated request, and
what the user did with every shown item.

A request is one event of the session simulator (user, day, scenario, trigger, query). With
probability `WorldConfig.impression_rate` it gets a logged list of `impression_size` distinct
items: the event's own item (the one the user engaged with; its outcome is the event's behaviour)
at a uniform position, the others drawn by the logging policy from a mix of sources that a real
recommender has — nothing hidden:
- `history`: a leaf of the user's earlier events (their observable interests);
- `scenario`: the scenario's own source: complements of the trigger's leaf (cart, checkout; the
  world's knowledge base, what a shop's complement graph holds), the trigger's leaf or a sibling
  (channel), a leaf the query names (search, the query matcher), popularity (homepage);
- `popular`: a leaf by catalogue popularity;
- `explore`: a uniform random item (exploration noise).
A source's leaf becomes an item by popularity within the leaf. The other shown items' outcomes
(click, cart, purchase, nested) are drawn from the feedback model, the world's simulated user.
Every user has an own random stream (STREAM_IMPRESSIONS), so the other files are unchanged and the
same seed gives the same bytes.

    log = ImpressionLogger(world)
    records = log.user_impressions(u, events[u], split_of)   # list[dict], chronological
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from oxygen.world.catalogue import stream
from oxygen.world.sessions import Event, _draw

STREAM_IMPRESSIONS = 6
SOURCES: tuple[str, ...] = ("history", "scenario", "popular", "explore")
SOURCE_MIX = np.array([0.35, 0.35, 0.2, 0.1])  # logging policy: chance of each source per slot


class ImpressionLogger:
    """Builds the logged list and its outcomes for each request of a user."""

    def __init__(self, world) -> None:
        """Hold the world's parts (`oxygen.world.world.World`) and the policy's lookups."""
        self.world, self.kb, self.cat, self.fb = world, world.kb, world.catalogue, world.feedback
        self.size, self.rate, self.seed = world.config.impression_size, world.config.impression_rate, world.config.seed
        self.leaf_weight = self.cat.leaf_weight()

    def _leaf_source(self, scenario: str, trigger: int, query: str | None) -> np.ndarray:
        """Float[L]: the scenario source's leaf weights (popularity where it has nothing)."""
        if scenario in ("cart", "checkout") and trigger >= 0:
            w = self.kb.complement[int(self.cat.leaf[trigger])].astype(np.float64)
        elif scenario == "channel" and trigger >= 0:
            leaf = int(self.cat.leaf[trigger])
            w = np.zeros(len(self.kb.leaves))
            w[self.kb.siblings(leaf)] = 0.5
            w[leaf] = 1.0
        elif scenario == "search" and query:
            w = self.fb.matcher.scores(query)
        else:
            w = np.zeros(len(self.kb.leaves))
        return w if w.sum() > 0 else self.leaf_weight

    def shown(self, ev: Event, history_leaves: list[int], rng: np.random.Generator) -> list[int]:
        """The logged list (Int[size], distinct, the event's item at a uniform position)."""
        n = min(self.size, self.cat.n)
        scen = self._leaf_source(ev.scenario, ev.trigger, ev.query)
        hist = np.bincount(history_leaves, minlength=len(self.kb.leaves)).astype(np.float64) if history_leaves else None
        others: list[int] = []
        for _ in range(8 * n):
            if len(others) == n - 1:
                break
            src = SOURCES[_draw(SOURCE_MIX, rng.random())]
            if src == "explore":
                item = int(rng.integers(self.cat.n))
            else:
                w = {"history": hist, "scenario": scen, "popular": self.leaf_weight}[src]
                w = self.leaf_weight if w is None else w
                item = self.cat.sample(_draw(w, rng.random()), None, rng.random())
            if item != ev.item and item not in others and item != ev.trigger:
                others.append(item)
        while len(others) < n - 1:  # tiny catalogues: fill with any unseen item
            item = int(rng.integers(self.cat.n))
            if item != ev.item and item not in others:
                others.append(item)
        pos = int(rng.integers(n))
        return others[:pos] + [ev.item] + others[pos:]

    def user_impressions(self, u: int, events: list[Event], split_of: Callable[[int], str | None]) -> list[dict]:
        """The impression records of user `u`'s requests (`split_of(day)` names a day's split, None
        skips it), chronological."""
        rng = stream(self.seed, STREAM_IMPRESSIONS, u)
        uid, out, leaves = self.world.users.user_id(u), [], []
        for i, ev in enumerate(events):
            logged = rng.random() < self.rate
            split = split_of(ev.day)
            if logged and split is not None:
                out.append(self._record(uid, u, i, ev, leaves, split, rng))
            leaves.append(int(self.cat.leaf[ev.item]))
        return out

    def _record(self, uid: str, u: int, i: int, ev: Event, leaves: list[int], split: str,
                rng: np.random.Generator) -> dict:
        """One impression record: the list, its prices and per-item outcomes."""
        items = self.shown(ev, leaves, rng)
        trigger = None if ev.trigger < 0 else ev.trigger
        outcome = self.fb.sample(u, ev.day, ev.scenario, trigger, np.array(items), rng, ev.query).astype(int)
        pos = items.index(ev.item)
        depth = {"click": 1, "cart": 2, "purchase": 3}[ev.behaviour]
        outcome[pos] = [1, int(depth >= 2), int(depth >= 3)]  # what the user did with the event's item
        rec: dict = {"request_id": f"{uid}-{i}", "user_id": uid, "split": split, "scenario": ev.scenario,
                     "timestamp": ev.ts, "date": self.world.calendar.date(ev.day).isoformat()}
        if trigger is not None:
            rec["trigger"] = trigger
        if ev.query is not None:
            rec["query"] = ev.query
        rec.update(items=items, prices=[float(self.cat.price[j]) for j in items], event_position=pos,
                   clicks=outcome[:, 0].tolist(), carts=outcome[:, 1].tolist(), purchases=outcome[:, 2].tolist())
        return rec
