"""The SID codebook: every item gets a UNIQUE L-level code path; collision resolution, save/load, maps.

Collision resolution (`resolve_collisions`), keeping a fixed L levels so decoding stays simple:
items sharing a full code path form a group; the item nearest its last-level centroid (smallest
reconstruction error, ties -> lowest row) keeps the code. Every other item, nearest first, is moved
by a best-first search down the code tree: it keeps its own level-1..L-1 prefix while that prefix has
room and takes the nearest UNUSED last-level code under it (by distance of its residual to those
last-level centroids); when that prefix is full it moves to the next-nearest level-(L-1) prefix with
room under the same level-(L-2) prefix, and so on up the tree. Deterministic; the only error is a
catalogue larger than the code space (prod of widths), which asks for a larger width.

On disk (`Codebook.save(dir)` / `Codebook.load(dir)`):
- `codes.npy`     Int64[N, L] final unique codes, row r is item `item_ids[r]`
- `codebook.npz`  `raw_codes` Int64[N, L] (before resolution), `centroids_<l>` Float32[K_l, D]
- `meta.json`     item_ids, levels, widths, source, encoder, seed and any extra build info

    cb = Codebook.load("runs/sids/office")
    cb.code_of(42)          # (17, 203, 5)
    cb.item_of((17, 203, 5)) # 42
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm


def reconstruction_error(x: np.ndarray, codes: np.ndarray, centroids: list[np.ndarray]) -> np.ndarray:
    """Float64[N] squared distance of each row of x [N, D] to its reconstruction sum_l C_l[codes[:, l]]."""
    recon = np.zeros_like(x, dtype=np.float64)
    for level, cent in enumerate(centroids):
        recon += cent[codes[:, level]]
    return ((x.astype(np.float64) - recon) ** 2).sum(axis=1)


class _Placer:
    """Best-first search of a free code path for one moved item, given the paths already used.

    Keeps, per level-(L-1) prefix, a boolean mask of used last-level codes, and per shorter prefix
    the count of used paths below it, so a move costs one distance vector per level it searches.
    """

    def __init__(self, centroids: list[np.ndarray], used: set[tuple[int, ...]]):
        self.centroids = [c.astype(np.float64) for c in centroids]
        self.widths = [c.shape[0] for c in centroids]
        self.capacity = [int(np.prod(self.widths[l:])) for l in range(len(self.widths) + 1)]
        self.count: dict[tuple[int, ...], int] = {}
        self.last: dict[tuple[int, ...], np.ndarray] = {}
        for path in used:
            self._add(path)

    def _add(self, path: tuple[int, ...]) -> None:
        """Record `path` as used: mark its last code and count it under each proper prefix."""
        mask = self.last.setdefault(path[:-1], np.zeros(self.widths[-1], dtype=bool))
        mask[path[-1]] = True
        for l in range(1, len(path)):
            self.count[path[:l]] = self.count.get(path[:l], 0) + 1

    def place(self, x: np.ndarray, original: tuple[int, ...]) -> tuple[int, ...]:
        """Free path for embedding x [D], preferring the original path's codes; marks it used."""
        path = self._search(x.astype(np.float64), (), original, True)
        if path is None:
            raise RuntimeError("no free code path left; this is a bug (capacity was checked)")
        self._add(path)
        return path

    def _last(self, r: np.ndarray, prefix: tuple[int, ...], first: int | None) -> tuple[int, ...] | None:
        """Nearest unused last-level code under `prefix` (`first` preferred when it is free)."""
        used = self.last.get(prefix)
        if used is None:
            used = np.zeros(self.widths[-1], dtype=bool)
        if first is not None and not used[first]:
            return prefix + (first,)
        if used.all():
            return None
        d = ((self.centroids[-1] - r) ** 2).sum(axis=1)
        d[used] = np.inf
        return prefix + (int(np.argmin(d)),)

    def _search(self, r: np.ndarray, prefix: tuple[int, ...], original: tuple[int, ...],
                on_path: bool) -> tuple[int, ...] | None:
        """Depth-first over children of `prefix` nearest first (the original code first when on it)."""
        level = len(prefix)
        first = original[level] if on_path else None
        if level == len(self.widths) - 1:
            return self._last(r, prefix, first)
        cent, room = self.centroids[level], self.capacity[level + 1]
        if first is not None and self.count.get(prefix + (first,), 0) < room:
            found = self._search(r - cent[first], prefix + (first,), original, True)
            if found is not None:
                return found
        for c in np.argsort(((cent - r) ** 2).sum(axis=1), kind="stable").tolist():
            p = prefix + (c,)
            if c != first and self.count.get(p, 0) < room:
                found = self._search(r - cent[c], p, original, False)
                if found is not None:
                    return found
        return None


def resolve_collisions(x: np.ndarray, codes: np.ndarray, centroids: list[np.ndarray]) -> np.ndarray:
    """Unique codes Int64[N, L] from raw residual-k-means codes [N, L] (rule in the module docstring)."""
    n, levels = codes.shape
    space = int(np.prod([c.shape[0] for c in centroids], dtype=np.float64))
    if n > space:
        raise ValueError(f"{n} items but only {space} code paths (widths "
                         f"{[c.shape[0] for c in centroids]}); raise --width or --levels")
    err = reconstruction_error(x, codes, centroids)
    order = np.lexsort((np.arange(n), err))            # nearest first, ties by row
    keeper: dict[tuple[int, ...], int] = {}
    movers: list[int] = []
    for r in order:
        path = tuple(int(c) for c in codes[r])
        if path in keeper:
            movers.append(int(r))
        else:
            keeper[path] = int(r)
    out = codes.copy()
    if not movers:
        return out
    placer = _Placer(centroids, set(keeper))
    for r in tqdm(movers, desc="resolve collisions", disable=len(movers) < 10_000):
        out[r] = placer.place(x[r], tuple(int(c) for c in codes[r]))
    return out


