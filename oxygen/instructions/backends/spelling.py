"""The knowledge teacher's query normaliser: what a general LLM does with "gaming mou" or "phnoe case".

It knows the shop vocabulary (every leaf's product nouns, the top categories' adjectives, the mid
categories' specs; `oxygen.world.text.clean_query` builds queries from them) and repairs the
world's kinds of typing noise word by word: an unfinished last word is completed, a word one edit
away (swap, drop, double, replace a letter) from a vocabulary word is corrected. A candidate that
forms a known phrase wins; a query that already is a known phrase, or whose words are all known and
no repair makes a phrase, stays exactly as typed.

    QueryRewriter(kb).rewrite("gaming mou")    # "gaming mouse"
    QueryRewriter(kb).rewrite("phone case")    # "phone case" (clean: untouched)
"""

from __future__ import annotations

import bisect
import itertools

from oxygen.world.knowledge import Knowledge

ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789-"
MAX_OPTIONS = 6  # candidate spellings kept per word
MAX_COMBOS = 4000


def vocabulary_phrases(kb: Knowledge) -> set[str]:
    """Every clean query of the world: noun, adjective + noun, noun + spec (lower-cased)."""
    out: set[str] = set()
    for leaf, nouns in enumerate(kb.leaf_words):
        adjs, specs = kb.top_adjectives[kb.leaf_top[leaf]], kb.mid_specs[kb.leaf_mid[leaf]]
        for noun in nouns:
            out.add(noun.lower())
            out.update(f"{a} {noun}".lower() for a in adjs)
            out.update(f"{noun} {s}".lower() for s in specs)
    return out


def edits1(word: str) -> set[str]:
    """Strings one edit from `word`: delete, swap neighbours, replace or insert a character."""
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    out = {a + b[1:] for a, b in splits if b}
    out |= {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
    out |= {a + c + b[1:] for a, b in splits if b for c in ALPHABET}
    out |= {a + c + b for a, b in splits for c in ALPHABET}
    out.discard(word)
    return out


class QueryRewriter:
    """Normalises noisy queries to the nearest vocabulary phrase."""

    def __init__(self, kb: Knowledge):
        """Index the world's phrases, words and word prefixes."""
        self.phrases = vocabulary_phrases(kb)
        self.sorted_phrases = sorted(self.phrases)
        self.words = sorted({w for p in self.phrases for w in p.split()})
        self.word_set = set(self.words)
        self.prefixes = {w[:i] for w in self.words for i in range(1, len(w) + 1)}

    def _options(self, word: str) -> list[tuple[float, str]]:
        """(cost, spelling) of a word before the last: itself if known, else its known one-edit neighbours."""
        if word in self.word_set:
            return [(0.0, word)]
        opts = [(1.0, w) for w in sorted(edits1(word) & self.word_set)]
        return opts[:MAX_OPTIONS] or [(0.0, word)]

    def _completions(self, head: str, part: str, n_words: int) -> list[tuple[float, int, str]]:
        """(cost, length, phrase) of the phrases of `n_words` words that are `head` + a word starting with `part`."""
        start = f"{head} {part}" if head else part
        out, i = [], bisect.bisect_left(self.sorted_phrases, start)
        while i < len(self.sorted_phrases) and self.sorted_phrases[i].startswith(start):
            phrase = self.sorted_phrases[i]
            if len(phrase.split()) == n_words:
                out.append((0.0 if phrase == start else 0.5, len(phrase), phrase))
            i += 1
        return out

    def _best_phrase(self, words: list[str]) -> tuple[float, int, str] | None:
        """The cheapest known phrase the typed words can be repaired into, or None."""
        last = words[-1]
        lasts = [(0.0, last)]
        if last not in self.word_set:  # an unfinished word may carry a typo too
            lasts += [(1.0, e) for e in sorted(edits1(last) & self.prefixes)]
        heads = itertools.islice(itertools.product(*[self._options(w) for w in words[:-1]]), MAX_COMBOS)
        best = None
        for head in heads:
            head_cost, head_text = sum(c for c, _ in head), " ".join(w for _, w in head)
            for cost, part in lasts:
                for c, n, phrase in self._completions(head_text, part, len(words)):
                    cand = (head_cost + cost + c, n, phrase)
                    best = cand if best is None or cand < best else best
        return best

    def rewrite(self, query: str) -> str:
        """The normalised query: unchanged if already a known phrase or beyond repair."""
        words = query.lower().split()
        if not words or " ".join(words) in self.phrases:
            return query
        all_known = all(w in self.word_set for w in words)
        best = self._best_phrase(words)
        if best is not None and (not all_known or best[0] <= 0.5):
            return best[2]
        if all_known:
            return query
        # no phrase: fix only the unknown words, each to its cheapest known spelling
        fixed = [w if w in self.word_set else self._options(w)[0][1] for w in words]
        return " ".join(fixed) if fixed != words else query
