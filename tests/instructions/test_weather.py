"""The public weather feed: the world writes calendar.jsonl, the loader maps (date, city) -> tags."""

from __future__ import annotations

import pytest

from oxygen.config import WorldConfig
from oxygen.data.io import write_jsonl
from oxygen.instructions.weather import WeatherFeed
from oxygen.world.output import write_dataset
from oxygen.world.world import World


def test_world_writes_the_feed_and_loader_reads_it(tmp_path):
    world = World.build(WorldConfig(items=1500, users=10, days=40, seed=3))
    meta = write_dataset(world, world.simulate(progress=False), tmp_path, write_jsonl, progress=False)
    feed = WeatherFeed.load(tmp_path)
    assert len(feed) == meta["counts"]["calendar"] == 40 * len(world.kb.cities)
    weather = set(world.kb.weather)
    seen = set()
    for day in range(40):
        date = world.calendar.date(day).isoformat()
        for c, city in enumerate(world.kb.cities):
            assert feed.tags(date, city.name) == world.calendar.situation(c, day)
            seen |= set(feed.tags(date, city.name)) & weather
    assert seen  # some weather event happened somewhere in 40 days x 20 cities
    assert feed.tags("1999-01-01", "Harbin") == () and feed.tags(None, "Harbin") == ()


def test_no_feed_is_empty_and_bad_lines_name_the_file(tmp_path):
    assert len(WeatherFeed.load(tmp_path)) == 0
    (tmp_path / "calendar.jsonl").write_text('{"date": "2025-10-01", "city": "Harbin"}\n')
    with pytest.raises(ValueError, match=r"calendar.jsonl:1"):
        WeatherFeed.load(tmp_path)
