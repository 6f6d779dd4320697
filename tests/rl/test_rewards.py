"""The rewards on hand-made cases and against slow per-request references: format (pools,
padding, unknown ids), diversity (leaf and SID keys), ranking (batched and padded groups agree
with one request at a time; no reward reads the target), relevance (the Q2I cosine, 0 without a
query or instruction) and the per-scenario mapping."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oxygen.config import RankerConfig, RewardConfig, RewardParts
from oxygen.data.batching import collate
from oxygen.data.schema import Item, Row
from oxygen.rl.rank_data import RankSpace
from oxygen.rl.rank_fit import build_model
from oxygen.rl.rewards import (
    PARTS,
    DiversityReward,
    FormatReward,
    RankingReward,
    RelevanceReward,
    RewardMapping,
    build_mapping,
    expected_value,
    leaf_keys,
    sid_keys,
)
from tests.worlds import tiny_world


def _row(scenario: str, **kw) -> Row:
    return Row(user_id=kw.pop("user_id", "u1"), history=kw.pop("history", []), target=kw.pop("target", 0),
               scenario=scenario, **kw)


def test_format_reward_pools_padding_and_unknown_scenarios():
    r = FormatReward({"search": [1, 2, 3]}, penalty=-2.0, default=[7])
    rows = [_row("search"), _row("cart")]
    out = r(rows, np.array([[3, 4, -1], [7, 1, 99]]))
    assert out.tolist() == [[1.0, -2.0, -2.0], [1.0, -2.0, -2.0]]
    with pytest.raises(ValueError, match=r"groups must be an integer array \[B, G\]"):
        r(rows, np.array([1, 2]))
    with pytest.raises(ValueError, match="B = len"):
        r(rows, np.zeros((3, 2), dtype=int))


def test_diversity_counts_distinct_keys_per_group():
    items = [Item(item_id=i, categories=["A", "x" if i < 3 else "y"]) for i in range(5)] + [Item(item_id=9)]
    r = DiversityReward([it.item_id for it in items], leaf_keys(items))
    out = r([_row("homepage"), _row("homepage")], np.array([[0, 1, 3, -1], [9, 9, 2, 42]]))
    assert out[0].tolist() == [0.5, 0.5, 1.0, 0.0]
    assert out[1].tolist() == [0.5, 0.5, 1.0, 0.0]  # item 9 has no leaf: its own key; 42 is unknown
    assert out.sum(1).tolist() == [2.0, 2.0]


def test_expected_value_mix():
    from oxygen.config import RankingValue
    probs = np.array([[[0.4, 0.2, 0.1], [0.2, 0.1, 0.05]]])
    v = expected_value(probs, np.array([[10.0, 30.0]]), RankingValue(click=1, cart=2, purchase=3, gmv=4), 10.0)
    np.testing.assert_allclose(v, [[0.4 + 0.4 + 0.3 + 0.4, 0.2 + 0.2 + 0.15 + 0.6]])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("rewards")
    ds = tiny_world(root / "w", root / "s", users=60, seed=3, items=300, days=20)
    return root, ds


@pytest.fixture(scope="module")
def ranker(world):
    _, ds = world
    space = RankSpace.fit(ds.items, ds.splits["train"])
    model = build_model(RankerConfig(d_model=32, heads=4, d_ff=64, layers=1, dropout=0.0, max_events=10), space)
    return model.eval(), space


def test_ranking_reward_batched_equals_one_request_at_a_time(world, ranker):
    _, ds = world
    model, space = ranker
    rows = ds.splits["test"][:6]
    prices = {it.item_id: it.price or 0.0 for it in ds.items}
    r = RankingReward(model, space, prices, RewardConfig().value)
    rng = np.random.default_rng(0)
    groups = rng.choice(300, size=(6, 5))
    groups[1, 3:] = -1  # a shorter group
    out = r(rows, groups)
    assert out[1, 3:].tolist() == [0.0, 0.0]
    for b, row in enumerate(rows):  # slow reference: each request alone, only its real items
        g = groups[b][groups[b] >= 0]
        one = r([row], g[None])
        np.testing.assert_allclose(out[b, :len(g)], one[0], rtol=1e-4, atol=1e-6)
    moved = [row.model_copy(update={"target": (row.target + 1) % 300, "truth": None}) for row in rows]
    np.testing.assert_allclose(r(moved, groups), out, rtol=1e-5)  # the target is never read


def test_ranking_reward_follows_the_ranker(world, ranker):
    """A ranker biased towards one item scores it highest wherever it is generated."""
    _, ds = world
    model, space = ranker
    with torch.no_grad():
        model.head.bias.zero_()
        model.item.weight[space.item_index[5]] += 5.0 * model.head.weight[0] / model.head.weight[0].norm() ** 2
    r = RankingReward(model, space, {it.item_id: 1.0 for it in ds.items}, RewardConfig().value)
    probs = r.probabilities(ds.splits["test"][:4], np.array([[1, 5, 9]] * 4))
    assert probs.shape == (4, 3, 3) and (np.diff(probs, axis=-1) <= 1e-7).all()  # funnel


def test_relevance_is_the_q2i_cosine_and_zero_without_a_query(world):
    from bench.tiny_bundle import catalogue_bundle
    root, ds = world
    bundle = catalogue_bundle(root / "bundle", ds.items)
    search = [r for r in ds.splits["test"] if r.query][:3]
    other = [r for r in ds.splits["test"] if not r.query][:2]
    rows = search + other
    groups = np.array([[1, 2, 3]] * len(rows))
    out = RelevanceReward(bundle)(rows, groups)
    assert (out[len(search):] == 0).all() and (np.abs(out[:len(search)]) > 0).all()
    assert (np.abs(out) <= 1 + 1e-6).all()
    from oxygen.training.prepare import query_lookup
    m = bundle.model.eval()
    for b, row in enumerate(search):  # slow reference: one row, one item at a time
        batch = collate([row], bundle.space, bundle.collate_cfg, query_lookup([row]), with_targets=False)
        with torch.no_grad():
            q = m.conditions(batch).q[0]
            for j, item in enumerate(groups[b]):
                code = torch.as_tensor(bundle.space.codes[bundle.space.index(int(item))])
                v = m.retriever.items(m.embed.item(code[None]))[0]
                assert out[b, j] == pytest.approx(float(q @ v), abs=1e-5)
    vec = np.ones(384, dtype=np.float32) / np.sqrt(384)
    with_instr = RelevanceReward(bundle, instructions=lambda row: vec)(other, groups[:2])
    assert (np.abs(with_instr) > 0).all()


def test_mapping_weighs_parts_per_scenario():
    def const(value):
        return lambda rows, groups: np.full(np.shape(groups), value, dtype=float)
    cfg = RewardConfig(weights={"search": RewardParts(format=1, relevance=2, ranking=0, diversity=0),
                                "cart": RewardParts(format=0, relevance=0, ranking=3, diversity=1)})
    m = RewardMapping({"format": const(1.0), "relevance": const(0.5), "ranking": const(0.1),
                       "diversity": const(0.25)}, cfg)
    out = m([_row("search"), _row("cart"), _row("homepage")], np.zeros((3, 2), dtype=int))
    np.testing.assert_allclose(out.total[:, 0], [1 + 1.0, 0.3 + 0.25, 1 + 0 + 0.1 + 0.025])
    assert set(out.parts) == set(PARTS)
    with pytest.raises(ValueError, match="no such reward was given"):
        RewardMapping({"format": const(1.0)}, cfg)


def test_build_mapping_over_a_catalogue(world, ranker):
    root, ds = world
    from bench.tiny_bundle import catalogue_bundle
    bundle = catalogue_bundle(root / "bundle2", ds.items)
    model, space = ranker
    m = build_mapping(ds.items, bundle, model, space, RewardConfig(diversity_key="sid1"))
    rows = ds.splits["test"][:4]
    out = m(rows, np.array([[0, 1, 2, 2]] * 4))
    assert out.total.shape == (4, 4) and np.isfinite(out.total).all()
    assert {"format", "ranking", "diversity"} <= set(out.parts)
    assert len(set(sid_keys(bundle, 1))) <= 16
    no_models = RewardConfig(weights={s: RewardParts(relevance=0, ranking=0) for s in
                                      ("search", "homepage", "channel", "cart", "checkout")})
    assert set(build_mapping(ds.items, None, None, None, no_models)(rows, np.zeros((4, 2), int)).parts) == {
        "format", "diversity"}
