"""The simulated A/B test (oxygen.eval.ab) on a small generated world: identical arms show no lift,
common random numbers give one outcome per (request, item) whichever arm shows it, the oracle beats
popularity significantly, intervals hold their point estimates, padding and repeats count nothing,
and a plain-Python reference agrees with the vectorised path."""

from __future__ import annotations

import numpy as np
import pytest

from apps import world as world_app
from oxygen.config import ABTestConfig, MarkovConfig, PopConfig
from oxygen.data.io import load_dataset
from oxygen.eval import ab
from oxygen.recommenders.markov import MarkovRecommender
from oxygen.recommenders.pop import PopRecommender
from oxygen.world.world import World

M64 = (1 << 64) - 1


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(world, dataset, requests, pop lists, markov lists) of a 300-item, 400-user, 30-day world."""
    out = tmp_path_factory.mktemp("ab") / "w"
    world_app.main(["--out", str(out), "--items", "300", "--users", "400", "--days", "30", "--seed", "1", "--quiet"])
    world, ds = World.load(out), load_dataset(out)
    reqs = ab.sample_requests(ds.splits["test"], world.calendar, ABTestConfig())
    pop = PopRecommender(PopConfig()).fit(ds.splits["train"], ds.splits["valid"], ds.items).recommend(reqs.rows, 10)
    markov = MarkovRecommender(MarkovConfig()).fit(ds.splits["train"], ds.splits["valid"], ds.items).recommend(reqs.rows, 10)
    return world, ds, reqs, pop, markov


def _report(world, reqs, lists, control, seed=0, boot=500):
    cfg = ABTestConfig(control=control, seed=seed, bootstrap=boot)
    shown = ab.show(world.feedback, reqs, lists, seed, progress=False)
    return shown, ab.ab_report(reqs, shown, world.catalogue.price, cfg)


def test_requests_are_a_seeded_sample_with_days_and_users(setup):
    world, ds, reqs, _, _ = setup
    test = ds.splits["test"]
    assert len(reqs) == len(test) and set(reqs.scenario) <= {"search", "homepage", "channel", "cart", "checkout"}
    assert all(world.calendar.date(int(d)).isoformat() == r.context.date for d, r in zip(reqs.day, reqs.rows))
    assert all(f"u{u:06d}" == r.user_id for u, r in zip(reqs.user, reqs.rows))
    cfg = ABTestConfig(requests=20, seed=3, scenarios=["homepage", "search"])
    a, b = (ab.sample_requests(test, world.calendar, cfg) for _ in range(2))
    assert len(a) == 20 and [r.timestamp for r in a.rows] == [r.timestamp for r in b.rows]
    assert set(a.scenario) <= {"homepage", "search"}
    other = ab.sample_requests(test, world.calendar, cfg.model_copy(update={"seed": 4}))
    assert [r.timestamp for r in other.rows] != [r.timestamp for r in a.rows]


def test_identical_arms_report_zero_lift(setup):
    world, _, reqs, pop, _ = setup
    _, rep = _report(world, reqs, {"a": pop, "b": pop.copy()}, control="a")
    for scope, r in rep["b"].items():
        for m in ab.METRICS:
            assert r[m] == rep["a"][scope][m]
            lift = r["lift_vs_control"][m]
            if lift["value"] is not None:
                assert lift["value"] == 0.0 and lift["ci95"] == [0.0, 0.0] and not lift["significant"]


def test_common_random_numbers_share_outcomes(setup):
    world, _, reqs, pop, markov = setup
    shown, _ = _report(world, reqs, {"pop": pop, "markov": markov}, control="pop")
    shared = 0
    for i in range(len(reqs)):
        for j, item in enumerate(pop[i]):
            hit = np.nonzero(markov[i] == item)[0]
            if item >= 0 and hit.size:
                shared += 1
                assert (shown["pop"].outcome[i, j] == shown["markov"].outcome[i, hit[0]]).all()
                assert (shown["pop"].probs[i, j] == shown["markov"].probs[i, hit[0]]).all()
    assert shared > 0
    # the same item at another slot of another list: the same number
    items = np.array([[5, 7, 9]])
    assert ab.uniforms(1, np.array([3]), items)[0, 0] == ab.uniforms(1, np.array([3]), np.array([[8, 5]]))[0, 1]
    u = ab.uniforms(0, np.arange(200), np.tile(np.arange(300), (200, 1)))
    assert 0 <= u.min() and u.max() < 1 and abs(u.mean() - 0.5) < 0.01


def test_oracle_beats_popularity_significantly(setup):
    world, _, reqs, pop, _ = setup
    oracle = ab.oracle_lists(world.feedback, reqs, 10, progress=False)
    _, rep = _report(world, reqs, {"pop": pop, "oracle": oracle}, control="pop")
    lift = rep["oracle"]["all"]["lift_vs_control"]["uctr"]
    assert lift["value"] > 0 and lift["significant"] and lift["ci95"][0] > 0
    assert rep["oracle"]["all"]["expected"]["gmv"] > rep["pop"]["all"]["expected"]["gmv"]


def test_intervals_contain_the_point_estimate(setup):
    world, _, reqs, pop, markov = setup
    _, rep = _report(world, reqs, {"pop": pop, "markov": markov}, control="pop")
    for arm in rep.values():
        for r in arm.values():
            for m in ab.METRICS:
                lo, hi = r[m]["ci95"]
                assert lo <= r[m]["value"] <= hi
                lift = r["lift_vs_control"][m]
                if lift["value"] is not None:
                    assert lift["ci95"][0] <= lift["value"] <= lift["ci95"][1]


def test_padding_and_repeats_count_nothing(setup):
    world, _, reqs, pop, _ = setup
    short = pop.copy()
    short[:, 5:] = -1
    repeated = short.copy()
    repeated[:, 5:] = pop[:, [0, 1, 0, 2, 4]]
    shown, rep = _report(world, reqs, {"short": short, "repeated": repeated, "none": np.full_like(pop, -1)},
                         control="short")
    assert (shown["repeated"].outcome[:, 5:] == 0).all() and (shown["repeated"].probs[:, 5:] == 0).all()
    for scope, r in rep["repeated"].items():
        assert all(r[m] == rep["short"][scope][m] for m in ab.METRICS)
        assert all(rep["none"][scope][m]["value"] == 0 for m in ab.METRICS)
    assert ab.counted_slots(np.array([[3, -1, 3, 4, 4, -1]])).tolist() == [[True, False, False, True, False, False]]


def _u(seed: int, i: int, item: int) -> float:
    """The common random number, one splitmix64 step at a time in Python integers."""
    def mix(x: int) -> int:
        z = (x + 0x9E3779B97F4A7C15) & M64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)
    return (mix(mix(mix(seed & M64) ^ (i & M64)) ^ (item & M64)) >> 11) * 2.0 ** -53


def _reference(world, reqs, lists, seed):
    """{arm: {scope: (uctr, ucvr, orders, gmv)}}: outcomes and metrics in plain loops."""
    fb, price, out = world.feedback, world.catalogue.price, {}
    for arm, items in lists.items():
        per_user: dict[str, dict[int, list[float]]] = {}
        for i in range(len(reqs)):
            seen, trig = set(), None if reqs.trigger[i] < 0 else int(reqs.trigger[i])
            for item in items[i].tolist():
                if item < 0 or item in seen:
                    continue
                seen.add(item)
                p = fb.probabilities(int(reqs.user[i]), int(reqs.day[i]), reqs.scenario[i], trig, np.array([item]),
                                     reqs.query[i])[0]
                u = _u(seed, i, item)
                for scope in ("all", reqs.scenario[i]):
                    acc = per_user.setdefault(scope, {}).setdefault(int(reqs.user[i]), [0.0, 0.0, 0.0, 0.0])
                    acc[0] = max(acc[0], float(u < p[0]))
                    acc[1] = max(acc[1], float(u < p[2]))
                    acc[2] += float(u < p[2])
                    acc[3] += float(price[item]) * (u < p[2])
            for scope in ("all", reqs.scenario[i]):  # a user with a request but nothing shown still counts
                per_user.setdefault(scope, {}).setdefault(int(reqs.user[i]), [0.0, 0.0, 0.0, 0.0])
        out[arm] = {s: (np.mean([v[0] for v in us.values()]), np.mean([v[1] for v in us.values()]),
                        sum(v[2] for v in us.values()), sum(v[3] for v in us.values())) for s, us in per_user.items()}
    return out


def test_vectorised_path_agrees_with_a_plain_reference(setup):
    world, _, reqs, pop, markov = setup
    noisy = markov.copy()
    noisy[::3, 7:] = -1
    noisy[1::4, 4] = noisy[1::4, 0]
    lists = {"pop": pop, "markov": noisy}
    _, rep = _report(world, reqs, lists, control="pop", seed=11)
    ref = _reference(world, reqs, lists, seed=11)
    for arm in lists:
        assert set(ref[arm]) == set(rep[arm])
        for scope, (uctr, ucvr, orders, gmv) in ref[arm].items():
            r = rep[arm][scope]
            assert r["uctr"]["value"] == uctr and r["ucvr"]["value"] == ucvr and r["orders"]["value"] == orders
            assert r["gmv"]["value"] == pytest.approx(gmv, rel=1e-12)
    assert ab.uniforms(11, np.array([2]), np.array([[17]]))[0, 0] == _u(11, 2, 17)
    assert ab.uniforms(-3, np.array([2]), np.array([[-1]]))[0, 0] == _u(-3, 2, -1)


def test_control_must_be_an_arm(setup):
    world, _, reqs, pop, _ = setup
    with pytest.raises(ValueError, match="control arm 'sasrec' is not among the arms"):
        _report(world, reqs, {"pop": pop}, control="sasrec")
