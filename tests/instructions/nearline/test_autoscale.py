"""The autoscaling decision: up at once with the backlog (within the bounds), down one worker at a
time and only after the backlog stayed low for scale_down_after_s."""

from __future__ import annotations

from oxygen.config import NearlineConfig
from oxygen.instructions.nearline.autoscale import desired_workers, low_enough, pressure

CFG = NearlineConfig(min_workers=1, max_workers=4, users_per_worker=100, scale_down_after_s=10)


def test_pressure_counts_open_windows_and_unread_events():
    assert pressure({"due": 30, "unread": 12, "pending": 500, "open": 90}) == 102


def test_scales_up_at_once_within_the_bounds():
    assert desired_workers({"open": 250}, current=1, cfg=CFG, low_since=None, now=0) == 3
    assert desired_workers({"open": 10_000}, current=1, cfg=CFG, low_since=None, now=0) == 4
    assert desired_workers({}, current=0, cfg=CFG, low_since=None, now=0) == 1  # never below min


def test_scales_down_one_at_a_time_after_the_quiet_period():
    idle = {"open": 0, "unread": 0}
    assert low_enough(idle, 4, CFG) and not low_enough(idle, 1, CFG)
    assert desired_workers(idle, current=4, cfg=CFG, low_since=100, now=105) == 4  # not quiet long enough
    assert desired_workers(idle, current=4, cfg=CFG, low_since=100, now=110) == 3
    assert desired_workers(idle, current=4, cfg=CFG, low_since=None, now=500) == 4
    assert not low_enough({"open": 250}, 3, CFG) and low_enough({"open": 150}, 3, CFG)
