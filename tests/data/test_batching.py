"""Collation: windows, alignment of per-item features, profiles, triggers, instructions, weights."""

from __future__ import annotations

import numpy as np
import pytest

from oxygen.data.batching import CollateConfig, FeatureSpace, collate
from oxygen.data.schema import Row


def _space() -> FeatureSpace:
    ids = [10, 11, 12, 13, 14, 15]
    codes = np.array([[i, i + 1, i + 2] for i in range(6)])
    rows = [Row(user_id="a", history=[10], target=11, profile={"city": "Harbin", "age_band": "25-34"})]
    return FeatureSpace.build(ids, codes, rows)


def test_short_and_long_windows():
    space = _space()
    row = Row(user_id="u", history=[10, 11, 12, 13, 14], target=15, behaviour="click",
              history_behaviours=["click", "cart", "purchase", "click", "click"],
              history_scenarios=["search", "homepage", "channel", "cart", "checkout"])
    b = collate([row], space, CollateConfig(short_len=3, long_len=4))
    # short window = last three items, right-aligned; long = the two before it, left-aligned
    assert b.short_items.tolist() == [[3, 4, 5]] and b.short_mask.all()
    assert b.long_items.tolist() == [[1, 2, 0, 0]] and b.long_mask.tolist() == [[True, True, False, False]]
    assert b.short_codes[0, 0].tolist() == [2, 3, 4]
    assert b.short_behaviour.tolist() == [[3, 1, 1]] and b.long_scenario.tolist() == [[1, 2, 0, 0]]
    assert b.target_codes.tolist() == [[5, 6, 7]] and b.weight.tolist() == [1.0]


def test_profile_trigger_instruction_and_defaults():
    space = _space()
    rows = [Row(user_id="a", history=[10], target=11, scenario="cart", trigger=13, behaviour="purchase",
                profile={"city": "Harbin", "age_band": "60+"}),
            Row(user_id="b", history=[], target=12, scenario="search", query="ink")]
    lookup = lambda r: np.full(384, 0.5, dtype=np.float32) if r.query else None  # noqa: E731
    b = collate(rows, space, lookup=lookup)
    assert b.trigger_mask.tolist() == [True, False] and b.trigger_codes[0].tolist() == [3, 4, 5]
    assert b.instr_mask.tolist() == [False, True] and float(b.instr_emb[1, 0]) == 0.5
    city = space.profile_vocab[("city", "Harbin")]
    assert city in b.profile[0].tolist() and 0 in b.profile[0].tolist()  # unseen "60+" -> 0
    assert b.weight.tolist() == [3.0, 3.0] and not b.short_mask[1].any()
    assert len(b.select(np.array([1]))) == 1


def test_history_trigger_fills_only_missing_triggers():
    space = _space()
    rows = [Row(user_id="a", history=[10, 12], target=11),                 # no trigger -> last item 12
            Row(user_id="b", history=[10], target=11, scenario="cart", trigger=14),  # own trigger kept
            Row(user_id="c", history=[], target=12)]                        # nothing to take
    off = collate(rows, space)
    on = collate(rows, space, CollateConfig(history_trigger=True))
    assert off.trigger_mask.tolist() == [False, True, False]
    assert on.trigger_mask.tolist() == [True, True, False]
    assert on.trigger_codes[0].tolist() == [2, 3, 4] and on.trigger_codes[1].tolist() == [4, 5, 6]


def test_unknown_item_and_bad_codes_fail_clearly():
    space = _space()
    with pytest.raises(KeyError, match="rebuild SIDs"):
        collate([Row(user_id="u", history=[99], target=10)], space)
    with pytest.raises(ValueError, match="aligned with item_ids"):
        FeatureSpace.build([1, 2], np.zeros((3, 3)), [])


def test_inference_batch_has_no_targets():
    b = collate([Row(user_id="u", history=[10], target=11)], _space(), with_targets=False)
    assert b.target_items.tolist() == [-1]


def test_candidates_from_transitions_with_leave_user_out():
    ids = [10, 11, 12, 13, 14, 15]
    codes = np.array([[i, i + 1, i + 2] for i in range(6)])
    train = [Row(user_id="a", history=[10], target=11), Row(user_id="b", history=[10], target=12),
             Row(user_id="b", history=[10, 12], target=13)]
    space = FeatureSpace.build(ids, codes, train, transitions=True)
    cfg = CollateConfig(candidates=3)
    b = collate(train[:1], space, cfg)
    assert b.cand_mask.tolist() == [[True, True, False]]  # 10 -> {11, 12}, ties by item id
    assert b.cand_items.tolist() == [[2, 3, 0]] and b.cand_codes[0, 1].tolist() == [2, 3, 4]
    out = collate(train[:1], space, cfg, leave_user_out=True)
    assert out.cand_items.tolist() == [[3, 0, 0]]  # user a's own 10 -> 11 is not counted
    assert collate(train[:1], space).cand_mask.shape == (1, 0)
    with pytest.raises(ValueError, match="transitions=True"):
        collate(train[:1], _space(), cfg)


def test_item_indices_match_a_dict_reference():
    """FeatureSpace.indices (binary search over the ids, no per-item dict) = a dict lookup."""
    rng = np.random.default_rng(2)
    ids = rng.permutation(10 ** 6)[:300]
    space = FeatureSpace(ids, rng.integers(0, 8, (300, 3)), {})
    ref = {int(i): n for n, i in enumerate(ids)}
    probe = ids[rng.integers(0, 300, 50)]
    assert space.indices(probe).tolist() == [ref[int(i)] for i in probe]
    assert space.indices([]).tolist() == [] and space.index(int(ids[7])) == 7
    with pytest.raises(KeyError, match=f"item {int(ids.max()) + 1} has no semantic id"):
        space.indices([int(ids[0]), int(ids.max()) + 1])
