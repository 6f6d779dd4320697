"""Adapters from schema rows/items to the plain inputs of lower layers (semantic-ID building,
instruction generation).

    cat = catalogue_input(ds.items, ds.splits["train"])   # -> semantic_ids.embeddings.CatalogueInput
    st = user_state(row, {it.item_id: it for it in ds.items}, queries=[(ts, "gaming mou")])
"""

from __future__ import annotations

from typing import Sequence

from oxygen.data.schema import Item, Row
from oxygen.instructions.state import UserState, state_at
from oxygen.instructions.weather import WeatherFeed
from oxygen.semantic_ids.embeddings import CatalogueInput


def catalogue_input(items: Sequence[Item], train_rows: Sequence[Row]) -> CatalogueInput:
    """Items (ids, text, category paths) and TRAIN rows (user, history + target) for SID building.

    Only pass train rows: behaviour pairs mined from valid/test rows would leak their targets."""
    cats = [list(it.categories) for it in items]
    return CatalogueInput(item_ids=[it.item_id for it in items], texts=[it.text for it in items],
                          users=[r.user_id for r in train_rows],
                          sequences=[list(r.history) + [r.target] for r in train_rows],
                          categories=cats if any(cats) else None)


def user_state(row: Row, items: dict, queries: Sequence[tuple[int | None, str]],
               feed: WeatherFeed | None = None) -> UserState:
    """The instruction generators' input for `row`'s user at the row's time t (`row.timestamp`).

    Uses only the row's history (with its behaviours, scenarios, timestamps), profile and context,
    and the user's `queries` (ts, text) strictly before t; the row's own target, query, behaviour
    and truth never go in. `items`: item_id -> Item (or (title, category path))."""
    n = len(row.history)
    ts = row.history_timestamps or [None] * n
    acts = row.history_behaviours or [None] * n
    scens = row.history_scenarios or [None] * n
    events = list(zip(ts, acts, row.history, scens))
    info = {}
    for i in set(row.history):
        it = items.get(i)
        info[i] = (it.title, list(it.categories)) if isinstance(it, Item) else (it or (None, []))
    return state_at(row.user_id, row.timestamp, row.profile.model_dump() if row.profile else None,
                    row.context.model_dump() if row.context else None, events, queries, info, feed=feed)
