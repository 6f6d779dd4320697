"""Sessions over simulated time: every user's events, with the hidden reason of each.

A user has Poisson(activity x SESSION_RATE x days) sessions at random times. A session starts on
the homepage or with a search:
- homepage: a contextual need of today not yet met (reason `context`), else a popular item
  (`popular`) or a long-term interest (`interest`); a clicked homepage item may open a channel
  page (trigger = that item) whose targets are the same or a sibling leaf (`channel`);
- search: an intent leaf (mostly an interest), a noisy query for it, one or two matching items;
- any item put in the cart may be followed by a `cart` event (trigger = that item, target a
  complement leaf, `complement`), a purchased one by a `checkout` add-on (cheaper complements).
Each event's behaviour (click/cart/purchase) is drawn from the feedback model's funnel.
Each user has an own random stream (seed, user), so users are independent and reproducible.

    sim = SessionSimulator(kb, catalogue, users, feedback, days=90, seed=0)
    events = sim.user_events(u)   # list[Event], chronological
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from oxygen.world.catalogue import Catalogue, stream
from oxygen.world.feedback import FeedbackModel
from oxygen.world.knowledge import Knowledge
from oxygen.world.text import make_query
from oxygen.world.users import Users

STREAM_SESSIONS = 4
SESSION_RATE = 0.075  # sessions per day for activity 1
P_SEARCH = 0.3  # a session starts with a search (else the homepage)
P_CONTEXT = 0.6  # homepage: follow an unmet contextual need when there is one
P_POPULAR = 0.15  # homepage: follow popularity
P_CHANNEL = 0.45  # a homepage click opens a channel page
P_CART = 0.6  # a carted item gets a cross-sell event
P_CHECKOUT = 0.5  # a purchased item gets an add-on event
P_TIER = 0.6  # the target is in the user's own price tier


class Event(NamedTuple):
    """One user interaction; `trigger`/`need` are -1 and `query` None when absent."""

    ts: int
    day: int
    scenario: str
    behaviour: str
    item: int
    trigger: int
    query: str | None
    reason: str
    need: int


def _draw(weights: np.ndarray, u: float) -> int:
    """Index drawn with probability proportional to Float[k] `weights` (sum > 0) at uniform u."""
    c = np.cumsum(weights)
    return int(min(np.searchsorted(c, u * c[-1], side="right"), len(c) - 1))


@dataclass
class _State:
    """What one user's simulation carries along."""

    u: int
    rng: np.random.Generator
    fired: set[int]
    events: list[Event]
    clock: int = 0  # unix time of the latest event


