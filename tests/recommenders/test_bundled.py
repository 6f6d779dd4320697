"""BundleRecommender on a random-weight bundle over a tiny world's catalogue: every row decoded in
its scenario's pool (the whole catalogue for scenarios the bundle lacks), the same lists as the
bundle's own decode path, fit a no-op."""

from __future__ import annotations

import numpy as np
import pytest

from bench.tiny_bundle import catalogue_bundle
from oxygen.data.batching import collate
from oxygen.model.bundle import Bundle, ScenarioSpec
from oxygen.recommenders.bundled import BundleRecommender
from oxygen.training.prepare import query_lookup
from tests.worlds import tiny_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """(dataset, bundle with cart and search pools only) of a tiny world."""
    root = tmp_path_factory.mktemp("bundled")
    ds = tiny_world(root / "w", root / "s", users=200, seed=1, items=300, days=20)
    b = catalogue_bundle(root / "b", ds.items)
    ids = sorted(ds.item_ids)
    b.scenarios = {"cart": ScenarioSpec(ids[:40], True), "search": ScenarioSpec(ids[40:140], False)}
    return ds, b


def test_rows_decode_in_their_scenario_pool(world):
    ds, b = world
    rows = ds.splits["test"]
    rec = BundleRecommender(b, beam=12, progress=False)
    assert rec.fit(ds.splits["train"], ds.splits["valid"], ds.items) is rec and rec.reads_queries
    out = rec.recommend(rows, 5)
    assert out.shape == (len(rows), 5) and out.dtype == np.int64
    catalogue = set(ds.item_ids)
    for r, items in zip(rows, out):
        got = [int(i) for i in items if i >= 0]
        assert len(got) == len(set(got)) and got
        pool = set(b.scenarios[r.scenario].pool) if r.scenario in b.scenarios else catalogue
        assert set(got) <= pool
    assert {r.scenario for r in rows} - set(b.scenarios), "the world should have rows outside the bundle's pools"
    assert rec.num_params() == b.model.num_parameters > 0


def test_lists_are_the_bundle_decode_path(world):
    ds, b = world
    rows = [r for r in ds.splits["test"] if r.scenario in b.scenarios]
    lookup = query_lookup(rows)
    batch = collate(rows, b.space, b.collate_cfg, lookup, with_targets=False)
    want = b.decoder().decode(batch, [r.history for r in rows], 12, 5, [r.scenario for r in rows]).items
    assert (BundleRecommender(b, beam=12, progress=False).recommend(rows, 5) == want).all()


def test_decode_gives_the_decode_paths_scores(world):
    ds, b = world
    rows = [r for r in ds.splits["test"] if r.scenario in b.scenarios]
    batch = collate(rows, b.space, b.collate_cfg, query_lookup(rows), with_targets=False)
    want = b.decoder().decode(batch, [r.history for r in rows], 12, 5, [r.scenario for r in rows])
    got = BundleRecommender(b, beam=12, progress=False).decode(rows, 5)
    assert (got.items == want.items).all()
    np.testing.assert_allclose(got.scores, want.scores, rtol=1e-6)
    assert (np.diff(got.scores, axis=1) <= 1e-6).all(), "scores come best first"
    alone = b.decoder().beam(batch, 12, 5, [r.scenario for r in rows])
    got = BundleRecommender(b, beam=12, progress=False).decode(rows, 5, mixture=False)
    assert (got.items == alone[0]).all()
    np.testing.assert_allclose(got.scores, alone[1], rtol=1e-6)


def test_loads_a_bundle_folder(world, tmp_path):
    ds, b = world
    b.save(tmp_path / "b")
    rec = BundleRecommender(tmp_path / "b", queries=False, progress=False)
    assert isinstance(rec.bundle, Bundle) and not rec.reads_queries
    assert rec.recommend(ds.splits["test"][:3], 4).shape == (3, 4)
    with pytest.raises(FileNotFoundError, match="not a bundle folder"):
        BundleRecommender(tmp_path / "missing")


def test_generated_instructions_carry_their_gates_into_gated_guidance(world):
    """Per-row records with open needs (row_gates) reach the decoder: with the cart weight gated,
    gated rows come back as the guided decode path's lists, the others as the plain one's."""
    from dataclasses import replace

    from oxygen.instructions.pipeline import row_gates
    from oxygen.training.prepare import RowInstructions, instruction_lookup

    ds, b = world
    rows = [r for r in ds.splits["test"] if r.scenario == "cart"][:12]
    rng = np.random.default_rng(0)
    records = [{"user_id": r.user_id, "at": r.timestamp, "open_needs": int(n % 3)} for n, r in enumerate(rows)]
    gen = RowInstructions({(r.user_id, r.timestamp): rng.standard_normal(384).astype(np.float32) for r in rows},
                          frozenset({"cart"}), gates=row_gates(records))
    assert [gen.gate(r) for r in rows] == [n % 3 > 0 for n in range(len(rows))]
    guided = replace(b, guidance={"cart": 2.0}, guidance_gated=frozenset({"cart"}))
    got = BundleRecommender(guided, beam=12, queries=False, generated=gen, progress=False).recommend(rows, 5)
    batch = collate(rows, b.space, b.collate_cfg, instruction_lookup(None, gen), with_targets=False)
    hist, pools = [r.history for r in rows], ["cart"] * len(rows)
    plain = b.decoder().decode(batch, hist, 12, 5, pools).items
    every = replace(b, guidance={"cart": 2.0}).decoder().decode(batch, hist, 12, 5, pools).items
    for n in range(len(rows)):
        assert got[n].tolist() == (every if gen.gate(rows[n]) else plain)[n].tolist(), n
    assert (plain != every).any()


def test_generated_instructions_carry_their_open_needs_into_need_slots(world):
    """Per-row records' open need categories (row_needs) reach the decoder: with two cart need
    slots, each row's list is the decode path's with those needs."""
    from dataclasses import replace

    from oxygen.instructions.pipeline import row_needs
    from oxygen.training.prepare import RowInstructions, instruction_lookup

    ds, b = world
    rows = [r for r in ds.splits["test"] if r.scenario == "cart"][:12]
    cats = {it.item_id: it.categories[-1] for it in ds.items}
    names = sorted(set(cats.values()))
    records = [{"user_id": r.user_id, "at": r.timestamp, "open_categories": names[n % 5: n % 5 + 3] if n % 4 else None}
               for n, r in enumerate(rows)]
    gen = RowInstructions({}, frozenset({"cart"}), needs=row_needs(records))
    slotted = replace(b, need_slots={"cart": 2}, categories=cats)
    got = BundleRecommender(slotted, beam=12, queries=False, generated=gen, progress=False).recommend(rows, 5)
    batch = collate(rows, b.space, b.collate_cfg, instruction_lookup(None, gen), with_targets=False)
    hist, pools = [r.history for r in rows], ["cart"] * len(rows)
    want = slotted.decoder().decode(batch, hist, 12, 5, pools, needs=[gen.needs_of(r) for r in rows]).items
    plain = b.decoder().decode(batch, hist, 12, 5, pools).items
    assert got.tolist() == want.tolist()
    assert [gen.needs_of(r) == () for r in rows] == [n % 4 == 0 for n in range(len(rows))]
    assert (got != plain).any() and all(got[n].tolist() == plain[n].tolist() for n in range(0, len(rows), 4))
