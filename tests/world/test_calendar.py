"""Calendar: seasons, holidays and weather per day; contextual needs against a slow reference."""

from __future__ import annotations

import numpy as np
import pytest

from oxygen.world.calendar import Calendar
from oxygen.world.knowledge import Knowledge


@pytest.fixture(scope="module")
def cal() -> Calendar:
    return Calendar.build(Knowledge.load(), "2025-10-01", 120, np.random.default_rng(0))


def test_dates_seasons_holidays(cal: Calendar):
    assert cal.date(0).isoformat() == "2025-10-01" and cal.day_of("2025-12-21") == 81
    assert "autumn" in cal.situation(0, 0) and "national_day" in cal.situation(0, 0)
    assert {"winter", "winter_solstice"} <= set(cal.situation(0, cal.day_of("2025-12-21")))
    assert "christmas" in cal.situation(0, cal.day_of("2025-12-25"))
    assert "new_year" in cal.situation(0, cal.day_of("2026-01-01"))
    assert "christmas" not in cal.situation(0, cal.day_of("2025-11-20"))


def test_weather_follows_climate(cal: Calendar):
    kb = cal.kb
    heat = cal.events.index("heat_wave") + 1
    hot = [c for c, city in enumerate(kb.cities) if city.climate == "hot-humid"]
    cold = [c for c, city in enumerate(kb.cities) if city.climate == "cold"]
    assert (cal.weather[hot] == heat).mean() > (cal.weather[cold] == heat).mean()
    assert (cal.weather > 0).mean() < 0.6
    assert cal.weather[:, 90:].max() <= len(cal.events)


def _reference_needs(cal: Calendar, persona: int, city: int, day: int) -> dict[int, float]:
    kb, sit, c = cal.kb, set(cal.situation(city, day)), cal.kb.cities[city]
    out: dict[int, float] = {}
    for r in kb.rules:
        ok = r.when in sit and (r.climates is None or c.climate in r.climates) and \
            (r.personas is None or persona in r.personas) and (r.north is None or r.north == c.north)
        for leaf, s in r.needs if ok else ():
            out[leaf] = max(out.get(leaf, 0.0), s)
    return out


def test_needs_match_reference(cal: Calendar):
    rng = np.random.default_rng(3)
    nonempty = 0
    for _ in range(300):
        p, c, d = int(rng.integers(len(cal.kb.personas))), int(rng.integers(len(cal.kb.cities))), int(rng.integers(120))
        leaves, strength = cal.needs(p, c, d)
        assert dict(zip(leaves.tolist(), strength.tolist())) == _reference_needs(cal, p, c, d)
        nonempty += len(leaves) > 0
    assert nonempty > 100


def test_solstice_dumplings_in_the_north(cal: Calendar):
    kb = cal.kb
    day = cal.day_of("2025-12-21")
    harbin, canton = [c.name for c in kb.cities].index("Harbin"), [c.name for c in kb.cities].index("Guangzhou")
    dumplings = kb.leaves.index("Frozen Dumplings")
    assert dumplings in cal.needs(0, harbin, day)[0]
    assert dumplings not in cal.needs(0, canton, day)[0]


def test_bad_start_date():
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        Calendar.build(Knowledge.load(), "21/12/2025", 10, np.random.default_rng(0))
