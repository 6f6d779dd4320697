"""Collision resolution (unique paths, against a brute-force reference), Codebook maps and save/load."""

from __future__ import annotations

from itertools import product

import numpy as np
import pytest

from oxygen.semantic_ids.codebook import Codebook, reconstruction_error, resolve_collisions
from oxygen.semantic_ids.rq_kmeans import residual_kmeans


def reference_resolve(x: np.ndarray, codes: np.ndarray, cents: list[np.ndarray]) -> np.ndarray:
    """Slow rule: keepers nearest first; each mover (nearest first) takes the first free path in the
    order 'original code first, then nearer centroid, then lower code' compared level by level."""
    n, levels = codes.shape
    err = reconstruction_error(x, codes, cents)
    order = sorted(range(n), key=lambda r: (err[r], r))
    used, out, movers = set(), codes.copy(), []
    for r in order:
        p = tuple(codes[r].tolist())
        (movers.append(r) if p in used else used.add(p))
    widths = [c.shape[0] for c in cents]
    for r in movers:
        orig = tuple(codes[r].tolist())

        def key(path: tuple[int, ...]) -> tuple:
            res, k = x[r].astype(np.float64), []
            for l, c in enumerate(path):
                cl = cents[l].astype(np.float64)
                k.append((0 if path[: l + 1] == orig[: l + 1] else 1, ((cl[c] - res) ** 2).sum(), c))
                res = res - cl[c]
            return tuple(k)

        free = [p for p in product(*[range(w) for w in widths]) if p not in used]
        best = min(free, key=key)
        used.add(best)
        out[r] = best
    return out


def _adversarial(seed: int) -> np.ndarray:
    g = np.random.default_rng(seed)
    base = g.standard_normal((4, 3)).astype(np.float32)
    return base[g.integers(0, 4, 40)] + (g.random((40, 1)) < 0.3) * g.standard_normal((40, 3)).astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_resolution_matches_reference_and_is_unique(seed: int):
    x = _adversarial(seed).astype(np.float32)
    raw, cents = residual_kmeans(x, [3, 3, 5], seed=seed)
    got = resolve_collisions(x, raw, cents)
    assert len({tuple(r) for r in got.tolist()}) == len(x)
    assert np.array_equal(got, reference_resolve(x, raw, cents))


def test_identical_embeddings_all_get_unique_codes():
    x = np.ones((60, 4), dtype=np.float32)
    raw, cents = residual_kmeans(x, [4, 4, 4], seed=0)
    got = resolve_collisions(x, raw, cents)
    assert len({tuple(r) for r in got.tolist()}) == 60
    # the group's prefix fills first: 4 codes under the original level-2 prefix
    assert (np.all(got[:, :2] == raw[0, :2], axis=1)).sum() == 4


def test_non_colliding_items_keep_their_code_and_full_space_is_used():
    g = np.random.default_rng(0)
    x = g.standard_normal((8, 2)).astype(np.float32)
    raw, cents = residual_kmeans(x, [2, 2, 2], seed=0)
    got = resolve_collisions(x, raw, cents)
    assert sorted(map(tuple, got.tolist())) == list(product(range(2), range(2), range(2)))
    paths, counts = np.unique(raw, axis=0, return_counts=True)
    for p in paths[counts == 1]:
        rows = np.where((raw == p).all(1))[0]
        assert np.array_equal(got[rows[0]], p)


def test_too_many_items_for_the_code_space():
    x = np.random.default_rng(0).standard_normal((9, 2)).astype(np.float32)
    raw, cents = residual_kmeans(x, [2, 2, 2], seed=0)
    with pytest.raises(ValueError, match="raise --width"):
        resolve_collisions(x, raw, cents)


def test_codebook_maps_and_round_trip(tmp_path):
    x = _adversarial(5)
    raw, cents = residual_kmeans(x, [3, 3, 5], seed=0)
    codes = resolve_collisions(x, raw, cents)
    ids = np.arange(100, 140)
    cb = Codebook(item_ids=ids, codes=codes, widths=[3, 3, 5], raw_codes=raw, centroids=cents,
                  meta={"source": "text", "encoder": "m"})
    for i, c in zip(ids, codes):
        assert cb.code_of(int(i)) == tuple(c) and cb.item_of(tuple(c)) == i
    cb.save(tmp_path)
    back = Codebook.load(tmp_path)
    assert np.array_equal(back.codes, cb.codes) and np.array_equal(back.item_ids, ids)
    assert np.array_equal(back.raw_codes, raw) and back.widths == [3, 3, 5] and back.levels == 3
    assert all(np.array_equal(a, b) for a, b in zip(back.centroids, cents))
    assert back.meta["source"] == "text" and back.meta["encoder"] == "m"
    with pytest.raises(KeyError, match="not in this codebook"):
        back.code_of(7)
    with pytest.raises(KeyError, match="no item"):
        back.item_of((9, 9, 9))


def test_codebook_rejects_bad_codes(tmp_path):
    with pytest.raises(ValueError, match="not unique"):
        Codebook(item_ids=[1, 2], codes=[[0, 0], [0, 0]], widths=[2, 2])
    with pytest.raises(ValueError, match="outside"):
        Codebook(item_ids=[1, 2], codes=[[0, 0], [0, 2]], widths=[2, 2])
    with pytest.raises(ValueError, match="duplicates"):
        Codebook(item_ids=[1, 1], codes=[[0, 0], [0, 1]], widths=[2, 2])
    with pytest.raises(FileNotFoundError, match="build_sids"):
        Codebook.load(tmp_path)


def test_array_lookups_match_a_dict_reference():
    """code_of / item_of go through sorted arrays (no per-item dicts): same answers as dicts."""
    rng = np.random.default_rng(5)
    allp = np.array(np.meshgrid(*[np.arange(w) for w in (7, 5, 9)], indexing="ij")).reshape(3, -1).T
    codes, ids = allp[rng.choice(len(allp), 200, replace=False)], rng.permutation(10 ** 6)[:200]
    cb = Codebook(item_ids=ids, codes=codes, widths=[7, 5, 9])
    by_id = {int(i): tuple(c) for i, c in zip(ids, codes.tolist())}
    by_code = {c: i for i, c in by_id.items()}
    for i in ids[::13]:
        assert cb.code_of(int(i)) == by_id[int(i)] and cb.item_of(by_id[int(i)]) == int(i)
    free = next(tuple(p) for p in allp.tolist() if tuple(p) not in by_code)
    for bad in (free, (7, 0, 0), (0, 0), (-1, 0, 0)):
        with pytest.raises(KeyError, match="no item has code"):
            cb.item_of(bad)
    with pytest.raises(KeyError, match="is not in this codebook"):
        cb.code_of(int(ids.max()) + 1)
