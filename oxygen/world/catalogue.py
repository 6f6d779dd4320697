"""The catalogue: N items as numpy columns, generated vectorised so 1M+ items take seconds.

Each item has a leaf category, brand, price (leaf price x lognormal spread), heavy-tailed popularity
(lognormal, sigma 1.3), a price tier within its leaf (0 cheap, 1 mid, 2 premium; compared with a
user's spending power) and tags from the contexts that need its leaf. Item ids are 0..N-1 in random
leaf order. Text (title, description) is generated lazily in fixed chunks by `records()`, each chunk
from its own seeded stream, so nothing large is held in memory and output is deterministic.

Sampling "an item of leaf l (and tier t)" uses one global cumulative-weight array over items sorted
by (leaf, tier): any leaf or (leaf, tier) group is a contiguous range, drawn with one searchsorted.

    cat = Catalogue.generate(kb, n_items=20000, seed=0)
    item = cat.sample(leaf=3, tier=1, u=0.42)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from oxygen.world.knowledge import Knowledge
from oxygen.world.text import item_texts

STREAM_CATALOGUE, STREAM_TEXT = 1, 2
TEXT_CHUNK = 65536
POP_SIGMA = 1.3  # spread of log popularity
POP_ALPHA = 0.9  # within-leaf choice weight = popularity ** POP_ALPHA
TIER_PREFER = 0.6  # chance a user picks within their own price tier


def stream(seed: int, *keys: int) -> np.random.Generator:
    """An independent deterministic random stream for (seed, keys)."""
    return np.random.default_rng(np.random.SeedSequence([seed, *keys]))


@dataclass
class Catalogue:
    """Item columns (length N) and the sorted sampling index."""

    kb: Knowledge
    seed: int
    leaf: np.ndarray  # Int[N]
    brand: np.ndarray  # Int[N], index into `brands`
    brands: list[str]
    price: np.ndarray  # Float[N], USD, 2 decimals
    popularity: np.ndarray  # Float[N] > 0, mean about 1
    tier: np.ndarray  # Int[N] in {0, 1, 2}
    quality: np.ndarray  # Float[N] in [0, 1]: popularity percentile within the leaf
    order: np.ndarray  # Int[N]: item ids sorted by (leaf, tier)
    cum: np.ndarray  # Float[N]: cumulative choice weight along `order`
    group_start: np.ndarray  # Int[3L + 1]: start of each (leaf, tier) group in `order`

    @property
    def n(self) -> int:
        """Number of items."""
        return len(self.leaf)

    @classmethod
    def generate(cls, kb: Knowledge, n_items: int, seed: int) -> Catalogue:
        """Draw `n_items` items; every leaf gets at least one item when n_items >= #leaves."""
        if n_items < 1:
            raise ValueError(f"n_items={n_items}; a catalogue needs at least one item")
        rng = stream(seed, STREAM_CATALOGUE)
        n_leaves = len(kb.leaves)
        share = rng.lognormal(0.0, 0.5, n_leaves)
        leaf = rng.choice(n_leaves, size=n_items, p=share / share.sum())
        if n_items >= n_leaves:  # guarantee coverage: the first L slots hold each leaf once
            leaf[:n_leaves] = np.arange(n_leaves)
            leaf = leaf[rng.permutation(n_items)]
        top = kb.leaf_top[leaf]
        n_brand = np.array([len(b) for b in kb.top_brands])
        brand_offset = np.concatenate([[0], np.cumsum(n_brand)[:-1]])
        brands = [b for bs in kb.top_brands for b in bs]
        brand = brand_offset[top] + rng.integers(0, 1 << 30, n_items) % n_brand[top]
        spread = rng.lognormal(0.0, 0.35, n_items)
        price = np.maximum(np.round(kb.leaf_price[leaf] * spread) - 0.01, 0.99)
        popularity = rng.lognormal(-POP_SIGMA ** 2 / 2, POP_SIGMA, n_items)
        tier = _tiers(leaf, spread, n_leaves)
        cat = cls(kb, seed, leaf, brand, brands, np.round(price, 2), popularity, tier,
                  np.zeros(n_items), np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64))
        cat._index()
        return cat

    def _index(self) -> None:
        """Build quality percentiles and the (leaf, tier) sampling index."""
        n_leaves = len(self.kb.leaves)
        by_leaf = np.lexsort((self.popularity, self.leaf))  # leaf-major, popularity ascending
        counts = np.bincount(self.leaf, minlength=n_leaves)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rank = np.arange(self.n) - starts[self.leaf[by_leaf]]
        self.quality[by_leaf] = (rank + 0.5) / counts[self.leaf[by_leaf]]
        group = self.leaf * 3 + self.tier
        self.order = np.argsort(group, kind="stable")
        self.cum = np.cumsum(self.popularity[self.order] ** POP_ALPHA)
        self.group_start = np.searchsorted(group[self.order], np.arange(3 * n_leaves + 1))

    def sample(self, leaf: int, tier: int | None, u: float) -> int:
        """The item of `leaf` (and price `tier`, when it has one) at uniform draw `u` in [0, 1)."""
        lo, hi = self.group_start[3 * leaf], self.group_start[3 * leaf + 3]
        if tier is not None and self.group_start[3 * leaf + tier + 1] > self.group_start[3 * leaf + tier]:
            lo, hi = self.group_start[3 * leaf + tier], self.group_start[3 * leaf + tier + 1]
        if hi <= lo:
            raise ValueError(f"leaf {leaf} ({self.kb.leaves[leaf]}) has no items; generate more items")
        base = self.cum[lo - 1] if lo > 0 else 0.0
        k = int(np.searchsorted(self.cum, base + u * (self.cum[hi - 1] - base), side="right"))
        return int(self.order[min(max(k, lo), hi - 1)])

    def leaf_weight(self) -> np.ndarray:
        """Float[L]: total choice weight per leaf (what a purely popularity-driven user follows)."""
        per_item = self.popularity ** POP_ALPHA
        return np.bincount(self.leaf, weights=per_item, minlength=len(self.kb.leaves))

    def leaf_tags(self) -> list[tuple[str, ...]]:
        """Per leaf, the sorted tags of the contexts that need it (season/holiday/weather, climate,
        persona); `("season:all-season",)` for leaves no context needs."""
        if not hasattr(self, "_leaf_tags"):
            kb = self.kb
            out: list[set[str]] = [set() for _ in kb.leaves]
            kind = {**{w: "weather" for w in kb.weather}, **{h: "holiday" for h in kb.holidays}}
            for r in kb.rules:
                for leaf, _ in r.needs:
                    out[leaf].add(f"{kind.get(r.when, 'season')}:{r.when}")
                    out[leaf].update(f"climate:{c}" for c in r.climates or ())
                    out[leaf].update(f"persona:{kb.personas[p].name}" for p in r.personas or ())
            self._leaf_tags = [tuple(sorted(t)) or ("season:all-season",) for t in out]
        return self._leaf_tags

    def tags(self, item: int, u: float) -> list[str]:
        """Attribute tags of an item: its leaf's tags, one dropped (chosen by u in [0, 1)) when
        there are more than two, as sellers tag incompletely."""
        tags = list(self.leaf_tags()[int(self.leaf[item])])
        if len(tags) > 2:
            del tags[int(u * len(tags))]
        return tags

    def records(self) -> Iterator[dict]:
        """Every item as an `oxygen.data.schema.Item`-shaped dict, in id order."""
        kb = self.kb
        for c0 in range(0, self.n, TEXT_CHUNK):
            ids = np.arange(c0, min(c0 + TEXT_CHUNK, self.n))
            rng = stream(self.seed, STREAM_TEXT, c0 // TEXT_CHUNK)
            titles, descs = item_texts(kb, self.leaf[ids], [self.brands[b] for b in self.brand[ids]], rng)
            u = rng.random(len(ids))
            for j, i in enumerate(ids):
                lf = int(self.leaf[i])
                yield {"item_id": int(i), "title": titles[j], "description": descs[j],
                       "brand": self.brands[self.brand[i]],
                       "categories": [kb.tops[kb.leaf_top[lf]], kb.mids[kb.leaf_mid[lf]], kb.leaves[lf]],
                       "price": float(self.price[i]), "popularity": round(float(self.popularity[i]), 4),
                       "tags": self.tags(int(i), float(u[j]))}


def _tiers(leaf: np.ndarray, spread: np.ndarray, n_leaves: int) -> np.ndarray:
    """Int[N]: price tercile of each item within its leaf (0 cheap .. 2 premium)."""
    order = np.lexsort((spread, leaf))
    counts = np.bincount(leaf, minlength=n_leaves)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(len(leaf), dtype=np.int64)
    rank[order] = np.arange(len(leaf)) - starts[leaf[order]]
    return np.minimum(3 * rank // np.maximum(counts[leaf], 1), 2)
