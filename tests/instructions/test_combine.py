"""The combiner: short text from the usable branches, reasons, contributing and unusable branches."""

from __future__ import annotations

from oxygen.instructions.branches import parse
from oxygen.instructions.combine import combine
from tests.instructions.helpers import state


def test_combines_all_branches_into_text_and_reasons():
    st = state([])
    stp = parse("stp", '{"needs": [{"need": "baby pajamas", "reason": "winter in Shanghai, for young parents"},'
                       '{"need": "dehumidifier", "reason": "damp winter"}]}')
    intent = parse("intent", '{"intents": [{"instruction": "complements for the new phone: case, charger",'
                             '"reason": "bought a phone", "kind": "complement"}]}')
    rw = parse("rewrite", '{"query": "gaming mouse"}')
    rec = combine(st, stp, rw, intent)
    assert rec.text == ("Christmas in Shanghai for young parents: baby pajamas, dehumidifier; "
                        "complements for the new phone: case, charger; searching for gaming mouse")
    assert rec.branches == ["stp", "intent", "rewrite"] and rec.query == "gaming mouse"
    assert "baby pajamas: winter in Shanghai, for young parents" in rec.reasons
    assert "complement: bought a phone" in rec.reasons and len(rec.reasons) == 4
    assert rec.to_dict()["user_id"] == "u1"


def test_unusable_branches_are_dropped_and_named():
    st = state([])
    intent = parse("intent", '{"intents": [{"instruction": "more gel pens", "reason": "r", "kind": "other"}]}')
    rec = combine(st, None, None, intent, unusable=["stp"], truncated=True)
    assert rec.text == "more gel pens" and rec.branches == ["intent"] and rec.unusable == ["stp"] and rec.truncated
    assert combine(st, parse("stp", '{"needs": []}'), None, None) is None


def test_with_a_vocabulary_the_record_counts_its_open_needs():
    """STP needs whose category the history lacks are open; no vocabulary or no STP: not judged."""
    from oxygen.instructions.needs import NeedVocabulary
    from tests.instructions.helpers import ITEMS, T

    vocab = NeedVocabulary.from_items(ITEMS.values())
    stp = parse("stp", '{"needs": [{"need": "baby pajamas", "reason": "winter"}, {"need": "phone case", "reason": "r"}]}')
    intent = parse("intent", '{"intents": [{"instruction": "more gel pens", "reason": "r", "kind": "other"}]}')
    assert combine(state([]), stp, None, intent, vocab=vocab).open_needs == 2
    both = combine(state([]), stp, None, intent, vocab=vocab).open_categories
    assert both == [vocab.category("baby pajamas"), vocab.category("phone case")]  # strongest first
    assert combine(state([(T - 60, "purchase", 3, "homepage")]), stp, None, None, vocab=vocab).open_needs == 1
    assert combine(state([]), stp, None, None).open_needs is None
    assert combine(state([]), stp, None, None).open_categories is None
    assert combine(state([]), None, None, intent, vocab=vocab).open_needs is None
