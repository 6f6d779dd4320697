"""The knowledge teacher: rules at full and partial coverage, natural phrases, query rewrite, intents."""

from __future__ import annotations

import json

import numpy as np
import pytest

from oxygen.instructions.backends.base import Backend
from oxygen.instructions.backends.knowledge import KnowledgeBackend
from oxygen.instructions.branches import parse
from oxygen.instructions.prompts import intent_prompt, rewrite_prompt, stp_prompt
from oxygen.instructions.state import default_kb
from oxygen.world.text import add_noise, clean_query
from tests.instructions.helpers import HOUR, T, state

KB = default_kb()
WORD_LEAF = {w: leaf for leaf, ws in enumerate(KB.leaf_words) for w in ws}


def _need_leaves(backend: KnowledgeBackend, st) -> list[int]:
    out = parse("stp", backend.generate([stp_prompt(st)])[0])
    assert out is not None
    return [WORD_LEAF[n.need] for n in out.needs]


def _expected(city: str, persona: str, situation: set[str]) -> set[int]:
    """Reference: every need leaf of every rule matching (situation, city, persona)."""
    c = next(c for c in KB.cities if c.name == city)
    p = [x.name for x in KB.personas].index(persona)
    return {leaf for r in KB.rules if r.when in situation and (r.climates is None or c.climate in r.climates)
            and (r.personas is None or p in r.personas) and (r.north is None or r.north == c.north)
            for leaf, _ in r.needs}


def test_is_a_backend_with_versioned_name():
    b = KnowledgeBackend(coverage=0.8)
    assert isinstance(b, Backend) and b.name == "knowledge" and b.version == f"kb{KB.version}-cov0.8"
    with pytest.raises(ValueError):
        KnowledgeBackend(coverage=0.0)


def test_full_coverage_finds_the_winter_cold_humid_young_parents_needs():
    st = state([], city="Shanghai", persona="young_parents", t=T + 31 * 24 * HOUR)  # 2026-01-20: plain winter
    assert (st.season, st.holidays, st.climate) == ("winter", (), "cold-humid")
    found = _need_leaves(KnowledgeBackend(coverage=1.0), st)
    assert found[0] == KB.leaves.index("Baby Sleepwear")  # the strongest need first
    assert set(found) == _expected("Shanghai", "young_parents", {"winter"}) == {KB.leaves.index(n) for n in (
        "Baby Sleepwear", "Dehumidifiers", "Clothes Dryers", "Electric Blankets", "Space Heaters", "Thermal Underwear")}
    christmas = _need_leaves(KnowledgeBackend(coverage=1.0), state([], city="Shanghai"))  # 2025-12-20
    assert KB.leaves.index("Christmas Decorations") in christmas
    assert KB.leaves.index("Frozen Dumplings") not in christmas  # solstice dumplings are a northern rule
    assert KB.leaves.index("Frozen Dumplings") in _need_leaves(KnowledgeBackend(coverage=1.0), state([], city="Harbin"))


def test_partial_coverage_misses_some_rules_deterministically():
    full, part = KnowledgeBackend(coverage=1.0), KnowledgeBackend(coverage=0.5, seed=0)
    assert 0 < len(part.rules) < len(full.rules) == len(KB.rules)
    assert [i for i, _ in KnowledgeBackend(coverage=0.5, seed=0).rules] == [i for i, _ in part.rules]
    assert [i for i, _ in KnowledgeBackend(coverage=0.5, seed=1).rules] != [i for i, _ in part.rules]
    missed = 0
    for city in ("Shanghai", "Harbin", "Guangzhou", "Beijing"):
        for persona in ("young_parents", "car_owner", "student", "pet_owner"):
            st = state([], city=city, persona=persona)
            a, b = set(_need_leaves(full, st)), set(_need_leaves(part, st))
            missed += len(a - b)
    assert missed > 0


def test_needs_are_natural_phrases_not_ids():
    b = KnowledgeBackend(coverage=1.0)
    needs = []
    for city in ("Shanghai", "Harbin", "Guangzhou"):
        out = parse("stp", b.generate([stp_prompt(state([], city=city))])[0])
        needs += [n.need for n in out.needs]
        assert all(city in n.reason for n in out.needs)
    assert needs and not all(n in KB.leaves for n in needs)
    assert not any(ch.isdigit() for n in needs for ch in n)


def _rewrite(b: KnowledgeBackend, q: str) -> str:
    return parse("rewrite", b.generate([rewrite_prompt(state([], queries=[(T - HOUR, q)]))])[0]).query


def test_rewrite_fixes_truncation_and_typos_and_keeps_clean_queries():
    b = KnowledgeBackend()
    assert _rewrite(b, "gaming mou") == "gaming mouse"
    assert _rewrite(b, "phnoe case") == "phone case"
    rng = np.random.default_rng(3)
    fixed = noisy = 0
    for _ in range(300):
        clean = clean_query(KB, int(rng.integers(len(KB.leaves))), rng)
        assert _rewrite(b, clean) == clean  # never a false correction of a clean query
        words = clean.split()
        if len(words[-1]) >= 6:  # the world's truncation noise: an unfinished last word
            assert _rewrite(b, " ".join(words[:-1] + [words[-1][:4]])) in _prefix_phrases(b, words, 4)
        q = add_noise(clean, rng)
        if q != clean and len(q.split()) == len(words):
            noisy += 1
            fixed += _rewrite(b, q) == clean
    assert fixed / noisy > 0.8


def _prefix_phrases(b: KnowledgeBackend, words: list[str], k: int) -> set[str]:
    head = " ".join(words[:-1] + [words[-1][:k]])
    return {p for p in b.rewriter.phrases if p.startswith(head) and len(p.split()) == len(words)}


def test_intent_complements_of_the_cart_item_and_interests():
    st = state([(T - 30 * 24 * HOUR, "purchase", 4, "homepage"), (T - 20 * 24 * HOUR, "purchase", 4, "search"),
                (T - HOUR, "cart", 1, "search")])
    out = parse("intent", KnowledgeBackend(coverage=1.0).generate([intent_prompt(st)[0]])[0])
    kinds = [i.kind for i in out.intents]
    assert kinds[0] == "complement" and "repurchase" in kinds and "interest_fusion" in kinds
    comp = out.intents[0].instruction
    assert any(w in comp for w in KB.leaf_words[KB.leaves.index("Phone Cases")])
    assert any(w in comp for w in KB.leaf_words[KB.leaves.index("Smartphones")])


def test_unknown_prompt_gives_unparseable_text_and_is_deterministic():
    b = KnowledgeBackend(seed=4)
    assert all(parse(br, b.generate(["hello there"])[0]) is None for br in ("stp", "rewrite", "intent"))
    st = state([(T - HOUR, "cart", 1, "search")])
    prompts = [stp_prompt(st), intent_prompt(st)[0]]
    assert b.generate(prompts) == KnowledgeBackend(seed=4).generate(prompts)
    assert all(json.loads(t) for t in b.generate(prompts))