@dataclass
class Codebook:
    """Unique SIDs of a catalogue: codes Int64[N, L] aligned with item_ids Int64[N]."""

    item_ids: np.ndarray
    codes: np.ndarray
    widths: list[int]
    raw_codes: np.ndarray | None = None
    centroids: list[np.ndarray] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.item_ids = np.asarray(self.item_ids, dtype=np.int64)
        self.codes = np.asarray(self.codes, dtype=np.int64)
        n = self.item_ids.shape[0]
        if self.codes.shape != (n, len(self.widths)):
            raise ValueError(f"codes shape {self.codes.shape} != (n_items={n}, levels={len(self.widths)})")
        if len(np.unique(self.item_ids)) != n:
            raise ValueError("item_ids hold duplicates; every item needs exactly one row")
        if n and ((self.codes < 0).any() or (self.codes >= np.array(self.widths)).any()):
            raise ValueError(f"a code is outside [0, width) for widths {self.widths}")
        if int(np.prod([int(w) for w in self.widths], dtype=object)) >= 2 ** 63:
            raise ValueError(f"widths {self.widths} give more code paths than an int64 key holds; use fewer levels")
        self._by_id = np.argsort(self.item_ids, kind="stable")
        self._keys = self._path_keys(self.codes)  # one int per code path (mixed radix over the widths)
        self._by_key = np.argsort(self._keys, kind="stable")
        if n and (self._keys[self._by_key][1:] == self._keys[self._by_key][:-1]).any():
            raise ValueError("code paths are not unique; run resolve_collisions first")

    def _path_keys(self, codes: np.ndarray) -> np.ndarray:
        """Int64[n]: each code path of codes Int64[n, L] as one number (codes in [0, width))."""
        keys = np.zeros(codes.shape[0], dtype=np.int64)
        for level, w in enumerate(self.widths):
            keys = keys * int(w) + codes[:, level]
        return keys

    @staticmethod
    def _find(values: np.ndarray, order: np.ndarray, x: int) -> int | None:
        """Row r with values[r] == x (`order` sorts `values`), or None."""
        pos = int(np.searchsorted(values[order], x))
        return int(order[pos]) if pos < len(order) and values[order[pos]] == x else None

    @property
    def levels(self) -> int:
        """Number of code levels L."""
        return len(self.widths)

    def code_of(self, item_id: int) -> tuple[int, ...]:
        """The code path of an item; KeyError naming the id when unknown."""
        row = self._find(self.item_ids, self._by_id, int(item_id))
        if row is None:
            raise KeyError(f"item {item_id} is not in this codebook ({len(self.item_ids)} items)")
        return tuple(int(c) for c in self.codes[row])

    def item_of(self, code: tuple[int, ...] | list[int]) -> int:
        """The item holding a full code path; KeyError when no item has it."""
        key = tuple(int(c) for c in code)
        ok = len(key) == self.levels and all(0 <= c < w for c, w in zip(key, self.widths))
        row = self._find(self._keys, self._by_key, int(self._path_keys(np.array([key]))[0])) if ok else None
        if row is None:
            raise KeyError(f"no item has code {key}")
        return int(self.item_ids[row])

    def save(self, out_dir: Path | str) -> Path:
        """Write codes.npy, codebook.npz and meta.json into `out_dir`; return the folder."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        np.save(out / "codes.npy", self.codes)
        arrays = {f"centroids_{l}": c for l, c in enumerate(self.centroids)}
        raw = self.raw_codes if self.raw_codes is not None else self.codes
        np.savez(out / "codebook.npz", raw_codes=raw, **arrays)
        meta = {**self.meta, "levels": self.levels, "widths": list(self.widths),
                "n_items": int(self.item_ids.shape[0]), "item_ids": self.item_ids.tolist()}
        (out / "meta.json").write_text(json.dumps(meta))
        return out

    @classmethod
    def load(cls, out_dir: Path | str) -> "Codebook":
        """Read a codebook written by `save`; errors name the missing file."""
        out = Path(out_dir)
        for name in ("codes.npy", "codebook.npz", "meta.json"):
            if not (out / name).exists():
                raise FileNotFoundError(f"{out / name} missing; build it with `python -m apps.build_sids`")
        meta = json.loads((out / "meta.json").read_text())
        npz = np.load(out / "codebook.npz")
        cents = [npz[f"centroids_{l}"] for l in range(meta["levels"]) if f"centroids_{l}" in npz]
        extra = {k: v for k, v in meta.items() if k not in ("item_ids", "widths", "levels", "n_items")}
        return cls(item_ids=np.array(meta["item_ids"], dtype=np.int64), codes=np.load(out / "codes.npy"),
                   widths=list(meta["widths"]), raw_codes=npz["raw_codes"], centroids=cents, meta=extra)
