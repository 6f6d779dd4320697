"""Branch parsers: valid, prose-wrapped, fenced, garbage and schema-violating outputs."""

from __future__ import annotations

from collections import Counter

import pytest

from oxygen.instructions.branches import IntentOut, RewriteOut, StpOut, parse

VALID = {
    "stp": '{"needs": [{"need": "baby pajamas", "reason": "winter in Shanghai"}]}',
    "rewrite": '{"query": "gaming mouse"}',
    "intent": '{"intents": [{"instruction": "phone case", "reason": "bought a phone", "kind": "complement"}]}',
}


@pytest.mark.parametrize("branch,cls", [("stp", StpOut), ("rewrite", RewriteOut), ("intent", IntentOut)])
def test_valid_plain_prose_and_fenced(branch, cls):
    for text in (VALID[branch], f"Sure, here it is: {VALID[branch]} Hope this helps!",
                 f"Answer:\n```json\n{VALID[branch]}\n```\n", f'{{"note": 1}} then {VALID[branch]}'):
        out = parse(branch, text)
        assert isinstance(out, cls), text
    assert parse("rewrite", VALID["rewrite"]).query == "gaming mouse"
    assert parse("stp", VALID["stp"]).needs[0].need == "baby pajamas"


@pytest.mark.parametrize("branch,text", [
    ("stp", ""), ("stp", "no json here"), ("stp", '{"needs": [{"need": "x"'), ("stp", "[1, 2]"),
    ("stp", '{"needs": [{"need": "x", "reason": "y", "extra": 1}]}'),
    ("stp", '{"needs": [{"need": "", "reason": "y"}]}'), ("stp", '{"needs": "umbrella"}'),
    ("rewrite", '{"query": ""}'), ("rewrite", '{"query": "a", "why": "b"}'), ("rewrite", '{"q": "a"}'),
    ("rewrite", '{"query": 3}'),
    ("intent", '{"intents": [{"instruction": "x", "reason": "y", "kind": "telepathy"}]}'),
    ("intent", '{"intents": [{"instruction": "x", "kind": "complement"}]}'),
    ("intent", VALID["stp"]),
])
def test_invalid_is_none_and_counted(branch, text):
    counts = Counter()
    assert parse(branch, text, counts) is None
    assert counts == Counter({(branch, "unusable"): 1})


def test_never_raises_on_odd_input_and_counts_ok():
    counts = Counter()
    for junk in (None, 12, b'{"query": "a"}', "{" * 5000, "}{" * 100, '{"query": ["a"]}'):
        assert parse("rewrite", junk, counts) is None
    assert parse("rewrite", VALID["rewrite"], counts) is not None
    assert counts == Counter({("rewrite", "unusable"): 6, ("rewrite", "ok"): 1})
    with pytest.raises(KeyError):
        parse("nope", "{}")
