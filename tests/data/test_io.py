"""Loading validates every line and reports file, line, field and the fix; nothing is dropped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from oxygen.data.io import DataError, load_dataset, load_items, load_rows, write_jsonl
from oxygen.data.schema import Item, Row

OFFICE = Path(__file__).resolve().parents[2] / "data" / "amazon18-office"


def _write(path: Path, lines: list) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def test_office_loads_every_line():
    ds = load_dataset(OFFICE)
    counts = {s: sum(1 for line in (OFFICE / f"{s}.jsonl").open() if line.strip()) for s in ds.splits}
    assert len(ds.items) == 3459
    assert {s: len(r) for s, r in ds.splits.items()} == counts
    assert ds.has_text and ds.item(0).title.startswith("HP 74")


def test_id_only_items_are_valid(tmp_path: Path):
    _write(tmp_path / "items.jsonl", [{"item_id": 0}, {"item_id": 1}])
    _write(tmp_path / "train.jsonl", [{"user_id": "u", "history": [0], "target": 1}])
    ds = load_dataset(tmp_path)
    assert not ds.has_text and ds.items[0].text == ""


@pytest.mark.parametrize("line, field, words", [
    ('{"user_id": "u", "history": [0]', None, "not valid JSON"),
    ('[1, 2]', None, "JSON object"),
    ({"user_id": "u", "history": [0]}, "target", "required"),
    ({"user_id": "u", "history": [0], "target": 1, "tagret": 1}, "tagret", "not a known field"),
    ({"user_id": "u", "history": [0], "target": 1, "scenario": "mall"}, "scenario", "mall"),
    ({"user_id": "u", "history": [0, 1], "target": 1, "history_behaviours": ["click"]}, None,
     "one entry per history item"),
    ({"user_id": "u", "history": [0], "target": 7}, "target", "not in items.jsonl"),
    ({"user_id": "u", "history": [9], "target": 1}, "history", "not in items.jsonl"),
])
def test_bad_row_names_file_line_field(tmp_path: Path, line, field, words):
    _write(tmp_path / "items.jsonl", [{"item_id": 0}, {"item_id": 1}])
    good = {"user_id": "u", "history": [0], "target": 1}
    _write(tmp_path / "train.jsonl", [good, line])
    with pytest.raises(DataError) as e:
        load_dataset(tmp_path)
    assert e.value.line == 2 and e.value.path.endswith("train.jsonl")
    if field:
        assert e.value.field == field
    assert words in str(e.value)


def test_duplicate_item_and_missing_files(tmp_path: Path):
    _write(tmp_path / "items.jsonl", [{"item_id": 3}, {"item_id": 3}])
    with pytest.raises(DataError, match="duplicate item_id 3"):
        load_items(tmp_path / "items.jsonl")
    with pytest.raises(DataError, match="file not found"):
        load_rows(tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match="folder not found"):
        load_dataset(tmp_path / "nope")


def test_write_read_round_trip(tmp_path: Path):
    rows = [Row(user_id="u1", history=[1, 2], target=3, scenario="cart", trigger=2, behaviour="cart",
                history_behaviours=["click", "purchase"], context={"city": "Harbin", "date": "2026-12-21"})]
    items = [Item(item_id=i, title=f"t{i}", categories=["A", "B"]) for i in range(4)]
    write_jsonl(tmp_path / "items.jsonl", items)
    write_jsonl(tmp_path / "test.jsonl", rows)
    ds = load_dataset(tmp_path)
    assert ds.items == items and ds.splits["test"] == rows


def _to_parquet(jsonl: Path, parquet: Path) -> None:
    """The records of a JSONL file as a Parquet file (missing fields become nulls)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    records = [json.loads(x) for x in jsonl.read_text().splitlines() if x.strip()]
    keys = list(dict.fromkeys(k for r in records for k in r))  # every field, so no column is lost
    pq.write_table(pa.Table.from_pylist([{k: r.get(k) for k in keys} for r in records]), parquet)


def test_parquet_loads_the_same_rows_as_jsonl(tmp_path: Path):
    """Office as Parquet (a mix: items and train Parquet, valid/test JSONL) gives identical records."""
    for name in ("items", "train"):
        _to_parquet(OFFICE / f"{name}.jsonl", tmp_path / f"{name}.parquet")
    for name in ("valid", "test"):
        (tmp_path / f"{name}.jsonl").write_text((OFFICE / f"{name}.jsonl").read_text())
    want, got = load_dataset(OFFICE), load_dataset(tmp_path)
    assert got.items == want.items and got.splits == want.splits


def test_bad_parquet_rows_and_ambiguous_files_are_clear_errors(tmp_path: Path):
    _write(tmp_path / "items.jsonl", [{"item_id": 0}, {"item_id": 1}])
    src = _write(tmp_path / "rows.jsonl", [{"user_id": "u", "history": [0], "target": 1},
                                           {"user_id": "v", "history": [0], "target": 1, "colour": "red"}])
    _to_parquet(src, tmp_path / "train.parquet")
    with pytest.raises(DataError, match=r"train\.parquet:2: field 'colour' is not a known field"):
        load_dataset(tmp_path)
    (tmp_path / "train.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        load_dataset(tmp_path)
    _write(tmp_path / "train.jsonl", [{"user_id": "u", "history": [0], "target": 1}])
    with pytest.raises(DataError, match="keep one of them"):
        load_dataset(tmp_path)
