"""Near-line workers on Ray: worker actors running `NearlineWorker`, and a supervisor actor that
scales them with the backlog between `min_workers` and `max_workers` (the decision is
`autoscale.desired_workers`; this module only applies it).

    sup = start_nearline(NearlineArgs(data="runs/demo/world", redis_url=url))     # Ray running
    ray.get(sup.status.remote())     # {"workers": 2, "backlog": {...}, "history": [...]}
    stats = ray.get(sup.stop.remote())   # every worker finishes its step; their counters

Workers reach Redis by URL (`REDIS_URL` with the password on a cluster) and the instruction
backend by name: `knowledge` (the teacher), `hf` / `vllm` (an LM folder, one engine per worker),
or `service` (the vLLM instruction-generation Serve app, shared by all workers).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import ray
from pydantic import BaseModel, Field

from oxygen.config import NearlineConfig
from oxygen.data.io import find_file, load_items
from oxygen.instructions.backends import make_backend
from oxygen.instructions.backends.base import Backend
from oxygen.instructions.nearline.autoscale import desired_workers, low_enough
from oxygen.instructions.nearline.regenerate import Regenerator, item_info
from oxygen.instructions.nearline.worker import NearlineWorker
from oxygen.instructions.pipeline import catalogue_vocabulary
from oxygen.instructions.weather import WeatherFeed
from oxygen.serving.instruction_service import ServiceBackend, instruction_handle
from oxygen.store.events import EventLog
from oxygen.store.instructions import InstructionStore, StoreUnavailable
from oxygen.store.users import UserStateStore


class NearlineArgs(BaseModel):
    """Where the near-line job reads and writes, and its settings."""

    data: str = Field(description="dataset folder: items.jsonl (titles, categories), calendar.jsonl if any")
    redis_url: str | None = None  # None: $REDIS_URL or the embedded server
    prefix: str = "oxygen"
    config: NearlineConfig = Field(default_factory=NearlineConfig)
    service: str = "instructions"  # the instruction service's Serve app (backend: service)
    tick_s: float = Field(default=0.5, gt=0)  # how often the supervisor looks at the backlog
    worker_cpus: float = Field(default=0.25, gt=0)  # logical CPUs per worker (mostly waiting on Redis / the service)


def _backend(args: NearlineArgs) -> Backend:
    """The configured instruction backend, built inside the worker."""
    c = args.config
    if c.backend == "service":
        return ServiceBackend(instruction_handle(args.service), timeout_s=c.service_timeout_s)
    return make_backend(c.backend, c.model, coverage=c.coverage)


def event_log(args: NearlineArgs) -> EventLog:
    """The EventLog these settings describe."""
    c = args.config
    return EventLog.connect(args.redis_url, args.prefix, c.window_s, tuple(c.high_value), c.max_history)


@ray.remote(max_concurrency=4)
class WorkerActor:
    """One near-line worker: `run` loops `NearlineWorker.step` until `stop`."""

    def __init__(self, name: str, args: dict) -> None:
        a = NearlineArgs(**args)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        log = event_log(a)
        items = load_items(find_file(Path(a.data), "items") or Path(a.data) / "items.jsonl")
        regen = Regenerator(UserStateStore(log.client, a.prefix), _backend(a), item_info(items),
                            WeatherFeed.load(a.data), catalogue_vocabulary(items))
        self.worker = NearlineWorker(name, log, InstructionStore(log.client, a.prefix), regen, a.config)
        self._stop = threading.Event()

    def ready(self) -> bool:
        """True once constructed (backend and encoder loaded)."""
        return True

    def run(self) -> dict:
        """Step until stopped; -> the counters."""
        while not self._stop.is_set():
            self.worker.step()
        return self.worker.stats.to_dict()

    def stop(self) -> None:
        """Finish the current step, then return from `run`."""
        self._stop.set()

    def stats(self) -> dict:
        """The counters so far."""
        return self.worker.stats.to_dict()


@ray.remote(max_concurrency=4)
class Supervisor:
    """Keeps the number of worker actors where the backlog wants it; records the history."""

    def __init__(self, args: dict) -> None:
        self.args = NearlineArgs(**args)
        self.log = event_log(self.args)
        self.log.ensure_group()
        self.workers: dict[str, tuple] = {}  # name -> (actor, run ref)
        self.stopping: dict[str, tuple] = {}  # scaled down: finishing their step
        self.finished: list[dict] = []  # counters of workers scaled down or stopped
        self.history: list[dict] = []  # (t, workers, backlog) per tick
        self._stop, self._count, self._low_since = threading.Event(), 0, None
        self._lock = threading.Lock()  # tick, status and stop run on different actor threads

    def run(self) -> None:
        """Tick until stopped."""
        while not self._stop.is_set():
            self.tick()
            self._stop.wait(self.args.tick_s)

    def tick(self) -> None:
        """Look at the backlog once and scale (workers start in the background)."""
        with self._lock:
            if not self._stop.is_set():
                self._tick()

    def _tick(self) -> None:
        c, now = self.args.config, time.time()
        try:
            backlog = self.log.backlog()
        except StoreUnavailable:
            return  # Redis down: keep the workers as they are (they reconnect by themselves)
        self._reap_dead()
        n = len(self.workers)
        self._low_since = (self._low_since or now) if low_enough(backlog, n, c) else None
        want = desired_workers(backlog, n, c, self._low_since, now)
        while len(self.workers) < want:
            self._start_worker()
        while len(self.workers) > want:
            self._stop_worker(sorted(self.workers)[-1])
            self._low_since = None
        self.history.append({"t": now, "workers": len(self.workers), **backlog})

    def _start_worker(self) -> None:
        self._count += 1
        name = f"nearline-{self._count}"
        actor = WorkerActor.options(name=None, num_cpus=self.args.worker_cpus).remote(name, self.args.model_dump())
        self.workers[name] = (actor, actor.run.remote())

    def _stop_worker(self, name: str) -> None:
        """Ask a worker to stop after its current step (never waited for here: a step may be in a
        slow backend call); `_reap_dead` collects it."""
        actor, ref = self.workers.pop(name)
        actor.stop.remote()
        self.stopping[name] = (actor, ref)

    def _reap_dead(self) -> None:
        """Collect workers whose run ended (stopped, killed): the next tick starts replacements if needed."""
        for pool in (self.workers, self.stopping):
            for name, (actor, ref) in list(pool.items()):
                if ray.wait([ref], timeout=0)[0]:
                    del pool[name]
                    self._finish(name, actor, ref)

    def _finish(self, name: str, actor, ref: ray.ObjectRef) -> None:
        """Keep a finished worker's counters (waiting for its run to return) and free the actor."""
        self.finished.append({"name": name, **_counters(ref)})
        ray.kill(actor)

    def kill_worker(self) -> str | None:
        """Kill one running worker without letting it finish (a fault drill); its name. The next
        tick notices and starts a replacement when the backlog still wants one."""
        with self._lock:
            if not self.workers:
                return None
            name = sorted(self.workers)[0]
            ray.kill(self.workers[name][0], no_restart=True)
            return name

    def status(self) -> dict:
        """Workers now, the backlog history, and the counters of every running worker."""
        with self._lock:
            running = {n: a.stats.remote() for n, (a, _) in self.workers.items()}
        return {"workers": len(self.workers), "history": list(self.history),
                "running": {n: _counters(r) for n, r in running.items()}, "finished": list(self.finished)}

    def stop(self) -> list[dict]:
        """Stop ticking and every worker; -> every worker's counters."""
        self._stop.set()
        with self._lock:
            for name in sorted(self.workers):
                self._stop_worker(name)
            for name, (actor, ref) in sorted(self.stopping.items()):
                self._finish(name, actor, ref)
            self.stopping.clear()
            return list(self.finished)


def _counters(ref: ray.ObjectRef) -> dict:
    """A worker's counters, or the error that ended it (killed, crashed)."""
    try:
        return ray.get(ref, timeout=60)
    except Exception as e:  # noqa: BLE001 - a dead worker's events are reclaimed by the others
        return {"error": f"{type(e).__name__}: {str(e).splitlines()[0]}"}


def start_nearline(args: NearlineArgs) -> ray.actor.ActorHandle:
    """Start the supervisor (which starts the workers) on the running Ray; returns its handle."""
    sup = Supervisor.options(num_cpus=0).remote(args.model_dump())
    sup.run.remote()
    return sup


def nearline_status(sup: ray.actor.ActorHandle) -> dict:
    """The supervisor's status (workers, backlog history, worker counters)."""
    return ray.get(sup.status.remote())


def stop_nearline(sup: ray.actor.ActorHandle) -> list[dict]:
    """Stop the supervisor and its workers; every worker's counters."""
    return ray.get(sup.stop.remote())


def kill_one_worker(sup: ray.actor.ActorHandle) -> str | None:
    """Kill one of the supervisor's workers mid-work (fault drills); its name."""
    return ray.get(sup.kill_worker.remote())
