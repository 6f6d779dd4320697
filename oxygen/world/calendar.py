"""Simulated time: dates, seasons, holidays and per-city weather, and the contextual needs they raise.

Day 0 is `start_date`; `Calendar.build(kb, start, days, rng)` draws each city's weather events for
the simulated window (outside it there is no weather, only season and holidays). `needs(persona,
city, day)` returns the leaf categories that the matched rules of context.yaml make the user need:

    cal = Calendar.build(kb, "2025-10-01", 90, np.random.default_rng(0))
    leaves, strengths = cal.needs(persona=0, city=3, day=81)   # Int[k], Float[k]
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from oxygen.world.knowledge import Knowledge


class Calendar:
    """Season, holidays and weather of every simulated day and city."""

    def __init__(self, kb: Knowledge, start: dt.date, days: int, weather: np.ndarray):
        """`weather`: Int[C, days], index into `self.events` + 1 (0 = no event)."""
        self.kb, self.start, self.days = kb, start, days
        self.events: list[str] = sorted(kb.weather)
        self.weather = weather
        self._cache: dict[tuple[int, int, int], tuple[np.ndarray, np.ndarray]] = {}

    @classmethod
    def build(cls, kb: Knowledge, start: str, days: int, rng: np.random.Generator) -> Calendar:
        """Draw the weather of every city over `days` days from `start` (ISO date)."""
        try:
            start_date = dt.date.fromisoformat(start)
        except ValueError as e:
            raise ValueError(f"start date {start!r} is not an ISO date; write it as YYYY-MM-DD") from e
        events = sorted(kb.weather)
        weather = np.zeros((len(kb.cities), days), dtype=np.int64)
        draws = rng.random((len(kb.cities), days, len(events)))
        for c, city in enumerate(kb.cities):
            rates = kb.climate_rates[city.climate]
            d = 0
            while d < days:
                month = (start_date + dt.timedelta(days=d)).month
                for e, name in enumerate(events):
                    months, length = kb.weather[name]
                    rate = rates.get(name, 0.0) / length  # so about `rate` of days are in an event
                    if month in months and draws[c, d, e] < rate:
                        weather[c, d:d + length] = e + 1
                        d += length - 1
                        break
                d += 1
        return cls(kb, start_date, days, weather)

    def date(self, day: int) -> dt.date:
        """The calendar date of simulated day `day`."""
        return self.start + dt.timedelta(days=int(day))

    def day_of(self, date: str | dt.date) -> int:
        """Simulated day index of an ISO date (may be outside 0..days-1)."""
        d = dt.date.fromisoformat(date) if isinstance(date, str) else date
        return (d - self.start).days

    def situation(self, city: int, day: int) -> tuple[str, ...]:
        """Season, active holidays and the weather event of `city` on `day`, sorted."""
        date = self.date(day)
        out = {self.kb.seasons[date.month]}
        for name, (month, mday, before, after) in self.kb.holidays.items():
            for year in (date.year - 1, date.year, date.year + 1):
                delta = (date - dt.date(year, month, mday)).days
                if -before <= delta <= after:
                    out.add(name)
        if 0 <= day < self.days and self.weather[city, day]:
            out.add(self.events[self.weather[city, day] - 1])
        return tuple(sorted(out))

    def needs(self, persona: int, city: int, day: int) -> tuple[np.ndarray, np.ndarray]:
        """(Int[k] leaves, Float[k] strengths): what the context makes this user need on `day`.

        The strength of a leaf is its largest strength over the matching rules; leaves are sorted."""
        key = (persona, city, day)
        if key not in self._cache:
            situation = set(self.situation(city, day))
            c = self.kb.cities[city]
            best: dict[int, float] = {}
            for r in self.kb.rules:
                if r.when not in situation or (r.climates is not None and c.climate not in r.climates):
                    continue
                if (r.personas is not None and persona not in r.personas) or (
                        r.north is not None and r.north != c.north):
                    continue
                for leaf, s in r.needs:
                    best[leaf] = max(best.get(leaf, 0.0), s)
            leaves = np.array(sorted(best), dtype=np.int64)
            self._cache[key] = (leaves, np.array([best[i] for i in leaves], dtype=np.float64))
        return self._cache[key]
