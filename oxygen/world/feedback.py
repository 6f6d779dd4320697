"""The simulated user: probabilities of click, add-to-cart and purchase for a list of items.

Given (user, context date, scenario, trigger, query, items) the model scores how relevant each
item's leaf is to what the user needs right now (scenario-specific, see `leaf_relevance`), adds the
item's quality (popularity percentile within its leaf) and price fit (tier vs spending power), and
turns them into a funnel: p_purchase <= p_cart <= p_click by construction (each stage multiplies
the previous one by a conditional probability). The session simulator draws every event's
behaviour from this same model, so it is the ground truth of the world: the reward for RL and the
simulated user of an offline A/B test.

    fb = FeedbackModel(world.kb, world.calendar, world.catalogue, world.users)
    p = fb.probabilities(user=3, date="2025-12-21", scenario="cart", trigger=17, items=ids)  # Float[n, 3]
    outcome = fb.sample(3, "2025-12-21", "cart", 17, ids, rng)                            # Bool[n, 3]
"""

from __future__ import annotations

from typing import get_args

import numpy as np

from oxygen.config.loading import Scenario
from oxygen.world.calendar import Calendar
from oxygen.world.catalogue import Catalogue
from oxygen.world.knowledge import Knowledge
from oxygen.world.text import QueryMatcher
from oxygen.world.users import Users

SCENARIOS: tuple[str, ...] = get_args(Scenario)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """Elementwise logistic function."""
    return 1.0 / (1.0 + np.exp(-x))


class FeedbackModel:
    """Click / cart / purchase probabilities of a simulated user for recommended items."""

    def __init__(self, kb: Knowledge, calendar: Calendar, catalogue: Catalogue, users: Users):
        """Hold the world's parts; precompute leaf popularity for the homepage's popularity pull."""
        self.kb, self.calendar, self.catalogue, self.users = kb, calendar, catalogue, users
        self.matcher = QueryMatcher(kb)
        w = catalogue.leaf_weight()
        self.leaf_pop = w / max(w.max(), 1e-12)  # Float[L] in [0, 1]
        self._leaves = np.arange(len(kb.leaves))

    def _day(self, date: str | int) -> int:
        """Simulated day index of an ISO date (ints pass through)."""
        return date if isinstance(date, (int, np.integer)) else self.calendar.day_of(date)

    def leaf_relevance(self, user: int, date: str | int, scenario: str, trigger: int | None,
                       query: str | None = None) -> np.ndarray:
        """Float[L] in [0, 1]: how much user needs each leaf now in `scenario`.

        homepage: max(interest, contextual need, 0.3 x leaf popularity); channel: trigger leaf 1,
        siblings 0.7, same top 0.3, else half the interest; cart/checkout: complement strength of the
        trigger's leaf (its own leaf 0); search: how well the query names the leaf (interest if no
        query)."""
        if scenario not in SCENARIOS:
            raise ValueError(f"scenario {scenario!r} is unknown; use one of {SCENARIOS}")
        kb, users = self.kb, self.users
        interest = users.interest_of(user, self._leaves)
        interest = interest / max(interest.max(), 1e-12)
        if scenario in ("channel", "cart", "checkout"):
            if trigger is None:
                raise ValueError(f"scenario {scenario!r} needs a trigger item id; pass trigger=<item id>")
            tleaf = int(self.catalogue.leaf[trigger])
        if scenario == "homepage":
            leaves, strength = self.calendar.needs(int(users.persona[user]), int(users.city[user]), self._day(date))
            rel = np.maximum(interest, 0.3 * self.leaf_pop)
            rel[leaves] = np.maximum(rel[leaves], strength)
        elif scenario == "channel":
            rel = 0.5 * interest
            rel[kb.leaf_top == kb.leaf_top[tleaf]] = np.maximum(rel[kb.leaf_top == kb.leaf_top[tleaf]], 0.3)
            rel[kb.siblings(tleaf)] = 0.7
            rel[tleaf] = 1.0
        elif scenario in ("cart", "checkout"):
            rel = kb.complement[tleaf].copy()
            rel[tleaf] = 0.0
        else:
            rel = self.matcher.scores(query) if query else interest
        return rel

    def probabilities(self, user: int, date: str | int, scenario: str, trigger: int | None,
                      items: np.ndarray, query: str | None = None) -> np.ndarray:
        """Float[n, 3]: (p_click, p_cart, p_purchase) per item of `items` (Int[n])."""
        items = np.asarray(items, dtype=np.int64)
        if items.ndim != 1 or (len(items) and (items.min() < 0 or items.max() >= self.catalogue.n)):
            raise ValueError(f"items must be a 1-d array of item ids in 0..{self.catalogue.n - 1}")
        if not 0 <= user < self.users.n:
            raise ValueError(f"user {user} is unknown; users are 0..{self.users.n - 1}")
        rel = self.leaf_relevance(user, date, scenario, trigger, query)
        leaf = self.catalogue.leaf[items]
        r = rel[leaf]
        fit = -0.6 * np.abs(self.catalogue.tier[items] - self.users.spending[user])
        logit = -3.2 + 4.5 * r + 1.2 * (self.catalogue.quality[items] - 0.5) + fit
        if scenario in ("cart", "checkout"):  # never a second copy of the same kind of item
            logit = logit - 3.0 * (leaf == self.catalogue.leaf[trigger])
        p_click = _sigmoid(logit)
        p_cart = p_click * _sigmoid(-1.0 + 1.5 * r + fit + 0.3 * (scenario in ("cart", "checkout")))
        p_purchase = p_cart * _sigmoid(-0.4 + 0.8 * r + fit)
        return np.stack([p_click, p_cart, p_purchase], axis=1)

    @staticmethod
    def draw(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Bool[n, 3] nested outcomes from Float[n, 3] funnel probabilities: one uniform per item,
        so purchase implies cart implies click."""
        u = rng.random(len(probs))[:, None]
        return u < probs

    def sample(self, user: int, date: str | int, scenario: str, trigger: int | None,
               items: np.ndarray, rng: np.random.Generator, query: str | None = None) -> np.ndarray:
        """Bool[n, 3]: sampled (clicked, carted, purchased) per item."""
        return self.draw(self.probabilities(user, date, scenario, trigger, items, query), rng)

    def behaviour_given_click(self, probs: np.ndarray, u: float) -> str:
        """The deepest funnel stage of a clicked item, from its Float[3] probabilities and u in [0, 1)."""
        p_click, p_cart, p_purchase = (float(x) for x in probs)
        if u < p_purchase / p_click:
            return "purchase"
        return "cart" if u < p_cart / p_click else "click"
