"""A user's state at time t: the only input of the instruction generators.

`state_at` keeps ONLY what happened strictly before t (ts < t): behaviour in the long-term window
(the last `long_days` days) and, of it, the short-term window (the last `short_hours` hours), plus
the queries typed before t. Events without a timestamp (Amazon-style rows: history only) are kept
in their given order as undated behaviour, before the dated ones. Season and holidays come from
the date (public calendar knowledge), weather tags from the dataset's public feed when it has one
(`weather.WeatherFeed`); the climate from the city (world geography).

    items = {12: ("Voltra wireless earbuds", ["Electronics", "Audio", "Wireless Earbuds"])}
    st = state_at("u1", t=1764000000, profile={"persona": "student"}, context={"city": "Harbin"},
                  events=[(1763990000, "click", 12, "homepage")], queries=[(1763990100, "earbu")],
                  items=items)
    st.long_term, st.short_term   # list[Event] each, oldest first
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from oxygen.instructions.weather import WeatherFeed
from oxygen.world.calendar import Calendar
from oxygen.world.knowledge import Knowledge

RawEvent = tuple[int | None, str | None, int, str | None]  # (ts, action, item_id, scenario)
ItemInfo = tuple[str | None, Sequence[str]]  # (title, category path, top level first)


@dataclass(frozen=True)
class Event:
    """One past interaction; `ts` None for undated (Amazon-style) behaviour."""

    ts: int | None
    action: str | None  # click / cart / purchase, None when the dataset does not say
    item_id: int
    title: str | None
    category_path: tuple[str, ...]
    scenario: str | None


@dataclass
class UserState:
    """Everything a generator may know about a user at time `at` (unix seconds, None if unknown).

    `events` is time-ordered (undated first); its last `n_short` entries are the short-term window."""

    user_id: str
    at: int | None = None
    date: str | None = None  # ISO date of `at`
    city: str | None = None
    climate: str | None = None
    season: str | None = None
    holidays: tuple[str, ...] = ()
    weather: tuple[str, ...] = ()
    age_band: str | None = None
    family_stage: str | None = None
    spending_power: str | None = None
    hobbies: tuple[str, ...] = ()
    persona: str | None = None
    events: list[Event] = field(default_factory=list)
    n_short: int = 0
    queries: list[tuple[int | None, str]] = field(default_factory=list)  # (ts, text), oldest first
    query: str | None = None  # a query being answered now (online search), never a row's own

    @property
    def long_term(self) -> list[Event]:
        """Events of the long-term window before the short-term ones (undated included)."""
        return self.events[:len(self.events) - self.n_short]

    @property
    def short_term(self) -> list[Event]:
        """Events of the last `short_hours` hours, oldest first."""
        return self.events[len(self.events) - self.n_short:]


@functools.lru_cache(maxsize=1)
def default_kb() -> Knowledge:
    """The world's knowledge base, loaded once per process."""
    return Knowledge.load()


def calendar_tags(kb: Knowledge, date: str) -> tuple[str, ...]:
    """Season and active holidays of an ISO date (the world's calendar rules, no weather)."""
    day = dt.date.fromisoformat(date)
    no_weather = np.zeros((len(kb.cities), 0), dtype=np.int64)
    return Calendar(kb, day, 0, no_weather).situation(0, 0)


def _place(state: UserState, context: dict, profile: dict, feed: WeatherFeed | None, kb: Knowledge) -> None:
    """Fill city, climate, season, holidays and weather of `state` from context, feed and kb."""
    state.city = context.get("city") or profile.get("city")
    climates = {c.name: c.climate for c in kb.cities}
    state.climate = climates.get(state.city) if state.city else None
    if state.date is None:
        return
    _situation(state, set(calendar_tags(kb, state.date)) | set(feed.tags(state.date, state.city) if feed else ()), kb)


def _situation(state: UserState, tags: set[str], kb: Knowledge) -> None:
    """Split a day's situation tags into the state's season, holidays and weather."""
    seasons = set(kb.seasons.values())
    state.season = next((t for t in sorted(tags) if t in seasons), None)
    state.holidays = tuple(sorted(t for t in tags if t in kb.holidays))
    state.weather = tuple(sorted(t for t in tags if t not in seasons and t not in kb.holidays))


def on_day(state: UserState, date: str, weather: Sequence[str], kb: Knowledge | None = None) -> UserState:
    """A behaviour-free copy of `state`'s place and profile on another ISO `date`: that day's season
    and holidays from the calendar rules, and the given `weather` tags (a context to distil the
    STP branch on; it reads no feed, so no day's actual weather is known ahead)."""
    kb = kb or default_kb()
    day = UserState(user_id=state.user_id, date=date, city=state.city, climate=state.climate,
                    age_band=state.age_band, family_stage=state.family_stage,
                    spending_power=state.spending_power, hobbies=state.hobbies, persona=state.persona)
    _situation(day, set(calendar_tags(kb, date)) | set(weather), kb)
    return day


def _events(t: int | None, events: Sequence[RawEvent], items: dict[int, ItemInfo],
            long_days: int, short_hours: int) -> tuple[list[Event], int]:
    """(kept events, undated first then dated by time; how many trailing ones are short-term)."""
    undated, dated = [], []
    for ts, action, item_id, scenario in events:
        title, path = items.get(item_id, (None, ()))
        ev = Event(None if ts is None else int(ts), action, int(item_id), title, tuple(path or ()), scenario)
        if ts is None:
            undated.append(ev)
        elif t is None or t - long_days * 86400 <= ts < t:
            dated.append(ev)
    dated.sort(key=lambda e: e.ts)
    n_short = 0 if t is None else sum(1 for e in dated if e.ts >= t - short_hours * 3600)
    return undated + dated, n_short


def state_at(user_id: str, t: int | None, profile: dict | None, context: dict | None,
             events: Sequence[RawEvent], queries: Sequence[tuple[int | None, str]],
             items: dict[int, ItemInfo], long_days: int = 90, short_hours: int = 24,
             feed: WeatherFeed | None = None, kb: Knowledge | None = None) -> UserState:
    """The state of `user_id` at time `t` (unix seconds; None: no clock, all behaviour undated).

    `events`: (ts or None, action or None, item_id, scenario or None) in the dataset's order;
    `queries`: (ts or None, text); `items`: item_id -> (title, category path). Only ts < t is kept
    (and ts >= t - long_days); undated events and queries are kept in order."""
    kb = kb or default_kb()
    profile, context = dict(profile or {}), dict(context or {})
    date = context.get("date")
    if date is None and t is not None:
        date = dt.datetime.fromtimestamp(t, dt.timezone.utc).date().isoformat()
    kept, n_short = _events(t, events, items, long_days, short_hours)
    qs = [(ts, q) for ts, q in queries if q and (ts is None or t is None or t - long_days * 86400 <= ts < t)]
    qs.sort(key=lambda x: -1 if x[0] is None else x[0])
    state = UserState(user_id=user_id, at=t, date=date, age_band=profile.get("age_band"),
                      family_stage=profile.get("family_stage"), spending_power=profile.get("spending_power"),
                      hobbies=tuple(profile.get("hobbies") or ()), persona=profile.get("persona"),
                      events=kept, n_short=n_short, queries=qs)
    _place(state, context, profile, feed, kb)
    return state
