"""Adapters from schema rows/items to the plain inputs of lower layers (semantic-ID building).

    cat = catalogue_input(ds.items, ds.splits["train"])   # -> semantic_ids.embeddings.CatalogueInput
"""

from __future__ import annotations

from typing import Sequence

from oxygen.data.schema import Item, Row
from oxygen.semantic_ids.embeddings import CatalogueInput


def catalogue_input(items: Sequence[Item], train_rows: Sequence[Row]) -> CatalogueInput:
    """Items (ids, text, category paths) and TRAIN rows (user, history + target) for SID building.

    Only pass train rows: behaviour pairs mined from valid/test rows would leak their targets."""
    cats = [list(it.categories) for it in items]
    return CatalogueInput(item_ids=[it.item_id for it in items], texts=[it.text for it in items],
                          users=[r.user_id for r in train_rows],
                          sequences=[list(r.history) + [r.target] for r in train_rows],
                          categories=cats if any(cats) else None)
