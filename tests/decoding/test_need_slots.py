"""Need slots (oxygen.decoding.need_slots, Decoder.decode(needs=)): `compose` pushes out only the
lowest-ranked items of never-touched categories, and the decode path equals a slow reference
that decodes the plain list and, per open need, the pool cut to that category with every other item
excluded (the trie-constraint business rule), then composes; only pools with slots act, not under
beam sampling, exclusions hold for need items too, and a bundle keeps its slots and categories
across save and load."""

from __future__ import annotations

import numpy as np
import pytest

from bench.tiny_bundle import N_ITEMS, make_bundle
from oxygen.data.batching import collate
from oxygen.data.schema import Row
from oxygen.decoding.need_slots import compose, need_pool
from oxygen.model.bundle import Bundle

CATEGORY = {i: f"c{i % 6}" for i in range(N_ITEMS)}  # six categories of 20 items


def test_compose_pushes_out_untouched_categories_lowest_first():
    cat = {1: "a", 2: "b", 3: "a", 4: "b", 5: "c", 9: "z"}
    assert compose([1, 2, 3, 4], [9], known={"a"}, category=cat, k=4) == [1, 2, 3, 9]  # 4 ("b") goes
    assert compose([1, 2, 3, 4], [9], known={"b"}, category=cat, k=4) == [1, 2, 4, 9]  # 3 ("a") goes
    assert compose([1, 2, 3, 4], [9], known={"a", "b"}, category=cat, k=4) == [1, 2, 3, 4]  # all known: no slot
    assert compose([1, 2, 3, 4], [9, 5], known={"a"}, category=cat, k=4) == [1, 3, 9, 5]  # 4, then 2
    assert compose([1, 2, 3, 4], [9, 5], known={"a", "b"}, category={**cat, 4: "c"}, k=4) == [1, 2, 3, 9]  # room for one
    assert compose([1, 2, 3], [9], known=set(), category=cat, k=4) == [1, 2, 3, 9]  # room: nothing goes


def test_compose_moves_a_need_item_already_listed_and_counts_it_once():
    cat = {1: "a", 2: "b", 3: "c", 4: "d", 7: "e", 8: "f"}
    assert compose([1, 2, 3, 4], [2], known={"a"}, category=cat, k=4) == [1, 3, 4, 2]
    assert compose([1, 2, 3, 4], [3, 3], known={"a"}, category=cat, k=4) == [1, 2, 4, 3]
    assert compose([1, 2], [7, 8, 9], known=set(), category=cat, k=2) == [7, 8]
    assert compose([1, 2, 3, 4], [8, 2], known={"a", "c", "d"}, category=cat, k=4) == [1, 3, 4, 2]  # no room for 8


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Bundle:
    b = make_bundle(tmp_path_factory.mktemp("slots") / "b")
    b.categories, b.need_slots = dict(CATEGORY), {"homepage": 2}
    return b


@pytest.fixture(scope="module")
def requests(bundle):
    scen = ["homepage", "homepage", "search", "homepage", "homepage"]
    rows = [Row(user_id=f"u{k}", history=[6 * k, 6 * k + 1, 7], target=5, scenario=s) for k, s in enumerate(scen)]
    needs = [["c2", "c3", "c4"], ["c5"], ["c1"], [], ["nope", "c0", "c2"]]
    return rows, scen, needs, collate(rows, bundle.space, bundle.collate_cfg, with_targets=False)


def reference(bundle, rows, scen, needs, exclude, beam=8, k=6):
    """Per request: the plain list, then each of the first m known needs' best item found by
    excluding every item outside its category, composed."""
    dec = bundle.decoder()
    batch = collate(rows, bundle.space, bundle.collate_cfg, with_targets=False)
    plain = dec.decode(batch, [r.history for r in rows], beam, k, scen, exclude=exclude)
    out = []
    for b, r in enumerate(rows):
        cats = [c for c in needs[b] if c in set(CATEGORY.values())][:bundle.need_slots.get(scen[b], 0)]
        items = []
        for c in cats:
            outside = [i for i in range(N_ITEMS) if CATEGORY[i] != c] + list(exclude[b])
            one = collate([r], bundle.space, bundle.collate_cfg, with_targets=False)
            got = dec.decode(one, [r.history], beam, 1, [scen[b]], exclude=[outside]).items[0, 0]
            if got >= 0:
                items.append(int(got))
        base = [int(i) for i in plain.items[b] if i >= 0]
        known = {CATEGORY[i] for i in r.history}
        out.append(compose(base, items, known, CATEGORY, k) if items else base)
    return out


