"""User state at t: only data strictly before t, long/short windows, Amazon-style rows, the adapter."""

from __future__ import annotations

from oxygen.data.adapters import user_state
from oxygen.data.schema import Item, Row
from oxygen.instructions.prompts import intent_prompt, rewrite_prompt, stp_prompt
from oxygen.instructions.state import calendar_tags, default_kb, on_day, state_at
from oxygen.instructions.weather import WeatherFeed
from tests.instructions.helpers import DAY, HOUR, ITEMS, T, state

LEAK_ITEMS = {**ITEMS, 8: ("LEAKED-AT-T lamp", ["Home", "Lighting", "Lamps"]),
              9: ("LEAKED-AFTER-T kettle", ["Home", "Kitchen", "Kettles"])}


def _all_prompts(st) -> str:
    return "\n".join(p for p in (stp_prompt(st), rewrite_prompt(st), intent_prompt(st)[0]) if p)


def test_nothing_at_or_after_t_leaks():
    events = [(T - 2 * DAY, "click", 1, "homepage"), (T - HOUR, "cart", 2, "search"),
              (T, "purchase", 8, "cart"), (T + 60, "click", 9, "homepage")]
    queries = [(T - HOUR, "phone cas"), (T, "LEAKQUERYNOW"), (T + 5, "LEAKQUERYLATER")]
    st = state_at("u1", T, {"persona": "student"}, {"city": "Harbin"}, events, queries, LEAK_ITEMS)
    assert [e.item_id for e in st.events] == [1, 2]
    assert [q for _, q in st.queries] == ["phone cas"]
    text = _all_prompts(st)
    assert "LEAKED" not in text and "LEAKQUERY" not in text
    assert "Nexon phone case black" in text and "phone cas" in text


def test_long_and_short_windows():
    events = [(T - 100 * DAY, "click", 4, "homepage"), (T - 3 * DAY, "click", 1, "homepage"),
              (T - 2 * HOUR, "cart", 2, "search")]
    st = state(events)
    assert [e.item_id for e in st.long_term] == [1]
    assert [e.item_id for e in st.short_term] == [2]
    prompt = intent_prompt(st)[0]
    assert "gel pen" not in prompt  # older than 90 days
    assert prompt.index("Voltra smartphone") < prompt.index("short-term") < prompt.index("Nexon phone case")
    assert "2025-12-20 10:00 cart Nexon phone case black [Electronics > Phones & Accessories > Phone Cases] in search" \
        in prompt


def test_season_holidays_climate_and_weather_feed(tmp_path):
    assert calendar_tags(default_kb(), "2025-12-20") == ("christmas", "winter", "winter_solstice")
    (tmp_path / "calendar.jsonl").write_text(
        '{"date": "2025-12-20", "city": "Shanghai", "situation": ["christmas", "cold_snap", "winter"]}\n')
    st = state_at("u1", T, {}, {"city": "Shanghai", "date": "2025-12-20"}, [], [], ITEMS,
                  feed=WeatherFeed.load(tmp_path))
    assert (st.season, st.climate, st.weather) == ("winter", "cold-humid", ("cold_snap",))
    assert st.holidays == ("christmas", "winter_solstice")
    assert "weather: cold_snap" in stp_prompt(st)
    assert state(events=[]).weather == ()  # no feed: no weather


def test_on_day_keeps_place_and_profile_and_takes_the_days_calendar():
    st = state_at("u1", T, {"persona": "student", "family_stage": "single"}, {"city": "Harbin"},
                  [(T - HOUR, "click", 1, "homepage")], [(T - HOUR, "phone cas")], ITEMS)
    day = on_day(st, "2025-12-20", ("cold_snap",))
    assert (day.city, day.climate, day.persona, day.family_stage) == (st.city, st.climate, "student", "single")
    assert (day.date, day.season, day.holidays, day.weather) == ("2025-12-20", "winter", ("christmas", "winter_solstice"),
                                                                  ("cold_snap",))
    assert day.events == [] and day.queries == [] and day.at is None
    assert "week: 2025-W51" in stp_prompt(day) and "holidays: christmas, winter_solstice" in stp_prompt(day)


def _row(**kw) -> Row:
    return Row(user_id="u1", **kw)


def test_adapter_world_row_uses_history_not_the_row_itself():
    items = {i: Item(item_id=i, title=t, categories=c) for i, (t, c) in LEAK_ITEMS.items()}
    row = _row(history=[1, 2], target=8, scenario="cart", trigger=2, query="LEAKQUERYNOW", behaviour="purchase",
               timestamp=T, context={"city": "Shanghai", "date": "2025-12-20"},
               profile={"persona": "young_parents", "city": "Shanghai"}, history_behaviours=["click", "cart"],
               history_scenarios=["homepage", "search"], history_timestamps=[T - 2 * DAY, T - HOUR],
               truth={"reason": "complement", "need": "Lamps"})
    st = user_state(row, items, queries=[(T - HOUR, "phone cas"), (T, "LEAKQUERYNOW")])
    assert st.at == T and st.city == "Shanghai" and st.persona == "young_parents"
    assert [(e.item_id, e.action, e.scenario) for e in st.events] == [(1, "click", "homepage"), (2, "cart", "search")]
    text = _all_prompts(st)
    assert "LEAKED" not in text and "LEAKQUERY" not in text and "Lamps" not in text


def test_adapter_amazon_style_row_history_only():
    items = {1: Item(item_id=1, title="Stapler", categories=["Office Products", "Staplers"]), 2: Item(item_id=2)}
    st = user_state(_row(history=[1, 2], target=5), items, queries=[])
    assert st.at is None and st.date is None and st.n_short == 0
    assert [(e.ts, e.item_id) for e in st.events] == [(None, 1), (None, 2)]
    prompt, cut = intent_prompt(st)
    assert not cut and "undated interacted Stapler [Office Products > Staplers]" in prompt
    assert "undated interacted item 2 []" in prompt
    assert stp_prompt(st) is None and rewrite_prompt(st) is None
