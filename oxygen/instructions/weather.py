"""The public weather feed of a dataset: (date, city) -> situation tags, read from `calendar.jsonl`.

The shop world writes `calendar.jsonl` beside its rows (one line per (date, city): season, active
holidays and the weather event of that day, like a weather service would publish). Datasets
without the file simply have no weather: `WeatherFeed.load` returns an empty feed.

    feed = WeatherFeed.load("data/shop-world")      # reads data/shop-world/calendar.jsonl if present
    feed.tags("2025-12-20", "Harbin")               # ("christmas", "cold_snap", "winter", ...) or ()
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

FEED_FILE = "calendar.jsonl"


@dataclass
class WeatherFeed:
    """Situation tags by (ISO date, city); empty when the dataset publishes no feed."""

    by_day: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def load(cls, root: Path | str) -> WeatherFeed:
        """Read `root/calendar.jsonl` (lines {date, city, situation: [tags]}); empty if absent.

        A malformed line raises ValueError naming the file and line."""
        path = Path(root) / FEED_FILE
        feed = cls()
        if not path.exists():
            return feed
        with path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                    feed.by_day[(str(rec["date"]), str(rec["city"]))] = tuple(str(t) for t in rec["situation"])
                except (ValueError, KeyError, TypeError) as e:
                    raise ValueError(f"{path}:{n}: expected {{date, city, situation: [tags]}} ({e}); "
                                     "regenerate the folder with `python -m apps.world`") from e
        return feed

    def tags(self, date: str | None, city: str | None) -> tuple[str, ...]:
        """The tags of `city` on `date` (ISO), () when unknown."""
        if date is None or city is None:
            return ()
        return self.by_day.get((date, city), ())

    def __len__(self) -> int:
        """Number of (date, city) entries."""
        return len(self.by_day)