def test_the_decode_path_equals_the_slow_reference(bundle, requests):
    rows, scen, needs, batch = requests
    exclude = [[], [3, 11], [], [40], [2, 8, 14]]
    got = bundle.decoder().decode(batch, [r.history for r in rows], 8, 6, scen, exclude=exclude, needs=needs)
    want = reference(bundle, rows, scen, needs, exclude)
    for b in range(len(rows)):
        assert got.items[b][got.items[b] >= 0].tolist() == want[b], b
        assert not set(got.items[b].tolist()) & set(exclude[b])
    # which slot went to which need: only homepage rows with a known need, at most two of them
    assert got.need is not None
    assert sorted(got.need_of(0, needs[0], 6).values()) == ["c2", "c3"]
    assert list(got.need_of(1, needs[1], 6).values()) == ["c5"]
    assert got.need_of(2, needs[2], 6) == {} and got.need_of(3, needs[3], 6) == {}
    assert sorted(got.need_of(4, needs[4], 6).values()) == ["c0", "c2"]  # "nope" has no pool: the next need
    for b in (0, 1, 4):
        for item, c in got.need_of(b, needs[b], 6).items():
            assert CATEGORY[item] == c


class NoRestart:
    """A model without `restart`: the decoder encodes the need rows again."""

    def __init__(self, model):
        self.model, self.starts = model, 0

    def start(self, batch):
        self.starts += 1
        return self.model.start(batch)

    def __getattr__(self, name):
        if name == "restart":
            raise AttributeError(name)
        return getattr(self.model, name)


def test_need_decodes_start_from_the_main_pass_encoder_output(bundle, requests):
    rows, scen, needs, batch = requests
    hist = [r.history for r in rows]
    dec = bundle.decoder()
    starts = []
    dec.model.start = lambda b: starts.append(len(b)) or type(dec.model).start(dec.model, b)
    reused = dec.decode(batch, hist, 8, 6, scen, needs=needs)
    del dec.model.start
    assert starts == [len(rows)]  # one encoder pass: the need decodes started from it
    again = bundle.decoder()
    again.model = NoRestart(again.model)
    fresh = again.decode(batch, hist, 8, 6, scen, needs=needs)
    assert again.model.starts == 2  # the main pass, then the need rows encoded again
    assert reused.items.tolist() == fresh.items.tolist() and reused.need.tolist() == fresh.need.tolist()
    np.testing.assert_allclose(reused.scores, fresh.scores, rtol=1e-5, atol=1e-5)


def test_no_slots_no_needs_or_sampling_leave_the_plain_lists(bundle, requests):
    rows, scen, needs, batch = requests
    hist = [r.history for r in rows]
    plain = bundle.decoder().decode(batch, hist, 8, 6, scen)
    dec = bundle.decoder()
    dec.need_slots = {}
    assert dec.decode(batch, hist, 8, 6, scen, needs=needs).items.tolist() == plain.items.tolist()
    assert bundle.decoder().decode(batch, hist, 8, 6, scen).items.tolist() == plain.items.tolist()
    sampled = bundle.decoder().decode(batch, hist, 8, 6, scen, sampling={"seed": 1}, needs=needs)
    again = bundle.decoder().decode(batch, hist, 8, 6, scen, sampling={"seed": 1})
    assert sampled.items.tolist() == again.items.tolist()
    with pytest.raises(ValueError, match="one category list per request"):
        bundle.decoder().decode(batch, hist, 8, 6, scen, needs=needs[:2])


def test_a_bundle_keeps_its_slots_and_categories(bundle, tmp_path):
    loaded = Bundle.load(bundle.save(tmp_path / "b"))
    assert loaded.need_slots == {"homepage": 2} and loaded.categories == CATEGORY
    assert need_pool("homepage", "c3") in loaded.decoder().names
    tables = loaded.decoder().tables()
    assert loaded.decoder(tables=tables).names == loaded.decoder().names
    with pytest.raises(ValueError, match="no item categories"):
        Bundle(loaded.model, loaded.codebook, loaded.space, loaded.collate_cfg, loaded.scenarios, need_slots={"homepage": 1})
    with pytest.raises(ValueError, match="scenario the bundle serves"):
        Bundle(loaded.model, loaded.codebook, loaded.space, loaded.collate_cfg, loaded.scenarios,
               need_slots={"basket": 1}, categories=CATEGORY)
    assert np.all([CATEGORY[i] == "c3" for i in loaded.decoder().tries[loaded.decoder().names.index(
        need_pool("homepage", "c3"))].item_ids])
