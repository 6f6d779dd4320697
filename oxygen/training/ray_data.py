"""Train rows through Ray Data: read and validated in parallel, summarised into `RowStats`, and
split across the Ray Train workers, so the driver of a cluster run never holds the train log.

A `RaySplit` stands for one split file (JSONL or Parquet) plus any in-memory rows added to it (a
refit trains on train + valid). Its dataset is read by Ray Data tasks that validate every row
against the schema and the catalogue (a bad row stops the job with the file, field and the start
of the row: `DataError`), and is materialised once in the object store. Statistics come from the
same blocks (`oxygen.data.stats.row_stats` per block, merged on the driver: profile values,
queries, scenario pools, transitions); each Ray Train worker reads only its shard
(`shard_rows`, Ray Train's `streaming_split` with equal shares) and collates it itself.

    split = RaySplit(Path("data/world/train.jsonl"), known=frozenset(ds.item_ids))
    stats = split.stats(pairs=True)              # merged on the driver, rows never gathered
    TorchTrainer(..., datasets={"train": split.dataset()})   # workers: shard_rows("train")
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import ray
import ray.data
import ray.train

from oxygen.data.io import DataError, parse_row
from oxygen.data.schema import Row
from oxygen.data.stats import RowStats, merge, row_stats

ROW, ERROR = "row", "error"  # each row's validated JSON; while reading, its DataError (JSON) or ""
BLOCK_ROWS = 4096


def init_ray(num_workers: int = 1) -> None:
    """Join the cluster under `ray job submit` ($RAY_ADDRESS), else start a local Ray with one
    logical CPU per Ray Train worker plus one for Ray Data's tasks (no-op if Ray is up)."""
    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init()
    else:
        ray.init(num_cpus=max(2, num_workers) + 1, include_dashboard=False, log_to_driver=True)


def _checked(path: str, record: str | dict, known: frozenset[int]) -> tuple[str, str]:
    """(row JSON, "") for a good record, ("", the DataError as JSON) for a bad one: errors travel
    as data, since Ray's task wrapper does not carry the exception object back to the driver."""
    try:
        row = parse_row(path, record, known)
    except DataError as e:
        return "", json.dumps({"path": e.path, "field": e.field, "problem": e.problem})
    return (record if isinstance(record, str) else row.model_dump_json(exclude_none=True)), ""


def _columns(pairs: list[tuple[str, str]]) -> dict[str, np.ndarray]:
    return {ROW: np.array([p[0] for p in pairs], dtype=object), ERROR: np.array([p[1] for p in pairs], dtype=object)}


def _validate_lines(batch: dict[str, np.ndarray], path: str, known: frozenset[int]) -> dict[str, np.ndarray]:
    """JSONL lines -> (validated row JSON, error) columns (blank lines skipped)."""
    lines = (str(t).strip() for t in batch["text"])
    return _columns([_checked(path, line, known) for line in lines if line])


def _validate_records(table: pa.Table, path: str, known: frozenset[int]) -> dict[str, np.ndarray]:
    """Parquet records (nulls = absent fields) -> (validated row JSON, error) columns."""
    return _columns([_checked(path, rec, known) for rec in table.to_pylist()])


def _errors(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {ERROR: np.array([e for e in batch[ERROR] if e], dtype=object)}


def read_split(path: Path, known: frozenset[int]) -> ray.data.Dataset:
    """The rows of one split file as a Ray Dataset with column `row` (validated JSON), lazily."""
    if not path.exists():
        raise DataError(path, None, None, "file not found; check the dataset folder path")
    if path.suffix == ".parquet":
        ds, fn, fmt = ray.data.read_parquet(str(path)), _validate_records, "pyarrow"
    else:
        ds, fn, fmt = ray.data.read_text(str(path)), _validate_lines, "numpy"
    return ds.map_batches(fn, fn_kwargs={"path": str(path), "known": known}, batch_format=fmt,
                          batch_size=BLOCK_ROWS)


def rows_of(batch: dict[str, np.ndarray]) -> list[Row]:
    """The Row objects of a batch of the `row` column."""
    return [Row.model_validate_json(s) for s in batch[ROW]]


def _block_stats(batch: dict[str, np.ndarray], pairs: bool, crop_last: int) -> dict[str, np.ndarray]:
    """One pickled RowStats per batch (merged on the driver)."""
    return {"stats": np.array([pickle.dumps(row_stats(rows_of(batch), pairs, crop_last))], dtype=object)}


@dataclass
class RaySplit:
    """One split file (+ in-memory `extra` rows) kept in Ray: read, validated and materialised
    once in the object store; statistics and worker shards come from there."""

    path: Path
    known: frozenset[int]
    extra: list[Row] = field(default_factory=list)
    _ds: ray.data.Dataset | None = field(default=None, repr=False)
    _stats: dict[tuple[bool, int], RowStats] = field(default_factory=dict, repr=False)

    def dataset(self) -> ray.data.Dataset:
        """The materialised dataset (the read and validation run here, in parallel Ray tasks)."""
        if self._ds is None:
            init_ray()
            ds = read_split(self.path, self.known).materialize()
            bad = ds.map_batches(_errors, batch_format="numpy").take(1)
            if bad:  # the first bad row found, as the DataError it is
                e = json.loads(bad[0][ERROR])
                raise DataError(e["path"], None, e["field"], e["problem"])
            ds = ds.drop_columns([ERROR])
            if self.extra:
                ds = ds.union(ray.data.from_items([{ROW: r.model_dump_json(exclude_none=True)} for r in self.extra]))
            self._ds = ds.materialize()
        return self._ds

    def stats(self, pairs: bool = False, crop_last: int = 0) -> RowStats:
        """Merged statistics of every row (`oxygen.data.stats.row_stats`), computed per block."""
        key = (pairs, crop_last)
        if key not in self._stats:
            parts = self.dataset().map_batches(_block_stats, fn_kwargs={"pairs": pairs, "crop_last": crop_last},
                                               batch_format="numpy", batch_size=BLOCK_ROWS).take_all()
            self._stats[key] = merge([pickle.loads(p["stats"]) for p in parts])
        return self._stats[key]

    def __len__(self) -> int:
        return self.stats().rows

    def __add__(self, rows: Sequence[Row]) -> "RaySplit":
        """This split with `rows` added (e.g. train + valid for a refit)."""
        return RaySplit(self.path, self.known, [*self.extra, *rows])


def shard_rows(name: str = "train") -> list[Row]:
    """On a Ray Train worker: the rows of this worker's shard of dataset `name`."""
    rows: list[Row] = []
    for batch in ray.train.get_dataset_shard(name).iter_batches(batch_size=BLOCK_ROWS, batch_format="numpy"):
        rows += rows_of(batch)
    return rows
