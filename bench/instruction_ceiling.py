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
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

import numpy as np

from apps import cli
from oxygen.data.io import load_dataset
from oxygen.eval.instructions import deductive
from oxygen.world.catalogue import POP_ALPHA
from oxygen.world.sessions import P_TIER
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


def ceilings(root: Path) -> dict:
    """HR@K of the three rankers on the deductive test rows of the world in `root`."""
    world, test = World.load(root), load_dataset(root, splits=("test",)).splits["test"]
    users, kb, cat = world.users, world.kb, world.catalogue
    uid = {users.user_id(u): u for u in range(users.n)}
    start = dt.date.fromisoformat(world.config.start_date)
    hits: dict[str, list[bool]] = {"need_leaf": [], "need_set": [], "need_set_unmet": []}
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
    return {"rows": len(hits["need_leaf"]), **{f"hr{K}_{k}": float(np.mean(v)) for k, v in hits.items()}}


def main(argv: list[str] | None = None) -> dict:
    """Print (and write) the ceilings."""
    p = argparse.ArgumentParser(prog="python -m bench.instruction_ceiling", description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--out", type=Path, default=None)
    cli.add_common(p)
    args = p.parse_args(argv)
    out = ceilings(args.data)
    print(json.dumps(out, indent=1))
    if args.out:
        args.out.write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    cli.run(main)
