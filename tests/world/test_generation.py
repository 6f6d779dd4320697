"""The generated dataset folder: schema, determinism, scenario semantics, deductive context events,
calibrated difficulty, chronological split, and rebuilding the world from the folder."""

from __future__ import annotations

import collections
import datetime as dt
import filecmp
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from apps.world import main as world_main
from oxygen.data.io import load_dataset
from oxygen.world.text import QueryMatcher
from oxygen.world.world import World

FILES = ("items.jsonl", "train.jsonl", "valid.jsonl", "test.jsonl", "users.jsonl", "impressions.jsonl", "world.json")
TINY = ["--items", "600", "--users", "150", "--days", "30", "--quiet"]


def _all(split_rows: dict[str, list[dict]]) -> list[dict]:
    return [r for s in ("train", "valid", "test") for r in split_rows[s]]


def test_loads_with_load_dataset(world_dir: Path):
    ds = load_dataset(world_dir)
    assert len(ds.items) == 3000 and set(ds.splits) == {"train", "valid", "test"}
    row = ds.splits["test"][0]
    for field in ("scenario", "behaviour", "timestamp", "context", "profile", "history_behaviours",
                  "history_scenarios", "history_timestamps", "truth"):
        assert getattr(row, field) is not None, field
    assert all(it.title and it.categories and it.brand and it.price for it in ds.items)


def test_same_seed_identical_other_seed_different(tmp_path: Path):
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        world_main(["--out", str(tmp_path / name), "--seed", seed, *TINY])
    for f in FILES:
        assert filecmp.cmp(tmp_path / "a" / f, tmp_path / "b" / f, shallow=False), f
    assert not filecmp.cmp(tmp_path / "a" / "train.jsonl", tmp_path / "c" / "train.jsonl", shallow=False)
    assert not filecmp.cmp(tmp_path / "a" / "items.jsonl", tmp_path / "c" / "items.jsonl", shallow=False)


def test_history_is_previous_events(split_rows: dict[str, list[dict]], world_dir: Path):
    by_user: dict[str, list[dict]] = collections.defaultdict(list)
    for r in _all(split_rows):
        by_user[r["user_id"]].append(r)
    cap = json.loads((world_dir / "world.json").read_text())["args"]["max_history"]
    for rows in list(by_user.values())[:200]:
        rows.sort(key=lambda r: r["timestamp"])
        for i, r in enumerate(rows):
            prev = rows[max(0, i - cap):i]
            assert r["history"] == [p["target"] for p in prev]
            assert r["history_scenarios"] == [p["scenario"] for p in prev]
            assert r["history_behaviours"] == [p["behaviour"] for p in prev]
            assert r["history_timestamps"] == [p["timestamp"] for p in prev]
    assert max(len(r["history"]) for r in _all(split_rows)) == cap


def test_chronological_split(split_rows: dict[str, list[dict]]):
    dates = {s: sorted(r["context"]["date"] for r in rows) for s, rows in split_rows.items()}
    assert dates["train"][-1] < dates["valid"][0] <= dates["valid"][-1] < dates["test"][0]
    n = {s: len(v) for s, v in split_rows.items()}
    assert n["train"] > 5 * n["test"] > 0 and n["valid"] > 0


def test_scenarios_and_funnel_present(split_rows: dict[str, list[dict]]):
    rows = _all(split_rows)
    scen = collections.Counter(r["scenario"] for r in rows)
    assert set(scen) == {"search", "homepage", "channel", "cart", "checkout"}
    assert min(scen.values()) > 0.03 * len(rows)
    beh = collections.Counter(r["behaviour"] for r in rows)
    assert beh["click"] > beh["purchase"] > 0 and beh["cart"] > 0
    reasons = collections.Counter(r["truth"]["reason"] for r in rows)
    assert set(reasons) == {"interest", "context", "complement", "search", "channel", "popular"}


def test_cart_checkout_targets_are_complements(world: World, split_rows: dict[str, list[dict]]):
    kb, leaf = world.kb, world.catalogue.leaf
    rows = [r for r in _all(split_rows) if r["scenario"] in ("cart", "checkout")]
    assert rows
    for r in rows:
        t, g = leaf[r["trigger"]], leaf[r["target"]]
        assert t != g and kb.complement[t, g] > 0
        assert r["truth"] == {"reason": "complement", "need": kb.leaves[g]}
        assert r["trigger"] in r["history"][-3:]  # the cart item was just interacted with


