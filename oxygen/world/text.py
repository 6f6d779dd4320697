"""Text of the shop world: item titles and descriptions, and noisy search queries.

Titles and descriptions mix a brand, one of the leaf's product nouns (synonyms), adjectives and
features of the top category, a spec variant of the mid category, an optional "for <product>"
compatibility phrase and marketing noise, so that text tells what an item is without spelling its
category id. Queries are what users type for an intent leaf: a product noun, sometimes with an
adjective or spec, then noise (truncated last word, a typo, a dropped word), lower-cased.

    titles, descs = item_texts(kb, leaf, brand_names, rng)   # leaf: Int[n]
    q = make_query(kb, leaf=12, rng=rng)
"""

from __future__ import annotations

import numpy as np

from oxygen.world.knowledge import Knowledge

NOISE: tuple[str, ...] = ("new", "2025 model", "hot sale", "best seller", "official store", "upgraded",
                          "limited edition", "free shipping", "value pack", "gift idea", "top rated",
                          "fast delivery")
CLOSERS: tuple[str, ...] = ("Satisfaction guaranteed.", "Ships within 24 hours.", "Thousands of happy buyers.",
                            "Backed by a 30-day return policy.", "A great gift for friends and family.", "")
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _pick(options: tuple[str, ...], r: int) -> str:
    """options[r mod len]: a deterministic pick from a random integer."""
    return options[r % len(options)]


def _features(features: tuple[str, ...], r1: int, r2: int) -> str:
    """Two different features joined: "Fast charging support; noise reduction"."""
    a = r1 % len(features)
    b = (a + 1 + r2 % max(len(features) - 1, 1)) % len(features)
    return f"{features[a].capitalize()}; {features[b]}"


def _for_phrases(kb: Knowledge) -> list[tuple[str, ...]]:
    """Per leaf, the nouns of leaves it complements ("case for smartphone")."""
    out: list[tuple[str, ...]] = []
    for leaf in range(len(kb.leaves)):
        sources = np.flatnonzero(kb.complement[:, leaf] >= 0.5)
        out.append(tuple(kb.leaf_words[s][0] for s in sources))
    return out


def item_texts(kb: Knowledge, leaf: np.ndarray, brands: list[str],
               rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """Titles and descriptions of items of leaves `leaf` (Int[n]) and brand names `brands` (n)."""
    n = len(leaf)
    r = rng.integers(0, 1 << 30, size=(n, 12))
    u = rng.random((n, 3))
    fors = _for_phrases(kb)
    titles, descs = [], []
    for i in range(n):
        lf, ri = int(leaf[i]), r[i]
        top, mid = kb.leaf_top[lf], kb.leaf_mid[lf]
        words, adjs, specs = kb.leaf_words[lf], kb.top_adjectives[top], kb.mid_specs[mid]
        noun, adj, spec = _pick(words, ri[0]), _pick(adjs, ri[1]), _pick(specs, ri[2])
        form = ri[3] % 3
        if form == 0:
            title = f"{brands[i]} {adj} {noun} {spec}"
        elif form == 1:
            title = f"{adj.capitalize()} {noun} {spec} - {brands[i]}"
        else:
            title = f"{brands[i]} {noun}, {adj}, {spec}"
        if fors[lf] and u[i, 0] < 0.35:
            title += f" for {_pick(fors[lf], ri[4])}"
        if u[i, 1] < 0.5:
            title = f"[{_pick(NOISE, ri[5])}] {title}" if u[i, 2] < 0.25 else f"{title} {_pick(NOISE, ri[5])}"
        titles.append(title)
        descs.append(f"{_pick(adjs, ri[6]).capitalize()} {_pick(words, ri[7])} by {brands[i]}. "
                     f"{_features(kb.top_features[top], ri[8], ri[9])}. "
                     f"Variant: {_pick(specs, ri[10])}. {_pick(CLOSERS, ri[11])}".strip())
    return titles, descs


def _typo(word: str, rng: np.random.Generator) -> str:
    """One random edit of `word`: swap two neighbours, drop, double or replace a letter."""
    if len(word) < 4:
        return word
    i = int(rng.integers(1, len(word) - 1))
    kind = int(rng.integers(4))
    if kind == 0:
        return word[:i - 1] + word[i] + word[i - 1] + word[i + 1:]
    if kind == 1:
        return word[:i] + word[i + 1:]
    if kind == 2:
        return word[:i] + word[i] + word[i:]
    return word[:i] + LETTERS[int(rng.integers(26))] + word[i + 1:]


def clean_query(kb: Knowledge, leaf: int, rng: np.random.Generator) -> str:
    """What a user means to type for `leaf`: a product noun, maybe with an adjective or spec."""
    noun = kb.leaf_words[leaf][int(rng.integers(len(kb.leaf_words[leaf])))]
    u = rng.random()
    if u < 0.2:
        adjs = kb.top_adjectives[kb.leaf_top[leaf]]
        return f"{adjs[int(rng.integers(len(adjs)))]} {noun}".lower()
    if u < 0.35:
        specs = kb.mid_specs[kb.leaf_mid[leaf]]
        return f"{noun} {specs[int(rng.integers(len(specs)))]}".lower()
    return noun.lower()


def add_noise(query: str, rng: np.random.Generator) -> str:
    """Realistic typing noise: a truncated last word, a typo, or a dropped word (or none)."""
    words = query.split()
    u = rng.random(3)
    if u[0] < 0.3 and len(words[-1]) >= 5:  # still typing: partial last word
        words[-1] = words[-1][: int(rng.integers(3, len(words[-1])))]
    if u[1] < 0.3:
        j = int(rng.integers(len(words)))
        words[j] = _typo(words[j], rng)
    if u[2] < 0.15 and len(words) > 1:
        del words[int(rng.integers(len(words)))]
    return " ".join(words)


def make_query(kb: Knowledge, leaf: int, rng: np.random.Generator) -> str:
    """A noisy search query for intent `leaf`."""
    return add_noise(clean_query(kb, leaf, rng), rng)


def tokens(text: str) -> list[str]:
    """Lower-cased alphanumeric tokens of `text` (punctuation splits words)."""
    out, cur = [], []
    for ch in text.lower():
        if ch.isalnum():
            cur.append(ch)
        elif cur:
            out.append("".join(cur))
            cur = []
    if cur:
        out.append("".join(cur))
    return out


class QueryMatcher:
    """Scores how well a query names each leaf: share of query tokens whose 3-letter prefix is a
    prefix of a token of the leaf's product nouns. Robust to truncation and most typos."""

    def __init__(self, kb: Knowledge):
        """Index the 3-letter prefixes of every leaf's nouns."""
        self.n = len(kb.leaves)
        self.prefix_leaves: dict[str, list[int]] = {}
        for leaf, words in enumerate(kb.leaf_words):
            for p in sorted({t[:3] for w in words for t in tokens(w) if len(t) >= 3}):
                self.prefix_leaves.setdefault(p, []).append(leaf)

    def scores(self, query: str) -> np.ndarray:
        """Float[L] in [0, 1]: per leaf, the share of the query's tokens that match it."""
        toks = [t for t in tokens(query) if len(t) >= 3]
        out = np.zeros(self.n, dtype=np.float64)
        for t in toks:
            for leaf in self.prefix_leaves.get(t[:3], ()):
                out[leaf] += 1.0
        return out / max(len(toks), 1)
