"""The knowledge base meets the counts and examples of docs/WORLD.md, and bad files fail clearly."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from oxygen.world.knowledge import KB_DIR, Knowledge, KnowledgeError


@pytest.fixture(scope="module")
def kb() -> Knowledge:
    return Knowledge.load()


def test_tree_counts(kb: Knowledge):
    assert len(kb.tops) >= 10
    assert len(kb.leaves) >= 200
    assert len(set(kb.leaves)) == len(kb.leaves)
    for leaf in range(len(kb.leaves)):
        assert kb.leaf_words[leaf], kb.leaves[leaf]
        assert kb.leaf_price[leaf] > 0
        assert kb.mid_specs[kb.leaf_mid[leaf]] and kb.top_brands[kb.leaf_top[leaf]]
    # three levels: every mid belongs to exactly one top
    for mid in range(len(kb.mids)):
        assert len({int(kb.leaf_top[l]) for l in range(len(kb.leaves)) if kb.leaf_mid[l] == mid}) == 1


def _comp(kb: Knowledge, a: str, b: str) -> float:
    return float(kb.complement[kb.leaves.index(a), kb.leaves.index(b)])


@pytest.mark.parametrize("a,b", [("Smartphones", "Phone Cases"), ("Smartphones", "Phone Chargers"),
                                 ("Smartphones", "Wireless Earbuds"), ("Inkjet Printers", "Ink Cartridges"),
                                 ("Mountain Bikes", "Cycling Gloves"), ("Mountain Bikes", "Bike Helmets"),
                                 ("Mountain Bikes", "Bike Lights"), ("Infant Formula", "Baby Bottles")])
def test_complement_examples(kb: Knowledge, a: str, b: str):
    assert _comp(kb, a, b) > 0
    assert kb.complement.diagonal().max() == 0


def test_complements_cover_many_leaves(kb: Knowledge):
    assert (kb.complement.sum(axis=1) > 0).sum() >= 100


def _needs_on(kb: Knowledge, when: str, climate: str, persona: str, north: bool) -> set[str]:
    pid = [p.name for p in kb.personas].index(persona)
    out = set()
    for r in kb.rules:
        if r.when == when and (r.climates is None or climate in r.climates) and \
                (r.personas is None or pid in r.personas) and (r.north is None or r.north == north):
            out |= {kb.leaves[l] for l, _ in r.needs}
    return out


def test_context_examples(kb: Knowledge):
    assert "Frozen Dumplings" in _needs_on(kb, "winter_solstice", "cold", "retiree", True)
    assert "Baby Sleepwear" in _needs_on(kb, "winter", "cold-humid", "young_parents", False)
    assert "Electric Fans" in _needs_on(kb, "heat_wave", "hot-humid", "student", False)
    assert "School Backpacks" in _needs_on(kb, "back_to_school", "temperate", "school_family", True)


def test_places_calendar_personas(kb: Knowledge):
    assert len(kb.cities) >= 10 and len({c.climate for c in kb.cities}) >= 4
    assert sorted(kb.seasons) == list(range(1, 13)) and len(set(kb.seasons.values())) == 4
    assert len(kb.holidays) >= 8 and len(kb.weather) >= 3
    assert len(kb.personas) >= 8
    for p in kb.personas:
        assert p.age_bands and p.family_stage and p.hobbies and abs(sum(p.spending) - 1) < 1e-9


def test_persona_context_leaves_exist(kb: Knowledge):
    assert all(len(kb.context_leaves(p)) > 0 for p in range(len(kb.personas)))


def test_bad_reference_is_a_clear_error(tmp_path: Path):
    kb_dir = tmp_path / "kb"
    shutil.copytree(KB_DIR, kb_dir)
    p = kb_dir / "complements.yaml"
    p.write_text(p.read_text().replace("Phone Cases: 1.0", "Phone Casez: 1.0", 1))
    with pytest.raises(KnowledgeError, match="complements.yaml.*Phone Casez.*unknown leaf"):
        Knowledge.load(kb_dir)


def test_bad_strength_is_a_clear_error(tmp_path: Path):
    kb_dir = tmp_path / "kb"
    shutil.copytree(KB_DIR, kb_dir)
    p = kb_dir / "context.yaml"
    p.write_text(p.read_text().replace("Frozen Dumplings: 1.0", "Frozen Dumplings: 3", 1))
    with pytest.raises(KnowledgeError, match=r"context.yaml.*strength must be a number in \(0, 1\]"):
        Knowledge.load(kb_dir)


def test_version_tracks_content(tmp_path: Path):
    kb_dir = tmp_path / "kb"
    shutil.copytree(KB_DIR, kb_dir)
    before = Knowledge.load(kb_dir).version
    (kb_dir / "places.yaml").write_text((kb_dir / "places.yaml").read_text() + "\n# edited\n")
    assert Knowledge.load(kb_dir).version != before
