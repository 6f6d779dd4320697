"""The serving benchmark's pure parts (no Ray): the p99 crossing of the open-loop curve, the
per-stage time budget, the phase summary, the request mix and the logged queries; each checked
against values worked out by hand."""

from __future__ import annotations

import json

import pytest

from bench.load import run_load, summary, time_budget
from bench.serving import QUERIES, crossing, logged_queries, request_mix


def pt(rate: float, p99: float | None) -> dict:
    return {"rate": rate, "p99_ms": p99}


def test_crossing_interpolates_between_the_points_around_the_threshold():
    curve = [pt(10, 20), pt(20, 40), pt(40, 80), pt(60, 200)]
    assert crossing(curve, 50) == 25.0  # 40 -> 80 ms between 20 and 40 req/s: 50 ms at a quarter
    assert crossing(curve, 100) == pytest.approx(40 + 20 * 20 / 120, abs=0.05)


def test_crossing_edges():
    assert crossing([pt(10, 20), pt(20, 30)], 50) == 20  # never crossed: the highest rate tried
    assert crossing([pt(10, 60), pt(20, 90)], 50) is None  # crossed before the lowest rate
    assert crossing([], 50) is None
    assert crossing([pt(10, 20), pt(20, None)], 50) == 10  # no answers at 20 req/s counts as crossed


def test_summary_counts_statuses_and_5xx():
    log = [(0.0, 0.010, 200, {}), (0.1, 0.030, 200, {}), (0.2, 0.020, 422, {}), (0.3, 1.0, 599, {}),
           (0.4, 0.5, 503, {})]
    s = summary(log, seconds=2.0)
    assert s["requests"] == 5 and s["rps"] == 2.5
    assert s["status"] == {"200": 2, "422": 1, "599": 1, "503": 1} and s["errors_5xx"] == 2
    assert s["p50_ms"] == 30.0
    assert summary([], 1.0)["p50_ms"] is None


def test_time_budget_uses_answered_requests_and_derives_the_http_share():
    log = [(0.0, 0.050, 200, {"route": 30.0, "decode": 10.0}),
           (0.1, 0.070, 200, {"route": 40.0, "decode": 20.0}),
           (0.2, 0.500, 503, {"route": 1.0}),  # not answered: not in the budget
           (0.3, 0.090, 200, {})]  # answered without timings (no body): not in the budget either
    tb = time_budget(log)
    assert set(tb) == {"route", "decode", "http", "client_total"}
    assert tb["http"]["p50"] == pytest.approx(25.0)  # (50-30, 70-40) -> median 25
    assert tb["client_total"]["p50"] == pytest.approx(60.0)
    assert tb["decode"]["p99"] == pytest.approx(10 + 0.99 * 10)


def test_request_mix_carries_what_each_scenario_needs():
    bodies = request_mix(["a", "b"], [7, 8], 40, ["q1"], seed=3)
    assert len(bodies) == 40 and bodies == request_mix(["a", "b"], [7, 8], 40, ["q1"], seed=3)
    for b in bodies:
        assert b["user_id"] in ("a", "b") and b["k"] == 10
        assert (b.get("query") == "q1") == (b["scenario"] == "search")
        assert ("trigger_item" in b) == (b["scenario"] in ("channel", "cart"))
        assert b.get("trigger_item", 7) in (7, 8)
    assert {b["scenario"] for b in bodies} == {"search", "homepage", "channel", "cart"}


def test_logged_queries_keep_repeats_and_fall_back(tmp_path):
    assert logged_queries(None) == QUERIES and logged_queries(tmp_path) == QUERIES
    rows = [{"query": "usb"}, {"query": None}, {"query": "usb"}, {"item": 3}, {"query": "mouse"}]
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert logged_queries(tmp_path) == ["usb", "usb", "mouse"]


def test_run_load_refuses_an_unknown_mode():
    with pytest.raises(ValueError, match="closed.*open"):
        run_load("http://127.0.0.1:1", [], mode="burst")
