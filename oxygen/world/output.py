"""Write a simulated world as a dataset folder in the shared schema (`oxygen.data.schema`).

Files: items.jsonl (catalogue), train/valid/test.jsonl (one row per event, split by day),
users.jsonl (profiles, interests), impressions.jsonl (the lists a logging policy showed at a share of
the requests, with per-item click / cart / purchase outcomes: `oxygen.world.impressions`),
calendar.jsonl (the public weather feed: one line {date, city, situation: [season, holidays, weather
event]} per simulated day and city, what a weather service publishes; not hidden truth) and world.json (args,
seed, versions, counts). A row's history is
the user's previous events' items (all scenarios, oldest first, at most `max_history`) with aligned
behaviours, scenarios and timestamps; `truth` keeps the hidden reason. Rows are grouped by user and
chronological within a user; the folder loads with `oxygen.data.io.load_dataset`.

The world is layer 2 and does not import `oxygen.data`: the caller passes the jsonl writer
(`oxygen.data.io.write_jsonl`, see apps/world.py).

    counts = write_dataset(world, world.simulate(), "data/shop-world", write_jsonl)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from tqdm import tqdm

from oxygen.world.impressions import ImpressionLogger
from oxygen.world.sessions import Event
from oxygen.world.stats import diagnostics
from oxygen.world.world import WORLD_VERSION, World


def rows(world: World, events: list[list[Event]], first_day: int, last_day: int) -> Iterator[dict]:
    """`oxygen.data.schema.Row`-shaped dicts of the events on days first_day..last_day."""
    kb, users, h = world.kb, world.users, world.config.max_history
    for u, evs in enumerate(events):
        profile, uid = users.profile(u), users.user_id(u)
        for i, ev in enumerate(evs):
            if not first_day <= ev.day <= last_day:
                continue
            past = evs[max(0, i - h):i]
            row: dict = {"user_id": uid, "history": [e.item for e in past], "target": ev.item,
                         "scenario": ev.scenario}
            if ev.trigger >= 0:
                row["trigger"] = ev.trigger
            if ev.query is not None:
                row["query"] = ev.query
            row.update(behaviour=ev.behaviour, timestamp=ev.ts,
                       context={"city": profile["city"], "date": world.calendar.date(ev.day).isoformat()},
                       profile=profile, history_behaviours=[e.behaviour for e in past],
                       history_scenarios=[e.scenario for e in past],
                       history_timestamps=[e.ts for e in past])
            row["truth"] = {"reason": ev.reason, **({"need": kb.leaves[ev.need]} if ev.need >= 0 else {})}
            yield row


def calendar_records(world: World) -> Iterator[dict]:
    """The weather feed: {date, city, situation: sorted tags} for every simulated day and city."""
    cal = world.calendar
    for day in range(cal.days):
        date = cal.date(day).isoformat()
        for c, city in enumerate(world.kb.cities):
            yield {"date": date, "city": city.name, "situation": list(cal.situation(c, day))}


def impression_records(world: World, events: list[list[Event]], split_days: dict[str, tuple[int, int]]
                       ) -> Iterator[dict]:
    """The logged impressions of every user (grouped by user, chronological), each tagged with its split."""
    logger = ImpressionLogger(world)
    day_split = {d: s for s, (a, b) in split_days.items() for d in range(a, b + 1)}
    for u, evs in enumerate(events):
        yield from logger.user_impressions(u, evs, day_split.get)


JsonlWriter = Callable[[Path, Iterable[dict]], int]


def write_dataset(world: World, events: list[list[Event]], out: Path | str, write_jsonl: JsonlWriter,
                  progress: bool = True) -> dict:
    """Write every file of the dataset folder `out` with `write_jsonl(path, records) -> count`;
    return what world.json records (counts, split dates, diagnostics)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    items = tqdm(world.catalogue.records(), total=world.catalogue.n, desc="items", unit="item",
                 disable=not progress, mininterval=1.0)
    counts = {"items": write_jsonl(out / "items.jsonl", items),
              "users": write_jsonl(out / "users.jsonl", world.users.records()),
              "calendar": write_jsonl(out / "calendar.jsonl", calendar_records(world)),
              "events": sum(len(e) for e in events), "leaves": len(world.kb.leaves)}
    split_days = world.split_days()
    for split, (a, b) in split_days.items():
        it = tqdm(rows(world, events, a, b), desc=split, unit="row", disable=not progress, mininterval=1.0)
        counts[split] = write_jsonl(out / f"{split}.jsonl", it)
    it = tqdm(impression_records(world, events, split_days), desc="impressions", unit="list",
              disable=not progress, mininterval=1.0)
    counts["impressions"] = write_jsonl(out / "impressions.jsonl", it)
    meta = {"version": WORLD_VERSION, "kb_version": world.kb.version, "seed": world.config.seed,
            "args": world.config.model_dump(), "counts": counts,
            "split_days": {k: list(v) for k, v in split_days.items()},
            "dates": {k: [world.calendar.date(a).isoformat(), world.calendar.date(b).isoformat()]
                      for k, (a, b) in split_days.items()},
            "diagnostics": diagnostics(split_days, events, world.catalogue.leaf)}
    (out / "world.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta
