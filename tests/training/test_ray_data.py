"""Train rows through Ray Data (oxygen.training.ray_data): the statistics merged from parallel
blocks equal those of the rows in memory (JSONL and Parquet), a bad row stops the read with the
DataError itself (file, field), and the generative recommender trained from a RaySplit on one
Ray Train worker matches the in-memory loop (the slow reference), without the train batch ever
being collated on the driver."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray

from oxygen.config import GenerativeConfig
from oxygen.data.io import DataError
from oxygen.data.stats import row_stats
from oxygen.recommenders.generative import GenerativeRecommender
from oxygen.training.ray_data import RaySplit
from tests.worlds import tiny_world


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny shop world and random unique SIDs for its catalogue."""
    d, sids = tmp_path_factory.mktemp("world"), tmp_path_factory.mktemp("sids")
    return d, sids, tiny_world(d, sids, users=120, seed=3)


def _same(a, b) -> None:
    assert (a.rows, a.crop_rows, a.profile_values, a.queries, a.scenario_targets, a.pairs) == \
           (b.rows, b.crop_rows, b.profile_values, b.queries, b.scenario_targets, b.pairs)


def test_stats_from_blocks_equal_the_rows_in_memory(local_ray, world):
    d, _, ds = world
    split = RaySplit(d / "train.jsonl", frozenset(ds.item_ids))
    _same(split.stats(pairs=True, crop_last=2), row_stats(ds.splits["train"], pairs=True, crop_last=2))
    both = split + ds.splits["valid"]
    assert len(both) == len(ds.splits["train"]) + len(ds.splits["valid"])
    _same(both.stats(), row_stats([*ds.splits["train"], *ds.splits["valid"]]))


def test_parquet_split_reads_like_jsonl(local_ray, world, tmp_path):
    d, _, ds = world
    recs = [r.model_dump(exclude_none=True) for r in ds.splits["train"]]
    keys = sorted({k for r in recs for k in r})  # every column (from_pylist reads the first row's keys)
    recs = [{k: r.get(k) for k in keys} for r in recs]
    pq.write_table(pa.Table.from_pylist(recs), tmp_path / "train.parquet")
    split = RaySplit(tmp_path / "train.parquet", frozenset(ds.item_ids))
    _same(split.stats(pairs=True), row_stats(ds.splits["train"], pairs=True))


@pytest.mark.parametrize("bad, field", [({"histroy": [1]}, "histroy"), ({"target": 10**9}, "target")])
def test_a_bad_row_is_a_data_error_naming_file_and_field(local_ray, world, tmp_path, bad, field):
    d, _, ds = world
    lines = (d / "train.jsonl").read_text().splitlines()
    lines[5] = json.dumps({**json.loads(lines[5]), **bad})
    (tmp_path / "train.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as err:
        RaySplit(tmp_path / "train.jsonl", frozenset(ds.item_ids)).stats()
    assert err.value.field == field and err.value.path.endswith("train.jsonl"), str(err.value)


def _config(sids, workers: int) -> GenerativeConfig:
    return GenerativeConfig.model_validate({
        "sid_dir": str(sids), "use_queries": False, "eval_beam": 10,
        "model": {"d_model": 32, "d_ff": 64, "enc_layers": 1, "dec_layers": 1, "dropout": 0.0},
        "train": {"epochs": 2, "batch_size": 64, "threads": 1, "workers": workers, "max_valid_rows": 30,
                  "patience": 10, "ema_decay": 0.0}, "rerank": {"weights": []}})


def test_split_on_one_worker_matches_the_in_memory_loop(local_ray, world, tmp_path):
    d, sids, ds = world
    ref = GenerativeRecommender(_config(sids, 1)).fit(ds.splits["train"], ds.splits["valid"], ds.items)
    split = RaySplit(d / "train.jsonl", frozenset(ds.item_ids))
    got = GenerativeRecommender(_config(sids, 1), run_dir=tmp_path).fit(split, ds.splits["valid"], ds.items)
    assert "train" not in got.prep.batches  # the train rows were collated on the worker, not here
    for a, b in zip(ref.result.history, got.result.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
    assert got.pools == ref.pools
    test = ds.splits["test"]
    assert np.array_equal(ref.recommend(test, 10), got.recommend(test, 10))