class SessionSimulator:
    """Generates the events of each user over `days` days from the calendar's start date."""

    def __init__(self, kb: Knowledge, catalogue: Catalogue, users: Users, feedback: FeedbackModel,
                 days: int, seed: int):
        """Keep the world's parts; `feedback.calendar` gives the contexts."""
        self.kb, self.cat, self.users, self.fb = kb, catalogue, users, feedback
        self.cal, self.days, self.seed = feedback.calendar, days, seed
        self.start_ts = (self.cal.start - dt.date(1970, 1, 1)).days * 86400
        self.leaf_weight = catalogue.leaf_weight()
        self.has_comp = kb.complement.sum(axis=1) > 0

    def user_events(self, u: int) -> list[Event]:
        """All events of user `u`, chronological."""
        rng = stream(self.seed, STREAM_SESSIONS, u)
        n = int(rng.poisson(self.users.activity[u] * SESSION_RATE * self.days))
        days = rng.integers(0, self.days, n)
        secs = rng.integers(7 * 3600, 23 * 3600, n)
        st = _State(u, rng, set(), [])
        for k in np.lexsort((secs, days)):
            st.clock = max(st.clock, self.start_ts + int(days[k]) * 86400 + int(secs[k]))
            if rng.random() < P_SEARCH:
                self._search(st, int(days[k]))
            else:
                self._homepage(st, int(days[k]))
        return st.events

    def _item(self, st: _State, leaf: int, avoid: int = -1) -> int:
        """An item of `leaf` for this user (own price tier with P_TIER), not `avoid` if possible."""
        tier = int(self.users.spending[st.u]) if st.rng.random() < P_TIER else None
        item = self.cat.sample(leaf, tier, st.rng.random())
        for _ in range(3):
            if item != avoid:
                break
            item = self.cat.sample(leaf, None, st.rng.random())
        return item

    def _emit(self, st: _State, day: int, scenario: str, item: int, trigger: int,
              query: str | None, reason: str, need: int) -> Event:
        """Draw the behaviour from the feedback funnel and record the event 10-120 s after the last."""
        ts = st.clock + int(st.rng.integers(10, 120)) if st.events else st.clock
        st.clock = ts
        p = self.fb.probabilities(st.u, day, scenario, None if trigger < 0 else trigger,
                                  np.array([item]), query)[0]
        ev = Event(ts, day, scenario, self.fb.behaviour_given_click(p, st.rng.random()), item,
                   trigger, query, reason, need)
        st.events.append(ev)
        return ev

    def _follow_ups(self, st: _State, ev: Event) -> None:
        """Cross-sell after add-to-cart and add-on at checkout, both complements of `ev.item`."""
        leaf = int(self.cat.leaf[ev.item])
        if ev.behaviour == "click" or not self.has_comp[leaf]:
            return
        comp = self.kb.complement[leaf]
        if st.rng.random() < P_CART:
            need = _draw(comp, st.rng.random())
            self._emit(st, ev.day, "cart", self._item(st, need), ev.item, None, "complement", need)
        if ev.behaviour == "purchase" and st.rng.random() < P_CHECKOUT:
            cheap = np.where(self.kb.leaf_price <= self.kb.leaf_price[leaf], 1.0, 0.25)
            need = _draw(comp * cheap, st.rng.random())
            self._emit(st, ev.day, "checkout", self._item(st, need), ev.item, None, "complement", need)

    def _homepage_need(self, st: _State, day: int) -> tuple[int, str]:
        """(leaf, reason) behind a homepage visit."""
        u, rng = st.u, st.rng
        leaves, strength = self.cal.needs(int(self.users.persona[u]), int(self.users.city[u]), day)
        unmet = np.array([leaf not in st.fired for leaf in leaves], dtype=bool)
        if unmet.any() and rng.random() < P_CONTEXT:
            leaf = int(leaves[unmet][_draw(strength[unmet], rng.random())])
            st.fired.add(leaf)
            return leaf, "context"
        if rng.random() < P_POPULAR:
            return _draw(self.leaf_weight, rng.random()), "popular"
        return int(self.users.interest_leaf[u, _draw(self.users.interest_weight[u], rng.random())]), "interest"

    def _homepage(self, st: _State, day: int) -> None:
        """A homepage visit, maybe followed by a channel page and cart/checkout events."""
        leaf, reason = self._homepage_need(st, day)
        ev = self._emit(st, day, "homepage", self._item(st, leaf), -1, None, reason,
                        -1 if reason == "popular" else leaf)
        self._follow_ups(st, ev)
        if st.rng.random() >= P_CHANNEL:
            return
        sib = self.kb.siblings(leaf)
        for _ in range(1 + int(st.rng.random() < 0.4)):
            near = leaf if len(sib) == 0 or st.rng.random() < 0.5 else int(sib[st.rng.integers(len(sib))])
            ch = self._emit(st, day, "channel", self._item(st, near, avoid=ev.item), ev.item, None,
                            "channel", near)
            self._follow_ups(st, ch)

    def _search(self, st: _State, day: int) -> None:
        """A search: intent leaf, noisy query, one or two matching items, follow-ups."""
        u, rng = st.u, st.rng
        if rng.random() < 0.85:
            leaf = int(self.users.interest_leaf[u, _draw(self.users.interest_weight[u], rng.random())])
        else:
            leaf = int(rng.integers(len(self.kb.leaves)))
        query = make_query(self.kb, leaf, rng)
        first = -1
        for _ in range(1 + int(rng.random() < 0.35)):
            ev = self._emit(st, day, "search", self._item(st, leaf, avoid=first), -1, query, "search", leaf)
            first = ev.item
            self._follow_ups(st, ev)
