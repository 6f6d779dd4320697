"""Branch prompts: contents per branch, the budget cut oldest-events-first, the STP cache key."""

from __future__ import annotations

from oxygen.instructions.prompts import (
    SCHEMA_INTENT,
    SCHEMA_REWRITE,
    SCHEMA_STP,
    Budget,
    intent_prompt,
    rewrite_prompt,
    stp_key,
    stp_prompt,
)
from oxygen.instructions.state import state_at
from tests.instructions.helpers import DAY, HOUR, T, state


def _many(n: int):
    items = {i: (f"title-{i:03d} thing", ["Top", "Mid", f"Leaf {i}"]) for i in range(n)}
    events = [(T - (n - i) * HOUR, "click", i, "homepage") for i in range(n)]
    return state_at("u1", T, {}, {}, events, [], items)


def test_each_prompt_states_its_schema_and_stp_has_no_behaviour():
    st = state([(T - HOUR, "cart", 1, "search")], queries=[(T - 2 * HOUR, "phone cas")])
    stp, rw, (intent, _) = stp_prompt(st), rewrite_prompt(st), intent_prompt(st)
    assert stp.endswith(SCHEMA_STP) and rw.endswith(SCHEMA_REWRITE) and intent.endswith(SCHEMA_INTENT)
    assert "Voltra" not in stp and "phone cas" not in stp and "25-34" not in stp
    for line in ("season: winter", "city: Shanghai", "climate: cold-humid", "persona: young_parents",
                 "holidays: christmas, winter_solstice"):
        assert line in stp
    assert "query: phone cas" in rw and "Voltra" not in rw
    assert "Voltra smartphone" in intent and "persona: young_parents" in intent and "phone cas" in intent


def test_rewrite_prompt_live_query_first_then_history():
    st = state([], queries=[(T - 3 * HOUR, "gel pen"), (T - HOUR, "phone cas")])
    assert "query: phone cas" in rewrite_prompt(st) and "gel pen" in rewrite_prompt(st)
    st.query = "gaming mou"
    assert "query: gaming mou" in rewrite_prompt(st)
    assert rewrite_prompt(state([])) is None


def test_budget_cuts_oldest_events_first_and_says_so():
    st = _many(60)
    full, cut = intent_prompt(st, Budget(max_chars=100_000))
    assert not cut and "title-000" in full
    short, cut = intent_prompt(st, Budget(max_chars=len(full) // 2))
    assert cut and len(short) <= len(full) // 2
    assert "title-059" in short and "title-000" not in short
    kept = [i for i in range(60) if f"title-{i:03d}" in short]
    assert kept == list(range(kept[0], 60)) and kept[0] > 10  # a suffix: newest kept, oldest dropped
    assert f"earlier behaviour omitted: {kept[0]} events" in short
    # the longest suffix that fits: one more event would not
    assert len(intent_prompt(st, Budget(max_chars=len(short)))[0]) == len(short)


def test_budget_by_token_counter():
    st = _many(40)
    words = lambda text: len(text.split())  # noqa: E731 - a toy tokenizer
    prompt, cut = intent_prompt(st, Budget(count_tokens=words, max_tokens=200))
    assert cut and words(prompt) <= 200 and "title-039" in prompt


def test_stp_key_shared_by_same_week_place_persona_only():
    a = state([(T - HOUR, "cart", 1, "search")], user="a")
    b = state([(T - 3 * DAY, "click", 4, "homepage")], user="b", t=T - 3600)
    assert stp_key(a) == stp_key(b) and stp_prompt(a) == stp_prompt(b)
    assert stp_key(state([], city="Harbin")) != stp_key(a)
    assert stp_key(state([], persona="student")) != stp_key(a)
    assert stp_key(a)[1] == "Shanghai|cold-humid"
