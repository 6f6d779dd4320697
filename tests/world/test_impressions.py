"""Logged impressions (impressions.jsonl): determinism, independence from the other files, the
event's item in its list, the chronological split, outcomes drawn from the feedback model, and
validation of bad records."""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import numpy as np
import pytest

from apps.world import main as world_main
from oxygen.data.io import DataError, load_dataset, load_impressions
from oxygen.world.world import World

TINY = ["--items", "600", "--users", "150", "--days", "30", "--seed", "4", "--quiet"]


def test_same_seed_same_bytes_and_rows_do_not_depend_on_impressions(tmp_path: Path):
    world_main(["--out", str(tmp_path / "a"), *TINY])
    world_main(["--out", str(tmp_path / "b"), *TINY])
    world_main(["--out", str(tmp_path / "none"), *TINY, "--set", "impression_rate=0"])
    assert filecmp.cmp(tmp_path / "a" / "impressions.jsonl", tmp_path / "b" / "impressions.jsonl", shallow=False)
    for f in ("items.jsonl", "train.jsonl", "valid.jsonl", "test.jsonl"):
        assert filecmp.cmp(tmp_path / "a" / f, tmp_path / "none" / f, shallow=False), f
    assert (tmp_path / "none" / "impressions.jsonl").read_text() == ""


def test_every_list_holds_its_event_with_the_event_behaviour(world_dir: Path):
    ds = load_dataset(world_dir)
    rows = {(r.user_id, r.timestamp): r for s in ds.splits.values() for r in s}
    imps = load_impressions(world_dir, known_items=set(ds.item_ids))
    rate = json.loads((world_dir / "world.json").read_text())["args"]["impression_rate"]
    assert abs(len(imps) / len(rows) - rate) < 0.03
    depth = {"click": (1, 0, 0), "cart": (1, 1, 0), "purchase": (1, 1, 1)}
    for imp in imps:
        row = rows[(imp.user_id, imp.timestamp)]
        p = imp.event_position
        assert imp.items[p] == row.target and imp.scenario == row.scenario
        assert (imp.clicks[p], imp.carts[p], imp.purchases[p]) == depth[row.behaviour]
        assert imp.trigger == row.trigger and imp.query == row.query
        others = imp.items[:p] + imp.items[p + 1:]
        assert len(imp.items) == 10 and imp.trigger not in others  # the policy never re-shows the trigger


def test_split_is_chronological_like_the_rows(world_dir: Path):
    dates = json.loads((world_dir / "world.json").read_text())["dates"]
    imps = load_impressions(world_dir)
    assert {i.split for i in imps} == {"train", "valid", "test"}
    for imp in imps:
        lo, hi = dates[imp.split]
        assert lo <= imp.date <= hi
    only_test = load_impressions(world_dir, splits=("test",))
    assert only_test and all(i.split == "test" for i in only_test)


def test_other_items_outcomes_follow_the_feedback_model(world_dir: Path, world: World):
    """Slow reference: the shown non-event items' click / purchase counts match the feedback
    model's probabilities (sum of Bernoullis, within 4 standard deviations)."""
    uid = {world.users.user_id(u): u for u in range(world.users.n)}
    clicks = purchases = 0
    p_sum, p_var, q_sum, q_var = 0.0, 0.0, 0.0, 0.0
    for imp in load_impressions(world_dir)[:3000]:
        others = [k for k in range(len(imp.items)) if k != imp.event_position]
        p = world.feedback.probabilities(uid[imp.user_id], imp.date, imp.scenario, imp.trigger,
                                         np.array([imp.items[k] for k in others]), imp.query)
        clicks += sum(imp.clicks[k] for k in others)
        purchases += sum(imp.purchases[k] for k in others)
        p_sum, p_var = p_sum + p[:, 0].sum(), p_var + (p[:, 0] * (1 - p[:, 0])).sum()
        q_sum, q_var = q_sum + p[:, 2].sum(), q_var + (p[:, 2] * (1 - p[:, 2])).sum()
    assert abs(clicks - p_sum) < 4 * np.sqrt(p_var)
    assert abs(purchases - q_sum) < 4 * np.sqrt(q_var)


def test_the_logging_policy_mixes_its_sources(world_dir: Path, world: World):
    """Cart lists carry complements of the trigger, search lists items the query names."""
    comp_share, match_share = [], []
    for imp in load_impressions(world_dir):
        others = [i for k, i in enumerate(imp.items) if k != imp.event_position]
        leaves = world.catalogue.leaf[others]
        if imp.scenario == "cart":
            comp = world.kb.complement[world.catalogue.leaf[imp.trigger]]
            comp_share.append(np.mean(comp[leaves] > 0))
        if imp.scenario == "search":
            match_share.append(np.mean(world.feedback.matcher.scores(imp.query)[leaves] > 0))
    assert 0.2 < np.mean(comp_share) < 0.9 and 0.2 < np.mean(match_share) < 0.9


@pytest.mark.parametrize("change, field", [
    ({"purchases": [1, 0]}, "outcomes must be nested"),
    ({"prices": [1.0]}, "prices has 1 entries"),
    ({"items": [3, 3]}, "distinct"),
    ({"event_position": 5}, "outside the list"),
    ({"split": "later"}, "split"),
])
def test_bad_impressions_name_the_line_and_what_to_fix(tmp_path: Path, change: dict, field: str):
    good = {"request_id": "u1-0", "user_id": "u1", "split": "train", "scenario": "homepage", "timestamp": 1,
            "date": "2025-10-01", "items": [3, 4], "prices": [1.0, 2.0], "event_position": 0,
            "clicks": [1, 0], "carts": [0, 0], "purchases": [0, 0]}
    lines = [json.dumps(good), json.dumps({**good, **change})]
    (tmp_path / "impressions.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=field) as e:
        load_impressions(tmp_path)
    assert ":2:" in str(e.value)


def test_missing_or_unknown_items_are_clear_errors(tmp_path: Path):
    with pytest.raises(DataError, match="sampled negatives"):
        load_impressions(tmp_path)
    rec = {"request_id": "u1-0", "user_id": "u1", "split": "train", "scenario": "homepage", "timestamp": 1,
           "date": "2025-10-01", "items": [3, 99], "prices": [1.0, 2.0], "clicks": [1, 0], "carts": [0, 0],
           "purchases": [0, 0]}
    (tmp_path / "impressions.jsonl").write_text(json.dumps(rec) + "\n")
    with pytest.raises(DataError, match="item id 99 is not in items.jsonl"):
        load_impressions(tmp_path, known_items={3, 4})
