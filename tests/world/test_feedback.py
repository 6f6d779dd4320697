"""The user-feedback model: valid monotone funnel probabilities, a slow reference, preferences for
relevant items, nested sampling whose frequencies match the probabilities."""

from __future__ import annotations

import math

import numpy as np
import pytest

from oxygen.world.world import World


def _sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _reference(w: World, user: int, day: int, scenario: str, trigger: int | None, item: int,
               query: str | None) -> tuple[float, float, float]:
    """Slow, scalar restatement of the documented model for one item."""
    kb, cat, us, fb = w.kb, w.catalogue, w.users, w.feedback
    leaf = int(cat.leaf[item])
    interests = {int(l): float(x) for l, x in zip(us.interest_leaf[user], us.interest_weight[user])}
    interest = interests.get(leaf, 0.0) / max(interests.values())
    if scenario == "homepage":
        needs = dict(zip(*[a.tolist() for a in w.calendar.needs(int(us.persona[user]), int(us.city[user]), day)]))
        r = max(interest, 0.3 * fb.leaf_pop[leaf], needs.get(leaf, 0.0))
    elif scenario == "channel":
        t = int(cat.leaf[trigger])
        r = 1.0 if leaf == t else 0.7 if kb.leaf_mid[leaf] == kb.leaf_mid[t] else \
            max(0.3, 0.5 * interest) if kb.leaf_top[leaf] == kb.leaf_top[t] else 0.5 * interest
    elif scenario in ("cart", "checkout"):
        r = 0.0 if leaf == cat.leaf[trigger] else float(kb.complement[cat.leaf[trigger], leaf])
    else:
        r = float(fb.matcher.scores(query)[leaf])
    fit = -0.6 * abs(int(cat.tier[item]) - int(us.spending[user]))
    logit = -3.2 + 4.5 * r + 1.2 * (cat.quality[item] - 0.5) + fit
    if scenario in ("cart", "checkout") and leaf == cat.leaf[trigger]:
        logit -= 3.0
    p1 = _sig(logit)
    p2 = p1 * _sig(-1.0 + 1.5 * r + fit + 0.3 * (scenario in ("cart", "checkout")))
    return p1, p2, p2 * _sig(-0.4 + 0.8 * r + fit)


@pytest.mark.parametrize("scenario", ["homepage", "channel", "cart", "checkout", "search"])
def test_matches_reference_and_is_a_funnel(world: World, scenario: str):
    rng = np.random.default_rng(0)
    for _ in range(5):
        user, day = int(rng.integers(world.users.n)), int(rng.integers(world.config.days))
        trigger = int(rng.integers(world.catalogue.n))
        items = rng.integers(0, world.catalogue.n, 20)
        query = "wirless earbu" if scenario == "search" else None
        p = world.feedback.probabilities(user, day, scenario, trigger, items, query)
        assert p.shape == (20, 3) and ((p >= 0) & (p <= 1)).all()
        assert (p[:, 2] <= p[:, 1]).all() and (p[:, 1] <= p[:, 0]).all()
        ref = [_reference(world, user, day, scenario, trigger, int(i), query) for i in items]
        np.testing.assert_allclose(p, np.array(ref), rtol=1e-9, atol=1e-12)


def test_date_string_equals_day_index(world: World):
    date = world.calendar.date(33).isoformat()
    a = world.feedback.probabilities(5, date, "homepage", None, np.arange(50))
    b = world.feedback.probabilities(5, 33, "homepage", None, np.arange(50))
    np.testing.assert_array_equal(a, b)


def test_prefers_complements_in_cart(world: World):
    kb, cat = world.kb, world.catalogue
    rng = np.random.default_rng(1)
    gaps = []
    for trig_leaf in np.flatnonzero(kb.complement.sum(axis=1) > 0)[:40]:
        trigger = int(np.flatnonzero(cat.leaf == trig_leaf)[0])
        comp_items = np.flatnonzero(kb.complement[trig_leaf][cat.leaf] > 0)
        same = np.flatnonzero(cat.leaf == trig_leaf)
        rand = rng.integers(0, cat.n, 200)
        p = world.feedback.probabilities
        pc = p(0, 10, "cart", trigger, comp_items)[:, 0].mean()
        pr = p(0, 10, "cart", trigger, rand)[:, 0].mean()
        ps = p(0, 10, "cart", trigger, same)[:, 0].mean()
        gaps.append(pc > pr > ps)
    assert np.mean(gaps) > 0.95


def test_prefers_interests_on_homepage_and_query_on_search(world: World):
    cat, us = world.catalogue, world.users
    wins_home, wins_search = [], []
    for u in range(0, us.n, 40):
        fav = np.flatnonzero(np.isin(cat.leaf, us.interest_leaf[u]))
        other = np.flatnonzero(~np.isin(cat.leaf, us.interest_leaf[u]))[:300]
        p = world.feedback.probabilities
        wins_home.append(p(u, 5, "homepage", None, fav)[:, 0].mean() > p(u, 5, "homepage", None, other)[:, 0].mean())
        leaf = int(us.interest_leaf[u, 0])
        q = world.kb.leaf_words[leaf][0]
        hit = np.flatnonzero(cat.leaf == leaf)
        wins_search.append(p(u, 5, "search", None, hit, q)[:, 0].mean() > p(u, 5, "search", None, other, q)[:, 0].mean())
    assert np.mean(wins_home) > 0.9 and np.mean(wins_search) > 0.9


def test_sample_is_nested_and_calibrated(world: World):
    items = np.arange(40)
    probs = world.feedback.probabilities(3, 20, "homepage", None, items)
    rng = np.random.default_rng(2)
    draws = np.stack([world.feedback.sample(3, 20, "homepage", None, items, rng) for _ in range(2000)])
    assert (draws[..., 2] <= draws[..., 1]).all() and (draws[..., 1] <= draws[..., 0]).all()
    np.testing.assert_allclose(draws.mean(axis=0), probs, atol=0.05)


def test_errors_are_clear(world: World):
    fb = world.feedback
    with pytest.raises(ValueError, match="scenario 'feed' is unknown"):
        fb.probabilities(0, 0, "feed", None, np.arange(3))
    with pytest.raises(ValueError, match="needs a trigger"):
        fb.probabilities(0, 0, "cart", None, np.arange(3))
    with pytest.raises(ValueError, match="item ids in 0"):
        fb.probabilities(0, 0, "homepage", None, np.array([world.catalogue.n]))
    with pytest.raises(ValueError, match="user .* is unknown"):
        fb.probabilities(world.users.n, 0, "homepage", None, np.arange(3))
