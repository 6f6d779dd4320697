"""One near-line worker, without Ray: the loop body a Ray actor (oxygen.serving.nearline) runs.

A `step`: read new events (high-value ones join their user's window, the rest are acked), now
and then take over a dead worker's pending events and reap expired leases, claim the windows that
have ended, regenerate those users' instructions in one batch, write them (versioned: an older
generation never replaces a newer one, the same one twice is a no-op) and only then ack the
windows' events. A failed regeneration is retried after a back-off and dead-lettered after
`max_tries`; a store outage ends the step (the events stay pending: nothing is lost).

    worker = NearlineWorker("w1", log, store, regenerate, NearlineConfig(window_s=300))
    while running: worker.step()
    worker.stats       # events, regenerations, writes skipped as stale, failures, latencies
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from oxygen.config import NearlineConfig
from oxygen.instructions.nearline.regenerate import Outcome
from oxygen.store.events import Claim, EventLog
from oxygen.store.instructions import InstructionStore, StoreUnavailable

Regenerate = Callable[[Sequence[Claim]], Outcome]
MAINTAIN_EVERY_S = 1.0  # how often a worker reclaims idle events and reaps leases
LATENCY_KEPT = 10_000  # latencies a long-running worker remembers


@dataclass
class WorkerStats:
    """Counters of one worker since it started."""

    events: int = 0  # stream entries read (or reclaimed)
    regenerations: int = 0  # windows completed with a written record
    stale: int = 0  # windows whose record was older than the stored one (not written)
    empty: int = 0  # windows whose user had nothing to say
    failures: int = 0  # failed regeneration attempts
    dead_lettered: int = 0  # windows given up after max_tries
    lost_leases: int = 0  # windows another worker took over before this one finished
    store_errors: int = 0  # steps ended by an unreachable Redis
    # window end -> record written, the last LATENCY_KEPT windows (which windows finished, and how,
    # is the audit stream: EventLog.audit)
    latency_s: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_KEPT))

    def to_dict(self) -> dict:
        """JSON-ready counters (latencies as a list)."""
        return {**self.__dict__, "latency_s": list(self.latency_s)}


class NearlineWorker:
    """Reads, schedules, claims, regenerates, writes, acks."""

    def __init__(self, name: str, log: EventLog, store: InstructionStore, regenerate: Regenerate,
                 cfg: NearlineConfig) -> None:
        self.name, self.log, self.store, self.regenerate, self.cfg = name, log, store, regenerate, cfg
        self.stats = WorkerStats()
        self._maintained = 0.0
        self._held: tuple[list[Claim], Outcome | None] | None = None  # claims a store outage interrupted

    def step(self, block_ms: int = 100) -> int:
        """One pass; -> the number of windows it finished (written, stale, empty or dead). Claims
        whose write or ack an unreachable Redis interrupted are finished first on the next pass
        (they are still leased to this worker), with the instructions already generated."""
        try:
            if self._held is None:
                self.stats.events += len(self.log.read(self.name, block_ms=block_ms))
                if time.time() - self._maintained >= MAINTAIN_EVERY_S:
                    self._maintain()
                claims = self.log.claim(self.name, self.cfg.claim_batch, self.cfg.lease_s)
                self._held = (claims, None) if claims else None
            if self._held is None:
                return 0
            done = self._process(*self._held)
            self._held = None
            return done
        except StoreUnavailable:
            self.stats.store_errors += 1
            time.sleep(min(1.0, block_ms / 1000))
            return 0

    def _maintain(self) -> None:
        """Take over long-pending events and reap leases of dead workers."""
        self.stats.events += len(self.log.reclaim(self.name, self.cfg.reclaim_after_s))
        self.log.reap()
        self._maintained = time.time()

    def _process(self, claims: list[Claim], out: Outcome | None = None) -> int:
        """Regenerate (unless `out` is given), write, ack (or fail) every claimed window."""
        if out is None:
            try:
                out = self.regenerate(claims)
            except StoreUnavailable:
                raise
            except Exception as e:  # noqa: BLE001 - a crashing backend fails these windows, not the worker
                out = Outcome(failed={c.user_id: f"{type(e).__name__}: {e}" for c in claims})
            self._held = (claims, out)
        by_user = {c.user_id: c for c in claims}
        recs = list(out.records.values())
        written = dict(zip([r.user_id for r in recs], self.store.put_versioned(recs)))
        now = time.time()
        for user, ok in written.items():
            self.stats.regenerations += ok
            self.stats.stale += not ok
            if ok:
                self.stats.latency_s.append(now - self._window_end(by_user[user]))
        outcome = {**{u: "written" if ok else "stale" for u, ok in written.items()}, **dict.fromkeys(out.empty, "empty")}
        for user, kind in outcome.items():
            if not self.log.complete(self.name, by_user[user], kind):
                self.stats.lost_leases += 1
        self.stats.empty += len(out.empty)
        for user, error in out.failed.items():
            self.stats.failures += 1
            self.stats.dead_lettered += self.log.fail(self.name, by_user[user], error, self.cfg.max_tries,
                                                      self.cfg.backoff_s)
        return len(written) + len(out.empty)

    def _window_end(self, claim: Claim) -> float:
        """When the claim's window ended: its first arrival + window_s."""
        return min(claim.arrivals, default=time.time()) + self.cfg.window_s
