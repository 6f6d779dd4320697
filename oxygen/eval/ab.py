"""The simulated online A/B test: every arm answers the same sampled requests, the world's feedback
model (the simulated user) decides what the user does with each shown item, and per scenario the
arms are compared on UCTR, UCVR, orders and GMV with paired bootstrap intervals over users.

- Requests: a seeded sample of `ABTestConfig.requests` test rows (optionally of `scenarios` only);
  each row is one request: user, day (from its timestamp through the world's calendar), scenario,
  trigger and query. Arms see the rows only; only this module reads the world.
- Common random numbers: the uniform of request i and item j is a counter-based hash of
  (seed, i, j) (splitmix64), so two arms that show the same item at the same request get the same
  outcome for it. Outcomes are nested as in `FeedbackModel.draw`: clicked = u < p_click,
  carted = u < p_cart, purchased = u < p_purchase. Padding (-1) and repeats of an item already
  in the list count nothing.
- Metrics per arm and scope (each scenario and "all"), over the users with a request there:
  `uctr` (share with >= 1 click), `ucvr` (share with >= 1 purchase), `orders` (purchases), `gmv`
  (sum of purchased prices), each with a 95% percentile bootstrap interval (users resampled, the
  same resample for every arm), `lift_vs_control` (arm / control - 1 with its paired interval and
  `significant`: the interval excludes 0) and `expected` (the same four without sampling noise:
  from the probabilities).
- `oracle_lists`: a ceiling that ranks the whole catalogue by the true expected value (evaluation
  only: it reads the simulated user).

    reqs = sample_requests(ds.splits["test"], world.calendar, cfg)             # Requests, n rows
    shown = show(world.feedback, reqs, {"pop": pop_lists, "oracle": oracle_lists(world.feedback, reqs, 10)}, cfg.seed)
    report = ab_report(reqs, shown, world.catalogue.price, cfg)              # {arm: {scope: {...}}}
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from oxygen.config import ABTestConfig
from oxygen.data.schema import SCENARIOS, Row
from oxygen.eval.metrics import first_occurrence
from oxygen.world.calendar import Calendar
from oxygen.world.feedback import FeedbackModel

METRICS: tuple[str, ...] = ("uctr", "ucvr", "orders", "gmv")
ALL = "all"
ORACLE_BY: tuple[str, ...] = ("gmv", "purchase", "click")


@dataclass
class Requests:
    """The sampled requests of one A/B test (n of them, aligned): the rows every arm answers and
    what the simulated user needs to judge them."""

    rows: list[Row]
    user: np.ndarray  # Int64[n] world user index
    day: np.ndarray  # Int64[n] simulated day
    scenario: list[str]
    trigger: np.ndarray  # Int64[n], -1 without a trigger
    query: list[str | None]

    def __len__(self) -> int:
        return len(self.rows)


@dataclass
class Shown:
    """What one arm showed at each request (n requests, k slots) and what it earned."""

    items: np.ndarray  # Int64[n, k] item ids, -1 padded
    counted: np.ndarray  # Bool[n, k]: a real item, its first occurrence in the list
    probs: np.ndarray  # Float[n, k, 3] (p_click, p_cart, p_purchase), 0 where not counted
    outcome: np.ndarray  # Bool[n, k, 3] (clicked, carted, purchased), nested, False where not counted


def user_index(user_id: str) -> int:
    """World user index of a shop-world user id ("u000042" -> 42)."""
    if len(user_id) < 2 or user_id[0] != "u" or not user_id[1:].isdigit():
        raise ValueError(f"user id {user_id!r} is not a shop-world id like 'u000042'; "
                         "this A/B test needs a shop-world folder written by python -m apps.world")
    return int(user_id[1:])


def request_day(row: Row, calendar: Calendar) -> int:
    """The simulated day of a row: its timestamp's UTC date on the world's calendar (else its
    context date)."""
    if row.timestamp is not None:
        return calendar.day_of(dt.datetime.fromtimestamp(row.timestamp, dt.timezone.utc).date())
    if row.context is not None and row.context.date:
        return calendar.day_of(row.context.date)
    raise ValueError(f"a row of user {row.user_id} has neither timestamp nor context.date; "
                     "the simulated user needs the request's date")


def sample_requests(rows: Sequence[Row], calendar: Calendar, cfg: ABTestConfig) -> Requests:
    """A seeded sample of `cfg.requests` rows (all when None or fewer; only `cfg.scenarios` when
    set), in their original order, as requests."""
    keep = [r for r in rows if cfg.scenarios is None or r.scenario in cfg.scenarios]
    if not keep:
        raise ValueError(f"no test rows{' in scenarios ' + str(cfg.scenarios) if cfg.scenarios else ''}; "
                         "the A/B test needs test.jsonl rows with a scenario")
    if cfg.requests is not None and cfg.requests < len(keep):
        idx = np.sort(np.random.default_rng([cfg.seed, 0]).choice(len(keep), cfg.requests, replace=False))
        keep = [keep[i] for i in idx]
    if missing := sum(r.scenario is None for r in keep):
        raise ValueError(f"{missing} sampled rows have no scenario; the simulated user needs one per request")
    return Requests(keep, np.array([user_index(r.user_id) for r in keep], dtype=np.int64),
                    np.array([request_day(r, calendar) for r in keep], dtype=np.int64),
                    [str(r.scenario) for r in keep],
                    np.array([-1 if r.trigger is None else r.trigger for r in keep], dtype=np.int64),
                    [r.query for r in keep])


def splitmix64(x: np.ndarray) -> np.ndarray:
    """UInt64[...] -> UInt64[...]: the splitmix64 finaliser, elementwise (wrapping arithmetic)."""
    z = np.asarray(x, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def uniforms(seed: int, request: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Float64[n, k] in [0, 1): the common random number of (seed, request[i], items[i, j]), the
    same whichever arm shows item j at request i. request: Int[n]; items: Int[n, k]."""
    s = splitmix64(np.array([seed], dtype=np.int64).astype(np.uint64))
    r = splitmix64(s ^ np.asarray(request, dtype=np.int64).astype(np.uint64))[:, None]
    h = splitmix64(r ^ np.asarray(items, dtype=np.int64).astype(np.uint64))
    return (h >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def counted_slots(items: np.ndarray) -> np.ndarray:
    """Bool[n, k]: slots holding a real item (>= 0) seen for the first time in its row."""
    return first_occurrence(np.asarray(items, dtype=np.int64))


def _check_lists(lists: dict[str, np.ndarray], n: int) -> None:
    """Every arm's lists are Int[n, k] for one k."""
    shapes = {name: np.shape(v) for name, v in lists.items()}
    if not lists or len({s for s in shapes.values()}) != 1 or any(len(s) != 2 or s[0] != n for s in shapes.values()):
        raise ValueError(f"every arm must give Int[{n}, k] item lists of one k; got {shapes}")


def show(fb: FeedbackModel, reqs: Requests, lists: dict[str, np.ndarray], seed: int,
         progress: bool = True) -> dict[str, Shown]:
    """Every arm's `lists` (Int64[n, k] per arm name) shown to the simulated user: probabilities
    (one feedback call per request over the union of the arms' items) and common-random-number
    outcomes."""
    _check_lists(lists, len(reqs))
    names = list(lists)
    items = {a: np.asarray(lists[a], dtype=np.int64) for a in names}
    counted = {a: counted_slots(items[a]) for a in names}
    probs = {a: np.zeros((*items[a].shape, 3)) for a in names}
    for i in tqdm(range(len(reqs)), desc="simulated user", unit="req", leave=False, disable=not progress):
        union = np.unique(np.concatenate([items[a][i][counted[a][i]] for a in names]))
        if not union.size:
            continue
        trig = int(reqs.trigger[i]) if reqs.trigger[i] >= 0 else None
        p = fb.probabilities(int(reqs.user[i]), int(reqs.day[i]), reqs.scenario[i], trig, union, reqs.query[i])
        for a in names:
            m = counted[a][i]
            probs[a][i, m] = p[np.searchsorted(union, items[a][i][m])]
    out = {}
    for a in names:
        u = uniforms(seed, np.arange(len(reqs)), items[a])
        out[a] = Shown(items[a], counted[a], probs[a], (u[..., None] < probs[a]) & counted[a][..., None])
    return out


def oracle_lists(fb: FeedbackModel, reqs: Requests, k: int, by: str = "gmv", progress: bool = True) -> np.ndarray:
    """Int64[n, k]: each request's k catalogue items of highest true expected value under the
    simulated user (`by`: gmv = p_purchase x price, purchase, or click); ties to the lower id.
    A ceiling for evaluation only: it reads the world."""
    if by not in ORACLE_BY:
        raise ValueError(f"oracle ranks by one of {ORACLE_BY}; got {by!r}")
    ids = np.arange(fb.catalogue.n)
    out = np.full((len(reqs), k), -1, dtype=np.int64)
    for i in tqdm(range(len(reqs)), desc="oracle", unit="req", leave=False, disable=not progress):
        trig = int(reqs.trigger[i]) if reqs.trigger[i] >= 0 else None
        p = fb.probabilities(int(reqs.user[i]), int(reqs.day[i]), reqs.scenario[i], trig, ids, reqs.query[i])
        score = {"gmv": p[:, 2] * fb.catalogue.price, "purchase": p[:, 2], "click": p[:, 0]}[by]
        top = np.argsort(-score, kind="stable")[:k]
        out[i, : len(top)] = ids[top]
    return out


@dataclass
class Scope:
    """The users with a request in one scope: which requests, and each request's user position."""

    requests: np.ndarray  # Int64[m] request indices in the scope
    users: np.ndarray  # Int64[U] distinct world user indices
    position: np.ndarray  # Int64[m] index into `users` of each scoped request


def scopes(reqs: Requests) -> dict[str, Scope]:
    """"all" and every scenario present, in SCENARIOS order."""
    scen = np.array(reqs.scenario)
    names = [ALL, *sorted(set(reqs.scenario), key=_scenario_order)]
    out = {}
    for name in names:
        idx = np.arange(len(reqs)) if name == ALL else np.nonzero(scen == name)[0]
        users, pos = np.unique(reqs.user[idx], return_inverse=True)
        out[name] = Scope(idx, users, pos.reshape(-1))
    return out


def _scenario_order(s: str) -> tuple[int, str]:
    """Sort key: the schema's scenario order, unknown names last."""
    return (SCENARIOS.index(s) if s in SCENARIOS else len(SCENARIOS), s)


def user_values(shown: Shown, scope: Scope, price: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(Float[U, 4] sampled, Float[U, 4] expected) per user of `scope`: any click, any purchase,
    orders, GMV (sampled from the outcomes; expected from the probabilities, items independent)."""
    out, p = shown.outcome[scope.requests], shown.probs[scope.requests]
    value = np.where(shown.counted[scope.requests], price[np.maximum(shown.items[scope.requests], 0)], 0.0)
    per_req = np.stack([out[..., 0].any(1), out[..., 2].any(1), out[..., 2].sum(1), (out[..., 2] * value).sum(1)], 1)
    no_click, no_buy = np.log1p(-p[..., 0]).sum(1), np.log1p(-p[..., 2]).sum(1)
    per_exp = np.stack([no_click, no_buy, p[..., 2].sum(1), (p[..., 2] * value).sum(1)], 1)
    U = len(scope.users)
    sampled, expected = np.zeros((U, 4)), np.zeros((U, 4))
    np.add.at(sampled, scope.position, per_req.astype(np.float64))
    np.add.at(expected, scope.position, per_exp)
    sampled[:, :2] = sampled[:, :2] > 0
    expected[:, :2] = 1.0 - np.exp(expected[:, :2])
    return sampled, expected


def bootstrap_weights(n_users: int, n_boot: int, seed: int | Sequence[int]) -> np.ndarray:
    """Float[n_boot, n_users]: how often each user is drawn in each resample (users with replacement)."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_users, size=(n_boot, n_users)) + n_users * np.arange(n_boot)[:, None]
    return np.bincount(draws.reshape(-1), minlength=n_boot * n_users).reshape(n_boot, n_users).astype(np.float64)


def statistics(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Float[B, 4] metrics of Float[U, 4] per-user values under Float[B, U] user weights: shares
    (uctr, ucvr: weighted mean) and totals (orders, gmv: weighted sum)."""
    tot = weights @ values
    tot[:, :2] /= weights.sum(axis=1, keepdims=True)
    return tot


def _interval(samples: np.ndarray) -> list[float | None]:
    """[2.5%, 97.5%] percentiles of Float[B] (nan resamples dropped; None when none is left)."""
    ok = samples[np.isfinite(samples)]
    return [float(x) for x in np.quantile(ok, [0.025, 0.975])] if ok.size else [None, None]


def _lift(arm: np.ndarray, ctrl: np.ndarray, arm_b: np.ndarray, ctrl_b: np.ndarray) -> dict:
    """{'value', 'ci95', 'significant'} of arm / control - 1 (None where the control is 0)."""
    if ctrl == 0:
        return {"value": None, "ci95": [None, None], "significant": False}
    with np.errstate(divide="ignore", invalid="ignore"):
        ci = _interval(np.where(ctrl_b > 0, arm_b / ctrl_b - 1.0, np.nan))
    sig = ci[0] is not None and (ci[0] > 0 or ci[1] < 0)
    return {"value": float(arm / ctrl - 1.0), "ci95": ci, "significant": bool(sig)}


def ab_report(reqs: Requests, shown: dict[str, Shown], price: np.ndarray, cfg: ABTestConfig) -> dict:
    """{arm: {scope: {'requests', 'users', uctr/ucvr/orders/gmv: {'value', 'ci95'}, 'expected':
    {metric: value}, 'lift_vs_control': {metric: {'value', 'ci95', 'significant'}}}}}; the
    bootstrap resamples users once per scope (seeded), the same resample for every arm."""
    if cfg.control not in shown:
        raise ValueError(f"control arm '{cfg.control}' is not among the arms {sorted(shown)}; pass --control NAME")
    price = np.asarray(price, dtype=np.float64)
    report: dict[str, dict] = {a: {} for a in shown}
    for n, (name, scope) in enumerate(scopes(reqs).items()):
        w = bootstrap_weights(len(scope.users), cfg.bootstrap, [cfg.seed, 2, n])
        vals = {a: user_values(s, scope, price) for a, s in shown.items()}
        point = {a: statistics(v[0], np.ones((1, len(scope.users))))[0] for a, v in vals.items()}
        boot = {a: statistics(v[0], w) for a, v in vals.items()}
        for a in shown:
            exp = statistics(vals[a][1], np.ones((1, len(scope.users))))[0]
            rep = {"requests": int(len(scope.requests)), "users": int(len(scope.users))}
            rep.update({m: {"value": float(point[a][j]), "ci95": _interval(boot[a][:, j])} for j, m in enumerate(METRICS)})
            rep["expected"] = {m: float(exp[j]) for j, m in enumerate(METRICS)}
            rep["lift_vs_control"] = {m: _lift(point[a][j], point[cfg.control][j], boot[a][:, j], boot[cfg.control][:, j])
                                      for j, m in enumerate(METRICS)}
            report[a][name] = rep
    return report
