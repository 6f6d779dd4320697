"""Users of the shop world: persona, city, age band, hobbies, spending power, activity level and
long-term interests over leaf categories.

Interests are `K_INTERESTS` leaves drawn mostly from the persona's favourite mid categories (plus a
random leaf now and then), weighted by a Dirichlet draw. A persona's *contextual* leaves (any leaf a
context rule may make it need) are never interests: those needs must be deduced from the situation,
not read off the user's history.

    users = Users.generate(kb, n_users=20000, seed=0)
    users.interest_leaf[7], users.interest_weight[7]     # Int[K], Float[K] (weights sum to 1)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from oxygen.world.catalogue import stream
from oxygen.world.knowledge import Knowledge

STREAM_USERS = 3
K_INTERESTS = 5
RANDOM_INTEREST = 0.15  # chance an interest slot is any (non-contextual) leaf


@dataclass
class Users:
    """User columns (length U); interests as Int[U, K] leaves and Float[U, K] weights."""

    kb: Knowledge
    persona: np.ndarray  # Int[U]
    city: np.ndarray  # Int[U]
    age_band: list[str]
    hobbies: list[tuple[str, ...]]
    spending: np.ndarray  # Int[U] in 0..2 (index into kb.spending_levels)
    activity: np.ndarray  # Float[U] > 0, mean about 1
    interest_leaf: np.ndarray  # Int[U, K]
    interest_weight: np.ndarray  # Float[U, K], rows sum to 1

    @property
    def n(self) -> int:
        """Number of users."""
        return len(self.persona)

    @staticmethod
    def user_id(u: int) -> str:
        """The string id of user index `u` ("u000042")."""
        return f"u{u:06d}"

    @classmethod
    def generate(cls, kb: Knowledge, n_users: int, seed: int) -> Users:
        """Draw `n_users` users."""
        if n_users < 1:
            raise ValueError(f"n_users={n_users}; the world needs at least one user")
        rng = stream(seed, STREAM_USERS)
        pw = np.array([p.weight for p in kb.personas])
        cw = np.array([c.weight for c in kb.cities])
        persona = rng.choice(len(pw), size=n_users, p=pw / pw.sum())
        city = rng.choice(len(cw), size=n_users, p=cw / cw.sum())
        activity = rng.lognormal(-0.7 ** 2 / 2, 0.7, n_users)
        spend_u = rng.random(n_users)
        spending = np.array([np.searchsorted(np.cumsum(kb.personas[p].spending), x, side="right")
                             for p, x in zip(persona, spend_u)]).clip(0, len(kb.spending_levels) - 1)
        allowed = [_allowed(kb, p) for p in range(len(kb.personas))]
        ages, hobbies = [], []
        leaves = np.zeros((n_users, K_INTERESTS), dtype=np.int64)
        weights = np.zeros((n_users, K_INTERESTS), dtype=np.float64)
        for u in range(n_users):
            pa = kb.personas[persona[u]]
            ages.append(pa.age_bands[int(rng.integers(len(pa.age_bands)))])
            pick = rng.permutation(len(pa.hobbies))[:2]
            hobbies.append(tuple(pa.hobbies[i] for i in sorted(pick)))
            leaves[u], weights[u] = _interests(kb, pa, allowed[persona[u]], rng)
        return cls(kb, persona, city, ages, hobbies, spending, activity, leaves, weights)

    def interest_of(self, u: int, leaves: np.ndarray) -> np.ndarray:
        """Float[n]: user u's interest weight in each of `leaves` (0 when not an interest)."""
        w = np.zeros(len(self.kb.leaves))
        np.add.at(w, self.interest_leaf[u], self.interest_weight[u])
        return w[leaves]

    def profile(self, u: int) -> dict:
        """The `oxygen.data.schema.Profile`-shaped dict of user u."""
        kb = self.kb
        return {"age_band": self.age_band[u], "family_stage": kb.personas[self.persona[u]].family_stage,
                "hobbies": list(self.hobbies[u]), "spending_power": kb.spending_levels[self.spending[u]],
                "city": kb.cities[self.city[u]].name, "persona": kb.personas[self.persona[u]].name}

    def records(self) -> Iterator[dict]:
        """Every user as a users.jsonl dict: id, profile, activity and interests (leaf -> weight)."""
        for u in range(self.n):
            interests = {self.kb.leaves[l]: round(float(w), 4)
                         for l, w in zip(self.interest_leaf[u], self.interest_weight[u])}
            yield {"user_id": self.user_id(u), **self.profile(u),
                   "climate": self.kb.cities[self.city[u]].climate,
                   "activity": round(float(self.activity[u]), 4), "interests": interests}


def _allowed(kb: Knowledge, persona: int) -> np.ndarray:
    """Bool[L]: leaves that may be an interest of `persona` (not one of its contextual leaves)."""
    ok = np.ones(len(kb.leaves), dtype=bool)
    ok[kb.context_leaves(persona)] = False
    return ok


def _interests(kb: Knowledge, persona, allowed: np.ndarray,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(Int[K] leaves, Float[K] weights): K distinct allowed leaves, mostly from favourite mids."""
    mids = np.array([m for m, _ in persona.interests])
    mw = np.array([w for _, w in persona.interests], dtype=np.float64)
    mw /= mw.sum()
    chosen: list[int] = []
    pool = np.flatnonzero(allowed)
    for _ in range(20 * K_INTERESTS):
        if len(chosen) == K_INTERESTS:
            break
        if rng.random() < RANDOM_INTEREST:
            leaf = int(pool[rng.integers(len(pool))])
        else:
            mid = mids[np.searchsorted(np.cumsum(mw), rng.random(), side="right").clip(0, len(mids) - 1)]
            cands = np.flatnonzero((kb.leaf_mid == mid) & allowed)
            if len(cands) == 0:
                continue
            leaf = int(cands[rng.integers(len(cands))])
        if leaf not in chosen:
            chosen.append(leaf)
    while len(chosen) < K_INTERESTS:  # tiny KBs: fill with any allowed leaf
        chosen.append(int(pool[len(chosen) % len(pool)]))
    return np.array(chosen), rng.dirichlet(np.ones(K_INTERESTS))
