"""How far can an instruction take a recommender on the deductive rows? Bayes ceilings from the
shop world's own simulator (hidden truth: evaluation only, nothing here trains or steers a model).

    python -m bench.instruction_ceiling --data runs/demo/world [--out FILE.json]

On the test rows whose hidden reason is a contextual need, HR@10 of rankers that know more and
more of the truth and rank items exactly as the simulator draws them (popularity^alpha within the
leaf, the user's price tier with P_TIER):
- `need_leaf`: the leaf the user actually wanted (what the oracle instruction names);
- `need_set`: every leaf the context makes this user need that day, weighted by strength
  (what a perfect STP branch would state);
- `need_set_unmet`: the same without leaves the user already has in their history.

These three know the row is deductive; a real recommender does not. Two more rank items by the
simulator's whole homepage mixture (a contextual need with P_CONTEXT when one is unmet, else
popularity with P_POPULAR or the user's true interests), i.e. the best any model can do:
- `mix_no_context`: the mixture without the contextual part (the user's true interests and
  popularity only): the best a ranker that knows nothing of the day's needs can do;
- `mix_need_set`: the whole mixture with the exact unmet need set (the needs the user's earlier
  context visits have not fired): the best a ranker with a perfect STP branch can do.
Their ratio bounds what any instruction can add over a default that knows the user perfectly.

`--frontier` adds the trade at the optimum: on a fixed sample of all homepage test rows (every
reason), HR@10 per hidden reason of the ranker `lam * context + (1 - lam) * rest` for lam from 0
(the day's needs unknown) to 0.8 (the simulator's own mixture is lam = P_CONTEXT where a need is
unmet): how many interest hits each deductive hit costs when the list is the best one possible.

    python -m bench.instruction_ceiling --data runs/WD --frontier --max-rows 3000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from apps import cli
from oxygen.data.io import load_dataset
from oxygen.eval.instructions import deductive
from oxygen.eval.ranking import eval_split
from oxygen.world.catalogue import POP_ALPHA
from oxygen.world.sessions import P_CONTEXT, P_POPULAR, P_TIER
from oxygen.world.world import World

K = 10


def item_probs(world: World, leaf: int, tier: int) -> np.ndarray:
    """Float[N]: P(item | leaf, the user's price tier) as the simulator draws it."""
    cat = world.catalogue
    weight = cat.popularity ** POP_ALPHA
    in_leaf = cat.leaf == leaf
    allp = np.where(in_leaf, weight, 0.0)
    allp /= allp.sum()
    in_tier = in_leaf & (cat.tier == tier)
    tp = np.where(in_tier, weight, 0.0) / weight[in_tier].sum() if in_tier.any() else allp
    return P_TIER * tp + (1 - P_TIER) * allp


def leaf_mix(world: World, leaves: np.ndarray, weights: np.ndarray, tier: int) -> np.ndarray:
    """Float[N]: sum_l weights[l] * P(item | leaves[l], tier) (weights need not sum to 1)."""
    return sum((float(w) * item_probs(world, int(leaf), tier) for leaf, w in zip(leaves, weights)),
               np.zeros(len(world.catalogue.leaf)))


def fired_needs(rows_by_user: dict[str, list], user: str, ts: int) -> set[str]:
    """The needs the user's context visits before `ts` have already fired (the simulator's state)."""
    return {r.truth.need for r in rows_by_user.get(user, ()) if r.timestamp < ts and r.truth.reason == "context"}


def user_index(world: World) -> dict[str, int]:
    """{user id: the simulator's user index}."""
    return {world.users.user_id(u): u for u in range(world.users.n)}


def truth_by_user(data) -> dict[str, list]:
    """Every split's rows with hidden truth, by user (what fired_needs reads)."""
    by_user: dict[str, list] = {}
    for split in data.splits.values():
        for r in split:
            if r.truth is not None:
                by_user.setdefault(r.user_id, []).append(r)
    return by_user


def ceilings(root: Path) -> dict:
    """HR@K of the rankers on the deductive test rows of the world in `root`."""
    world, data = World.load(root), load_dataset(root)
    test = data.splits["test"]
    users, kb, cat = world.users, world.kb, world.catalogue
    uid, start, by_user = user_index(world), dt.date.fromisoformat(world.config.start_date), truth_by_user(data)
    leaf_pop = cat.leaf_weight() / cat.leaf_weight().sum()
    popular: dict[int, np.ndarray] = {}  # tier -> P(item | a popularity visit)
    hits: dict[str, list[bool]] = {k: [] for k in ("need_leaf", "need_set", "need_set_unmet",
                                                   "mix_no_context", "mix_need_set")}
    for r in (r for r, d in zip(test, deductive(test)) if d):
        u = uid[r.user_id]
        tier = int(users.spending[u])
        hits["need_leaf"].append(r.target in np.argsort(-item_probs(world, kb.leaves.index(r.truth.need), tier))[:K])
        day = (dt.date.fromisoformat(r.context.date) - start).days
        leaves, strength = world.calendar.needs(int(users.persona[u]), int(users.city[u]), day)
        owned = {int(cat.leaf[i]) for i in r.history}
        for name, keep in (("need_set", np.ones(len(leaves), bool)),
                           ("need_set_unmet", np.array([leaf not in owned for leaf in leaves], bool))):
            keep = keep if keep.any() else np.ones(len(leaves), bool)
            p = sum(s * item_probs(world, int(leaf), tier) for leaf, s, k in zip(leaves, strength, keep) if k)
            hits[name].append(r.target in np.argsort(-p)[:K])
        if tier not in popular:
            popular[tier] = leaf_mix(world, np.arange(len(kb.leaves)), leaf_pop, tier)
        rest = (P_POPULAR * popular[tier]
                + (1 - P_POPULAR) * leaf_mix(world, users.interest_leaf[u], users.interest_weight[u], tier))
        fired = fired_needs(by_user, r.user_id, r.timestamp)
        unmet = np.array([kb.leaves[leaf] not in fired for leaf in leaves], bool)
        ctx = leaf_mix(world, leaves[unmet], strength[unmet] / strength[unmet].sum(), tier) if unmet.any() else 0.0
        hits["mix_no_context"].append(r.target in np.argsort(-rest)[:K])
        mix = P_CONTEXT * ctx + (1 - P_CONTEXT) * rest if unmet.any() else rest
        hits["mix_need_set"].append(r.target in np.argsort(-mix)[:K])
    return {"rows": len(hits["need_leaf"]), **{f"hr{K}_{k}": float(np.mean(v)) for k, v in hits.items()}}


LAMBDAS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def frontier(root: Path, max_rows: int | None = 3000, lambdas: tuple[float, ...] = LAMBDAS) -> dict:
    """{'rows': {reason: n}, 'lam': {lam: {reason: HR@K, 'all': HR@K}}} on homepage test rows (a
    fixed sample of `max_rows`): items ranked by lam * (the unmet needs' mixture) + (1 - lam) *
    (popularity and the user's true interests), with the simulator's own unmet-need set."""
    world, data = World.load(root), load_dataset(root)
    users, kb, cat = world.users, world.kb, world.catalogue
    rows = eval_split([r for r in data.splits["test"] if r.scenario == "homepage"], max_rows)
    uid, start, by_user = user_index(world), dt.date.fromisoformat(world.config.start_date), truth_by_user(data)
    leaf_pop = cat.leaf_weight() / cat.leaf_weight().sum()
    popular: dict[int, np.ndarray] = {}
    hits = {lam: [] for lam in lambdas}
    for r in tqdm(rows, desc="frontier", unit="row"):
        u = uid[r.user_id]
        tier = int(users.spending[u])
        if tier not in popular:
            popular[tier] = leaf_mix(world, np.arange(len(kb.leaves)), leaf_pop, tier)
        rest = (P_POPULAR * popular[tier]
                + (1 - P_POPULAR) * leaf_mix(world, users.interest_leaf[u], users.interest_weight[u], tier))
        day = (dt.date.fromisoformat(r.context.date) - start).days
        leaves, strength = world.calendar.needs(int(users.persona[u]), int(users.city[u]), day)
        fired = fired_needs(by_user, r.user_id, r.timestamp)
        unmet = np.array([kb.leaves[leaf] not in fired for leaf in leaves], bool)
        ctx = leaf_mix(world, leaves[unmet], strength[unmet] / strength[unmet].sum(), tier) if unmet.any() else None
        for lam in lambdas:
            mix = rest if ctx is None else lam * ctx + (1 - lam) * rest
            hits[lam].append(r.target in np.argsort(-mix)[:K])
    reasons = np.array([r.truth.reason if r.truth is not None else "" for r in rows])
    kinds = sorted(set(reasons.tolist()) - {""})
    out = {}
    for lam, h in hits.items():
        h = np.asarray(h, dtype=np.float64)
        out[str(lam)] = {**{k: float(h[reasons == k].mean()) for k in kinds}, "all": float(h.mean())}
    return {"rows": {k: int((reasons == k).sum()) for k in kinds}, "lam": out}


def main(argv: list[str] | None = None) -> dict:
    """Print (and write) the ceilings (and, with --frontier, the trade at the optimum)."""
    p = argparse.ArgumentParser(prog="python -m bench.instruction_ceiling", description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--frontier", action="store_true", help="also the Bayes trade between reasons on homepage rows")
    p.add_argument("--max-rows", type=int, default=3000, help="the frontier's fixed sample of homepage test rows")
    cli.add_common(p)
    args = p.parse_args(argv)
    out = ceilings(args.data)
    if args.frontier:
        out["frontier"] = frontier(args.data, args.max_rows)
    print(json.dumps(out, indent=1))
    if args.out:
        args.out.write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    cli.run(main)
