"""How many near-line workers the backlog needs: the autoscaling decision, without Ray.

    want = desired_workers(backlog, current=2, cfg=cfg, low_since=t_low, now=time.time())

Backlog = open windows (users scheduled for regeneration, due now or within window_s: the work of
the coming window) + events not yet read. Up at once to
ceil(backlog / users_per_worker) (within [min_workers, max_workers]); down one worker at a time,
only after the backlog has stayed low enough for fewer workers for `scale_down_after_s`.
"""

from __future__ import annotations

import math

from oxygen.config import NearlineConfig


def pressure(backlog: dict[str, int]) -> int:
    """The work waiting in an `EventLog.backlog()`: open windows (due or not) + unread events."""
    return int(backlog.get("open", 0)) + int(backlog.get("unread", 0))


def desired_workers(backlog: dict[str, int], current: int, cfg: NearlineConfig, low_since: float | None,
                    now: float) -> int:
    """The worker count to run next (see the module docstring); `low_since`: since when the
    backlog has been low enough for `current - 1` workers (None: it is not)."""
    need = math.ceil(pressure(backlog) / cfg.users_per_worker)
    need = min(max(need, cfg.min_workers), cfg.max_workers)
    if need > current:
        return need
    if need < current and low_since is not None and now - low_since >= cfg.scale_down_after_s:
        return current - 1
    return max(min(current, cfg.max_workers), cfg.min_workers)


def low_enough(backlog: dict[str, int], current: int, cfg: NearlineConfig) -> bool:
    """Whether `current - 1` workers would keep up with this backlog."""
    return current > cfg.min_workers and pressure(backlog) <= (current - 1) * cfg.users_per_worker
