"""A tiny generated shop world with random unique SIDs, shared by tests that train on one
(no text encoder: bench.training.random_codebook)."""

from __future__ import annotations

from pathlib import Path

from apps import world as world_app
from bench.training import random_codebook
from oxygen.data.io import Dataset, load_dataset


def tiny_world(data: Path, sids: Path, users: int, seed: int, items: int = 300, days: int = 20) -> Dataset:
    """Write the world to `data` and a random 3 x 8 codebook of its catalogue to `sids`; the dataset."""
    world_app.main(["--out", str(data), "--items", str(items), "--users", str(users), "--days", str(days),
                    "--seed", str(seed), "--quiet"])
    ds = load_dataset(data)
    random_codebook(sorted(ds.item_ids), width=8).save(sids)
    return ds
