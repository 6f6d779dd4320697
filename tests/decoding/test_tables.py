"""Decoder tables (numpy arrays only, for Ray's object store): a trie and a decoder rebuilt from
their arrays answer exactly like the originals, read-only arrays are used as they are (not
copied), array id lookups match a dict reference, and tables of another bundle are refused."""

from __future__ import annotations

import numpy as np
import pytest

from bench.tiny_bundle import make_bundle
from oxygen.data.batching import collate
from oxygen.data.schema import Row
from oxygen.decoding.decode import Decoder, DecoderTables
from oxygen.model.bundle import CATALOGUE_POOL
from oxygen.semantic_ids.trie import PrefixTrie


def _read_only(tables: DecoderTables) -> DecoderTables:
    """Copies of the arrays marked read-only, the way Ray's object store hands them to a worker."""
    def ro(a: np.ndarray) -> np.ndarray:
        a = a.copy()
        a.flags.writeable = False
        return a
    return DecoderTables(list(tables.names), [{k: ro(v) for k, v in t.items()} for t in tables.tries],
                         {k: ro(v) for k, v in tables.index.items()}, ro(tables.item_ids))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("tables") / "b")


def test_trie_from_state_answers_like_the_original_without_copying():
    rng = np.random.default_rng(3)
    allp = np.array(np.meshgrid(*[np.arange(6)] * 3, indexing="ij")).reshape(3, -1).T
    codes, ids = allp[rng.choice(len(allp), 90, replace=False)], rng.permutation(5000)[:90]
    trie = PrefixTrie(codes, ids)
    same = PrefixTrie.from_state(trie.state())
    assert np.shares_memory(same.codes, trie.codes) and np.shares_memory(same.levels[1].child_id, trie.levels[1].child_id)
    for prefix in [(), (0,), (3, 2), (5, 5)]:
        assert same.allowed(prefix).tolist() == trie.allowed(prefix).tolist()
    for c, i in zip(codes[:30], ids[:30]):
        assert same.item_of(tuple(c)) == int(i)
    # membership and rows by item id: binary search against a dict reference
    ref = {int(i): r for r, i in enumerate(trie.item_ids)}
    probe = [int(ids[5]), 99999, int(ids[0]), -1, int(ids[89])]
    assert [p in same for p in probe] == [p in ref for p in probe]
    assert "7" not in same and 3.0 not in same
    assert same.rows_of(probe).tolist() == sorted(ref[p] for p in probe if p in ref)
    assert same.restrict(ids[::4]).item_ids.tolist() == trie.restrict(ids[::4]).item_ids.tolist()
    with pytest.raises(KeyError, match="pool item 99999 is not in this trie's catalogue"):
        same.restrict([int(ids[0]), 99999])


def test_decoder_from_read_only_tables_decodes_exactly_like_the_original(bundle):
    rows = [Row(user_id=f"u{k}", history=[3 * k, 3 * k + 1], target=5, scenario=s, trigger=k + 30)
            for k, s in enumerate(["search", "homepage", "channel", "cart", "checkout", "homepage"])]
    batch = collate(rows, bundle.space, bundle.collate_cfg, with_targets=False)
    histories = [r.history for r in rows]
    pools = [r.scenario for r in rows]
    exclude = [[], [0, 1, 2], [], [10], [], list(range(0, 120, 2))]
    original = bundle.decoder(CATALOGUE_POOL)
    tables = _read_only(original.tables())
    shared = bundle.decoder(CATALOGUE_POOL, tables=tables)
    assert np.shares_memory(shared.index.levels[0].child_id.numpy(), tables.index["child_id_0"])
    assert np.shares_memory(shared.tries[0].codes, tables.tries[0]["codes"])
    for sampling in (None, {"temperature": 1.0, "top_p": 0.9, "seed": 4}):
        a = original.decode(batch, histories, beam=16, k=8, pools=pools, sampling=sampling, exclude=exclude)
        b = shared.decode(batch, histories, beam=16, k=8, pools=pools, sampling=sampling, exclude=exclude)
        assert np.array_equal(a.items, b.items) and np.allclose(a.scores, b.scores)
    assert tables.nbytes > 0 and set(tables.names) == set(bundle.scenarios) | {CATALOGUE_POOL}


def test_tables_of_another_bundle_or_pool_set_are_refused(bundle):
    tables = bundle.decoder().tables()  # no catalogue pool
    with pytest.raises(ValueError, match="do not belong to this bundle"):
        bundle.decoder(CATALOGUE_POOL, tables=tables)
    assert isinstance(Decoder.from_tables(bundle.model, tables), Decoder)
