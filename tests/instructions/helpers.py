"""Shared builders of the instruction tests: item tables and states at a fixed time."""

from __future__ import annotations

from oxygen.instructions.state import UserState, state_at

T = 1_766_232_000  # 2025-12-20 12:00 UTC
DAY, HOUR = 86_400, 3_600
ITEMS = {
    1: ("Voltra smartphone 128GB", ["Electronics", "Phones & Accessories", "Smartphones"]),
    2: ("Nexon phone case black", ["Electronics", "Phones & Accessories", "Phone Cases"]),
    3: ("Cozy baby pajamas", ["Baby & Maternity", "Baby Clothing", "Baby Sleepwear"]),
    4: ("Scriba gel pen 0.5mm", ["Stationery & School", "Writing Supplies", "Gel Pens"]),
}
PROFILE = {"age_band": "25-34", "family_stage": "parents_of_infant", "hobbies": ["cooking"],
           "spending_power": "mid", "city": "Shanghai", "persona": "young_parents"}


def state(events: list, queries: list | None = None, user: str = "u1", city: str = "Shanghai",
          persona: str = "young_parents", t: int = T) -> UserState:
    """A state at `t` in `city` for `persona` with (ts, action, item, scenario) `events`."""
    profile = {**PROFILE, "city": city, "persona": persona}
    return state_at(user, t, profile, {"city": city}, events, queries or [], ITEMS)  # date from t
