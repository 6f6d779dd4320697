"""Shared fixtures of the shop-world tests: one small generated world per test session."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apps.world import main as world_main
from oxygen.world.world import World

SMALL = ["--items", "3000", "--users", "800", "--days", "60", "--seed", "7", "--quiet"]


@pytest.fixture(scope="session")
def world_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small world (3000 items, 800 users, 60 days) written once."""
    out = tmp_path_factory.mktemp("shop_world") / "w"
    world_main(["--out", str(out), *SMALL])
    return out


@pytest.fixture(scope="session")
def world(world_dir: Path) -> World:
    """The World rebuilt from the small folder (as RL / A/B tests will do)."""
    return World.load(world_dir)


@pytest.fixture(scope="session")
def split_rows(world_dir: Path) -> dict[str, list[dict]]:
    """Raw row dicts of each split of the small world."""
    return {s: [json.loads(l) for l in (world_dir / f"{s}.jsonl").open()] for s in ("train", "valid", "test")}


@pytest.fixture(scope="session")
def item_leaf(world_dir: Path) -> dict[int, str]:
    """item id -> leaf category name, read from items.jsonl."""
    out = {}
    for line in (world_dir / "items.jsonl").open():
        it = json.loads(line)
        out[it["item_id"]] = it["categories"][2]
    return out