def test_channel_targets_near_trigger(world: World, split_rows: dict[str, list[dict]]):
    kb, leaf = world.kb, world.catalogue.leaf
    rows = [r for r in _all(split_rows) if r["scenario"] == "channel"]
    assert rows
    same = 0
    for r in rows:
        t, g = leaf[r["trigger"]], leaf[r["target"]]
        assert kb.leaf_mid[t] == kb.leaf_mid[g]
        same += t == g
    assert 0.2 < same / len(rows) < 0.9
    assert all("trigger" not in r for r in _all(split_rows) if r["scenario"] in ("homepage", "search"))


def test_search_targets_match_noisy_queries(world: World, split_rows: dict[str, list[dict]], item_leaf):
    rows = [r for r in _all(split_rows) if r["scenario"] == "search"]
    matcher = QueryMatcher(world.kb)
    clean = {w.lower() for words in world.kb.leaf_words for w in words}
    found, noisy = [], []
    for r in rows:
        assert r["truth"]["need"] == item_leaf[r["target"]] and r["query"]
        s = matcher.scores(r["query"])
        found.append(s[world.kb.leaves.index(r["truth"]["need"])] > 0)
        noisy.append(r["query"] not in clean)
    assert np.mean(found) > 0.8  # related to the intent
    assert 0.2 < np.mean(noisy) < 0.9  # but often noisy or decorated


def _diagnostics(world_dir: Path) -> dict:
    return json.loads((world_dir / "world.json").read_text())["diagnostics"]


def test_context_needs_are_deductive(split_rows: dict[str, list[dict]], item_leaf, world_dir: Path):
    seen: dict[str, set[str]] = collections.defaultdict(set)
    ctx = absent = 0
    for r in sorted(_all(split_rows), key=lambda r: (r["user_id"], r["timestamp"])):
        if r["truth"]["reason"] == "context":
            ctx += 1
            absent += r["truth"]["need"] not in seen[r["user_id"]]
            assert item_leaf[r["target"]] == r["truth"]["need"]
        seen[r["user_id"]].add(item_leaf[r["target"]])
    assert ctx > 0.05 * len(_all(split_rows))
    assert absent / ctx >= 0.7
    assert _diagnostics(world_dir)["context_need_absent_from_history"] == round(absent / ctx, 4)


def test_popularity_baseline_is_weak(split_rows: dict[str, list[dict]], world_dir: Path):
    top10 = {i for i, _ in collections.Counter(r["target"] for r in split_rows["train"]).most_common(10)}
    hr = np.mean([r["target"] in top10 for r in split_rows["test"]])
    assert hr < 0.05
    assert _diagnostics(world_dir)["test_hr10_popularity"]["all"] == round(float(hr), 4)


def test_a_leaf_aware_model_can_do_well(split_rows: dict[str, list[dict]], item_leaf, world_dir: Path):
    """Knowing the needed leaf and in-leaf popularity is enough for a high hit rate: the task is
    learnable, not noise."""
    per_leaf: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for r in split_rows["train"]:
        per_leaf[item_leaf[r["target"]]][r["target"]] += 1
    rows = [r for r in split_rows["test"] if r["truth"].get("need")]
    hr = np.mean([r["target"] in {i for i, _ in per_leaf[r["truth"]["need"]].most_common(10)} for r in rows])
    assert 0.2 < hr < 0.95
    assert abs(_diagnostics(world_dir)["test_hr10_leaf_aware"]["all"] - hr) < 0.05  # popular rows differ


def test_world_json_users_and_reload(world_dir: Path, world: World, split_rows):
    meta = json.loads((world_dir / "world.json").read_text())
    assert meta["seed"] == 7 and meta["counts"]["items"] == 3000 and meta["kb_version"] == world.kb.version
    assert meta["counts"]["events"] == sum(len(v) for v in split_rows.values())
    users = [json.loads(l) for l in (world_dir / "users.jsonl").open()]
    assert len(users) == 800 and users[5]["user_id"] == world.users.user_id(5)
    r = split_rows["test"][0]
    u = int(r["user_id"][1:])
    assert r["profile"] == world.users.profile(u)
    assert r["context"]["date"] == world.calendar.date(world.calendar.day_of(r["context"]["date"])).isoformat()
    assert dt.date.fromisoformat(meta["dates"]["test"][1]) == world.calendar.date(59)


def test_load_rejects_other_folders(tmp_path: Path):
    import pytest
    with pytest.raises(FileNotFoundError, match="world.json"):
        World.load(tmp_path)
    (tmp_path / "world.json").write_text(json.dumps({"version": 1, "kb_version": "old", "args": {}}))
    with pytest.raises(ValueError, match="regenerate"):
        World.load(tmp_path)


def test_cli_help():
    out = subprocess.run([sys.executable, "-m", "apps.world", "--help"], capture_output=True, text=True, check=False,
                         cwd=Path(__file__).resolve().parents[2], timeout=60)
    assert out.returncode == 0 and "--items" in out.stdout and "--max-history" in out.stdout
