"""Rows -> states -> instructions -> records: `row_states` sees nothing at or after each row,
`end_states` gives one state per user right after their last row, the teacher's pairs are the
prompts it answered in parseable JSON, and `apps.instructions generate` writes one record per
user (and embedded records to Redis with --store)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from apps import instructions as instructions_app
from apps import world as world_app
from oxygen.data.io import load_dataset
from oxygen.eval.ranking import eval_split
from oxygen.instructions.backends.knowledge import KnowledgeBackend
from oxygen.instructions.branches import parse
from oxygen.instructions.pipeline import after, branch_of, calendar_states, end_states, query_log, row_states, stp_pairs, teacher_pairs
from oxygen.instructions.prompts import stp_prompt


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("world")
    world_app.main(["--out", str(d), "--items", "300", "--users", "60", "--days", "20", "--seed", "4", "--quiet"])
    ds = load_dataset(d)
    rows = [r for s in ("train", "valid", "test") for r in ds.splits[s]]
    return d, ds, rows, {it.item_id: it for it in ds.items}


def test_row_states_hold_only_the_past(world):
    _, _, rows, items = world
    queries = query_log(rows)
    for r, s in zip(rows[:200], row_states(rows[:200], items, queries)):
        assert s.at == r.timestamp
        assert all(e.ts < r.timestamp for e in s.events if e.ts is not None)
        assert all(ts < r.timestamp for ts, _ in s.queries if ts is not None)
        assert r.query is None or all(q != r.query or ts < r.timestamp for ts, q in s.queries)


def test_end_states_follow_each_users_last_row(world):
    _, _, rows, items = world
    states = end_states(rows, items, query_log(rows))
    assert len(states) == len({r.user_id for r in rows})
    last = {}
    for r in rows:
        if r.user_id not in last or r.timestamp >= last[r.user_id].timestamp:
            last[r.user_id] = r
    for s in states:
        r = last[s.user_id]
        assert s.at == r.timestamp + 1 and s.events[-1].item_id == r.target  # its own last event is in


def test_after_keeps_per_history_lists_aligned(world):
    r = world[2][-1]
    a = after(r)
    assert a.history[-1] == r.target and len(a.history_timestamps) == len(a.history) == len(a.history_scenarios)
    assert a.history_timestamps[-1] == r.timestamp and a.timestamp == r.timestamp + 1


def test_teacher_pairs_are_parseable_answers(world):
    _, _, rows, items = world
    pairs, stats = teacher_pairs(row_states(rows[:80], items, query_log(rows)), KnowledgeBackend(coverage=1.0))
    assert pairs and stats["users"] == 80
    assert {branch_of(p) for p, _ in pairs} == {"stp", "rewrite", "intent"}
    assert all(parse(branch_of(p), c) is not None for p, c in pairs)
    assert len({p for p, _ in pairs if branch_of(p) == "stp"}) == sum(branch_of(p) == "stp" for p, _ in pairs)


def test_calendar_states_cover_the_span_and_the_days_ahead_with_seen_places_and_weather(world):
    _, _, rows, items = world
    states = row_states(rows[:120], items, query_log(rows))
    days = sorted(s.date for s in states)
    cal = calendar_states(states, 400, ahead_days=30, seed=1)
    assert len(cal) == 400 and cal == calendar_states(states, 400, ahead_days=30, seed=1)
    last = dt.date.fromisoformat(days[-1]) + dt.timedelta(days=30)
    assert all(days[0] <= s.date <= last.isoformat() for s in cal)
    assert any(s.date > days[-1] for s in cal)  # the days ahead are covered
    seen = {(s.city, s.persona, s.family_stage) for s in states}
    weather = {(s.city, s.weather) for s in states}
    assert all((s.city, s.persona, s.family_stage) in seen and (s.city, s.weather) in weather for s in cal)
    assert all(s.events == [] and s.queries == [] for s in cal)
    assert calendar_states(states, 0, 30) == [] and calendar_states([], 10, 30) == []


def test_stp_pairs_are_one_parseable_answer_per_distinct_prompt(world):
    _, _, rows, items = world
    cal = calendar_states(row_states(rows[:60], items, query_log(rows)), 200, ahead_days=30)
    pairs = stp_pairs(cal + cal[:20], KnowledgeBackend(coverage=1.0))
    assert [p for p, _ in pairs] == list(dict.fromkeys(stp_prompt(s) for s in cal))
    assert all(branch_of(p) == "stp" and parse("stp", c) is not None for p, c in pairs)


def test_generate_command_writes_one_record_per_user(world, tmp_path):
    d, _, rows, _ = world
    out = instructions_app.main(["generate", "--data", str(d), "--backend", "knowledge", "--out", str(tmp_path / "i.jsonl")])
    recs = [json.loads(line) for line in (tmp_path / "i.jsonl").read_text().splitlines()]
    assert out["records"] == len(recs) > 0.9 * len({r.user_id for r in rows})
    assert all(r["text"] and r["reasons"] and r["backend"] == "knowledge" for r in recs)
    assert len({r["user_id"] for r in recs}) == len(recs)


def test_per_row_records_of_chosen_splits_and_scenarios_equal_the_full_runs(world, tmp_path):
    """`--splits` / `--scenarios` write records only for those rows, each the record a full
    `--per-row` run writes for it (the recent queries still come from every row)."""
    d, ds, _, _ = world
    full, part = tmp_path / "all.jsonl", tmp_path / "part.jsonl"
    instructions_app.main(["generate", "--data", str(d), "--backend", "knowledge", "--per-row", "--out", str(full)])
    instructions_app.main(["generate", "--data", str(d), "--backend", "knowledge", "--per-row", "--splits", "valid",
                           "test", "--scenarios", "homepage", "search", "--out", str(part)])
    key = lambda r: (r["user_id"], r["at"])  # noqa: E731
    every = {key(r): r["text"] for r in map(json.loads, full.read_text().splitlines())}
    some = [json.loads(line) for line in part.read_text().splitlines()]
    wanted = {(r.user_id, r.timestamp) for s in ("valid", "test") for r in ds.splits[s] if r.scenario in ("homepage", "search")}
    assert {key(r) for r in some} == wanted & set(every) and 0 < len(some) < len(every)  # a row with no usable branch has none
    assert all(every[key(r)] == r["text"] for r in some)
    sample = tmp_path / "sample.jsonl"  # --max-rows: the fixed sample an evaluation with --max-rows reads
    instructions_app.main(["generate", "--data", str(d), "--backend", "knowledge", "--per-row", "--splits", "valid",
                           "test", "--scenarios", "homepage", "--max-rows", "5", "--out", str(sample)])
    picked = {(r.user_id, r.timestamp) for s in ("valid", "test")
              for r in eval_split([r for r in ds.splits[s] if r.scenario == "homepage"], 5)}
    assert {key(r) for r in map(json.loads, sample.read_text().splitlines())} == picked & set(every) and 5 < len(picked) <= 10


def test_unknown_backend_or_missing_model_is_a_clear_error(world, tmp_path):
    from oxygen.instructions.backends import BackendError, make_backend
    with pytest.raises(BackendError, match="unknown instruction backend"):
        make_backend("gpt")
    with pytest.raises(BackendError, match="needs --model"):
        make_backend("vllm")
