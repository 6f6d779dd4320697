"""The shop world as one object: knowledge base, calendar, catalogue, users and feedback model.

`World.build(config)` draws everything from `config.seed` (independent streams per part), so the
same config always gives the same world. `World.load(dir)` rebuilds the world a dataset folder was
generated from (its `world.json` holds the config and the knowledge-base version) — this is how RL
and the simulated A/B test get the user-feedback model of a generated dataset.

    world = World.build(WorldConfig(items=3000, users=800, days=60))
    events = world.simulate()                 # list (per user) of list[Event]
    world = World.load("data/shop-world")     # later, from the written folder
    p = world.feedback.probabilities(0, "2025-11-30", "homepage", None, np.arange(10))
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from oxygen.config import WorldConfig
from oxygen.world.calendar import Calendar
from oxygen.world.catalogue import Catalogue, stream
from oxygen.world.feedback import FeedbackModel
from oxygen.world.knowledge import Knowledge
from oxygen.world.sessions import Event, SessionSimulator
from oxygen.world.users import Users

WORLD_VERSION = 1
STREAM_CALENDAR = 5


@dataclass
class World:
    """All parts of one generated world."""

    config: WorldConfig
    kb: Knowledge
    calendar: Calendar
    catalogue: Catalogue
    users: Users
    feedback: FeedbackModel

    @classmethod
    def build(cls, config: WorldConfig, kb: Knowledge | None = None) -> World:
        """Draw the calendar, catalogue and users of `config` (events come from `simulate`)."""
        kb = kb or Knowledge.load()
        cal = Calendar.build(kb, config.start_date, config.days, stream(config.seed, STREAM_CALENDAR))
        cat = Catalogue.generate(kb, config.items, config.seed)
        users = Users.generate(kb, config.users, config.seed)
        return cls(config, kb, cal, cat, users, FeedbackModel(kb, cal, cat, users))

    @classmethod
    def load(cls, root: Path | str) -> World:
        """Rebuild the world of a generated dataset folder from its world.json."""
        path = Path(root) / "world.json"
        if not path.exists():
            raise FileNotFoundError(f"{path} not found; pass a folder written by `python -m apps.world`")
        meta = json.loads(path.read_text())
        kb = Knowledge.load()
        if meta.get("kb_version") != kb.version or meta.get("version") != WORLD_VERSION:
            raise ValueError(f"{path}: written by world v{meta.get('version')} with knowledge base "
                             f"{meta.get('kb_version')}, but this code is v{WORLD_VERSION} with {kb.version}; "
                             "regenerate the folder with `python -m apps.world` (same --seed and sizes)")
        world = cls.build(WorldConfig(**meta["args"]), kb)
        if world.catalogue.n != meta["counts"]["items"] or world.users.n != meta["counts"]["users"]:
            raise ValueError(f"{path}: rebuilt world does not match the recorded counts; regenerate it")
        return world

    def simulate(self, progress: bool = True) -> list[list[Event]]:
        """Every user's chronological events (index = user index)."""
        sim = SessionSimulator(self.kb, self.catalogue, self.users, self.feedback,
                               self.config.days, self.config.seed)
        users = tqdm(range(self.users.n), desc="sessions", unit="user", disable=not progress)
        return [sim.user_events(u) for u in users]

    def split_days(self) -> dict[str, tuple[int, int]]:
        """First and last simulated day of train, valid and test (chronological split)."""
        days = self.config.days
        n_test = max(1, round(days * self.config.test_frac))
        n_valid = max(1, round(days * self.config.valid_frac))
        return {"train": (0, days - n_test - n_valid - 1), "valid": (days - n_test - n_valid, days - n_test - 1),
                "test": (days - n_test, days - 1)}
