"""Where a request's time goes: named stages accumulated in milliseconds. The decode path records
the encoder, the beam search and the re-rank; the serving core adds its own stages (store reads,
query rewrite and embedding, collate, response building) and returns them with every answer.

    t = Timings()
    with t.stage("collate"):
        batch = collate(rows, space)
    t.ms            # {"collate": 1.7}
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Timings:
    """Milliseconds per stage name (a stage entered twice adds up)."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    def add(self, stage: str, ms: float) -> None:
        """Add `ms` milliseconds to `stage`."""
        self.ms[stage] = self.ms.get(stage, 0.0) + ms

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the body of a `with` block into stage `name`."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, (time.perf_counter() - t0) * 1000)


class TimedModel:
    """A StepModel whose `start` (the encoder pass) is timed into stage "encoder"; every other
    attribute is the wrapped model's."""

    def __init__(self, model: Any, timings: Timings):
        self.model, self.timings = model, timings

    def start(self, batch: Any) -> Any:
        """The wrapped model's start, timed."""
        with self.timings.stage("encoder"):
            return self.model.start(batch)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)
