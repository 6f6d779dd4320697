"""Which stated needs are still open: a need phrase mapped to a catalogue category, and a user's
history checked for it.

A generator states contextual needs as natural phrases ("protective cover", "warm baby
sleepwear"). Guidance at decode time helps only where such a need is still *open*: the user has not
bought or viewed anything of its category yet (docs/benchmarks.d/instructions.md, E2-E3). To judge
that for any dataset and any backend, the phrase is read with the catalogue's own vocabulary, not
with the world's hidden tables: `NeedVocabulary` indexes every n-gram (up to `MAX_NGRAM` words) of
the item titles and descriptions by the item's leaf category (the last element of its category
path), skipping n-grams right after "for" ("case for smartphone" is not a smartphone). A phrase
that is a category's own name (plural or not: "laptop" -> "Laptops") names that category; any
other names the category whose items use it most, and a longer phrase the catalogue does not know
falls back to its longest known sub-phrase ("warm baby sleepwear" -> "baby sleepwear"). On the shop
world this reads 98% of the world's product nouns as the world does (tests/instructions/test_needs.py).

    vocab = NeedVocabulary.from_items([("Voltra silicone case", ["Phones", "Phone Cases"]), ...])
    vocab.category("protective cover")          # "Phone Cases" (or None: no item uses the phrase)
    open_needs(state, ["protective cover"], vocab)   # 1: no Phone Cases event in the state's history
    open_categories(state, ["protective cover"], vocab)   # ["Phone Cases"]: what need slots decode in
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

from oxygen.instructions.state import UserState

MAX_NGRAM = 4
_WORD = re.compile(r"[a-z0-9]+")

ItemText = tuple[str | None, Sequence[str]]  # (title and description, category path top level first)


def words(text: str) -> list[str]:
    """Lower-cased alphanumeric words of `text`."""
    return _WORD.findall(text.lower())


def name_key(text: str) -> tuple[str, ...]:
    """`text`'s words with a plural "s" dropped: "Laptops" and "laptop" give the same key."""
    return tuple(w[:-1] if len(w) > 3 and w.endswith("s") else w for w in words(text))


def _ngrams(tokens: list[str]) -> Iterable[tuple[str, ...]]:
    """Every n-gram (1..MAX_NGRAM words) of `tokens` not directly preceded by "for"."""
    for i in range(len(tokens)):
        if i > 0 and tokens[i - 1] == "for":
            continue
        for n in range(1, min(MAX_NGRAM, len(tokens) - i) + 1):
            yield tuple(tokens[i:i + n])


class NeedVocabulary:
    """Need phrase -> leaf category, learnt from the catalogue's item texts (module docstring)."""

    def __init__(self, counts: dict[tuple[str, ...], Counter], names: dict[tuple[str, ...], str]) -> None:
        """`counts`: n-gram -> items per leaf category using it; `names`: name_key -> category."""
        self.counts, self.names = counts, names
        self._known: dict[str, str | None] = {}  # phrases already read (a refresh repeats them)

    @classmethod
    def from_items(cls, items: Iterable[ItemText]) -> NeedVocabulary:
        """Index the texts of `items`, each (text, category path); items without a path are skipped."""
        counts: dict[tuple[str, ...], Counter] = defaultdict(Counter)
        names: dict[tuple[str, ...], str] = {}
        for text, path in items:
            if not path or not text:
                continue
            names.setdefault(name_key(path[-1]), path[-1])
            for gram in set(_ngrams(words(text))):
                counts[gram][path[-1]] += 1
        return cls(dict(counts), names)

    def category(self, phrase: str) -> str | None:
        """The leaf category `phrase` names (module docstring); None when no item uses any of its words."""
        if phrase not in self._known:
            self._known[phrase] = self._category(phrase)
        return self._known[phrase]

    def _category(self, phrase: str) -> str | None:
        """A category of that name, else the one whose items use `phrase` (or its longest known
        sub-phrase) most; ties go to the name that sorts first."""
        if name_key(phrase) in self.names:
            return self.names[name_key(phrase)]
        tokens = words(phrase)
        for n in range(min(len(tokens), MAX_NGRAM), 0, -1):
            hits = Counter()
            for i in range(len(tokens) - n + 1):
                hits.update(self.counts.get(tuple(tokens[i:i + n]), {}))
            if hits:
                return min(hits, key=lambda c: (-hits[c], c))
        return None


def open_categories(state: UserState, needs: Sequence[str], vocab: NeedVocabulary) -> list[str] | None:
    """The categories `needs` (phrases, strongest first) name that none of the state's events belongs
    to, in the needs' order without repeats; None when the vocabulary recognises none of them
    (nothing to judge)."""
    cats = [c for c in dict.fromkeys(vocab.category(n) for n in needs) if c is not None]
    if not cats:
        return None
    seen = {e.category_path[-1] for e in state.events if e.category_path}
    return [c for c in cats if c not in seen]


def open_needs(state: UserState, needs: Sequence[str], vocab: NeedVocabulary) -> int | None:
    """How many of `needs` (phrases) name a category none of the state's events belongs to; None
    when the vocabulary recognises none of them (nothing to judge)."""
    cats = open_categories(state, needs, vocab)
    return None if cats is None else len(cats)
