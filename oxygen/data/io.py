"""Validated io for items, rows and logged impressions (JSONL or Parquet), and `load_dataset(dir)` for a dataset folder.

A dataset folder holds `items` and `train`, `valid`, `test` files (any split may be absent), each
either `<name>.jsonl` (one JSON object per line) or `<name>.parquet` (one record per row, columns
named as the schema's fields). Loading validates every record against `oxygen.data.schema` and
cross-checks that every item id a row mentions exists in the catalogue. Bad input raises
`DataError` naming file, line (or Parquet row), field and what to fix; nothing is silently dropped.

    ds = load_dataset("data/amazon18-office")
    ds.items[0].title, len(ds.splits["train"])
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, TypeVar

from pydantic import BaseModel, ValidationError

from oxygen.data.schema import Impression, Item, Row

SPLITS: tuple[str, ...] = ("train", "valid", "test")
M = TypeVar("M", bound=BaseModel)


class DataError(ValueError):
    """A dataset file is malformed. The message says file, line, field and how to fix it."""

    def __init__(self, path: Path | str, line: int | None, field_name: str | None, problem: str):
        self.path, self.line, self.field, self.problem = str(path), line, field_name, problem
        where = f"{path}" + (f":{line}" if line is not None else "")
        what = f" field '{field_name}'" if field_name else ""
        super().__init__(f"{where}:{what} {problem}")


def _first_error(err: ValidationError) -> tuple[str, str]:
    """(dotted field path, message) of a pydantic error, phrased for a person."""
    e = err.errors()[0]
    loc = ".".join(str(p) for p in e["loc"]) or None
    msg = e["msg"]
    if e["type"] == "extra_forbidden":
        msg = "is not a known field; check its spelling against oxygen/data/schema.py"
    elif e["type"] == "missing":
        msg = "is required but missing; add it to this line"
    else:
        msg = f"{msg} (got {e.get('input')!r}); fix the value on this line"
    return loc or "", msg


def read_jsonl(path: Path | str, model: type[M]) -> Iterator[M]:
    """Yield one validated `model` per non-empty line of `path`, raising DataError on the first bad one."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, None, None, "file not found; check the dataset folder path")
    with path.open("r", encoding="utf-8") as f:
        for n, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as e:
                raise DataError(path, n, None, f"not valid JSON ({e.msg} at column {e.colno})") from e
            if not isinstance(obj, dict):
                raise DataError(path, n, None, "each line must be a JSON object")
            try:
                yield model.model_validate(obj)
            except ValidationError as e:
                loc, msg = _first_error(e)
                raise DataError(path, n, loc or None, msg) from e


def read_parquet(path: Path | str, model: type[M]) -> Iterator[M]:
    """Yield one validated `model` per row of a Parquet file (null columns are absent fields),
    raising DataError (1-based row number) on the first bad one."""
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.exists():
        raise DataError(path, None, None, "file not found; check the dataset folder path")
    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for a file that is not Parquet
        raise DataError(path, None, None, f"not a readable Parquet file ({e})") from e
    for n, rec in enumerate(table.to_pylist(), start=1):
        try:
            yield model.model_validate({k: v for k, v in rec.items() if v is not None})
        except ValidationError as e:
            loc, msg = _first_error(e)
            raise DataError(path, n, loc or None, msg.replace("on this line", "in this row")) from e


def read_records(path: Path | str, model: type[M]) -> Iterator[M]:
    """`read_parquet` for a .parquet file, else `read_jsonl`."""
    return read_parquet(path, model) if Path(path).suffix == ".parquet" else read_jsonl(path, model)


def find_file(root: Path, name: str) -> Path | None:
    """`root/<name>.jsonl` or `root/<name>.parquet` (None when neither exists; both is an error)."""
    found = [root / f"{name}{ext}" for ext in (".jsonl", ".parquet") if (root / f"{name}{ext}").exists()]
    if len(found) > 1:
        raise DataError(found[1], None, None, f"both {found[0].name} and {found[1].name} exist; keep one of them")
    return found[0] if found else None


def write_jsonl(path: Path | str, records: Iterable[BaseModel | dict]) -> int:
    """Write records one JSON object per line (None fields and empty lists omitted); return the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for r in records:
            obj = r.model_dump(exclude_none=True) if isinstance(r, BaseModel) else r
            f.write(json.dumps(obj, ensure_ascii=False, separators=(", ", ": ")) + "\n")
            n += 1
    return n


@dataclass
class Dataset:
    """A loaded dataset: the catalogue and the rows of each present split."""

    root: Path
    items: list[Item]
    splits: dict[str, list[Row]] = field(default_factory=dict)

    @property
    def item_ids(self) -> list[int]:
        return [it.item_id for it in self.items]

    def leaf_categories(self) -> dict[int, str]:
        """{item id: leaf category} (the last element of each category path; items without one left out)."""
        return {it.item_id: it.categories[-1] for it in self.items if it.categories}

    @property
    def has_text(self) -> bool:
        """True when at least one item has a title or description."""
        return any(it.text for it in self.items)

    def item(self, item_id: int) -> Item:
        """The item with this id (KeyError if unknown)."""
        if not hasattr(self, "_index"):
            self._index = {it.item_id: it for it in self.items}
        return self._index[item_id]


def load_items(path: Path | str) -> list[Item]:
    """Load and validate a catalogue; duplicate item ids are an error."""
    items, seen = [], {}
    for n, it in enumerate(read_records(path, Item), start=1):
        if it.item_id in seen:
            raise DataError(path, n, "item_id", f"duplicate item_id {it.item_id} (first seen on item "
                            f"#{seen[it.item_id]}); give every item a unique id")
        seen[it.item_id] = n
        items.append(it)
    if not items:
        raise DataError(path, None, None, "catalogue is empty; it needs at least one item")
    return items


def _check_row_items(path: Path, rows: list[Row], known: set[int]) -> None:
    """Every item a row mentions must be in the catalogue."""
    for n, r in enumerate(rows, start=1):
        check_row_items(path, n, r, known)


def check_row_items(path: Path | str, line: int | None, row: Row, known: set[int] | frozenset[int]) -> None:
    """DataError (file, line, field) when `row` mentions an item id missing from the catalogue."""
    for name, ids in (("target", [row.target]), ("history", row.history),
                      ("trigger", [] if row.trigger is None else [row.trigger])):
        bad = [i for i in ids if i not in known]
        if bad:
            raise DataError(path, line, name, f"item id {bad[0]} is not in items.jsonl; "
                            "add it to the catalogue or remove it from this row")


def parse_row(path: Path | str, record: str | dict, known: set[int] | frozenset[int] | None = None) -> Row:
    """One row from a JSONL line or a Parquet record, validated (and checked against the
    catalogue ids `known`); DataError names the file, the field and the start of the bad row
    (rows read in parallel carry no line number)."""
    try:
        row = (Row.model_validate_json(record) if isinstance(record, str)
               else Row.model_validate({k: v for k, v in record.items() if v is not None}))
    except ValidationError as e:
        loc, msg = _first_error(e)
        text = record if isinstance(record, str) else json.dumps(record, default=str)
        raise DataError(path, None, loc or None, f"{msg.replace('on this line', 'in this row')} "
                        f"(row starting {text[:60]!r})") from e
    if known is not None:
        check_row_items(path, None, row, known)
    return row


def load_rows(path: Path | str, known_items: set[int] | None = None) -> list[Row]:
    """Load and validate the rows of one split, optionally checking item ids against the catalogue."""
    rows = list(read_records(path, Row))
    if known_items is not None:
        _check_row_items(Path(path), rows, known_items)
    return rows


def load_dataset(root: Path | str, splits: Iterable[str] = SPLITS) -> Dataset:
    """Load `root/items.{jsonl,parquet}` and every present `root/<split>.{jsonl,parquet}`."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, None, None, "dataset folder not found; pass a folder holding items.jsonl")
    items = load_items(find_file(root, "items") or root / "items.jsonl")
    known = {it.item_id for it in items}
    ds = Dataset(root=root, items=items)
    for s in splits:
        p = find_file(root, s)
        if p is not None:
            ds.splits[s] = load_rows(p, known)
    return ds


def load_impressions(root: Path | str, splits: Iterable[str] = SPLITS,
                     known_items: set[int] | None = None) -> list[Impression]:
    """The logged impressions of `root` (impressions.jsonl or .parquet) whose split is in `splits`,
    validated (and their items, triggers checked against `known_items`), in file order."""
    root = Path(root)
    path = find_file(root, "impressions")
    if path is None:
        raise DataError(root / "impressions.jsonl", None, None,
                        "file not found; shop worlds write it (python -m apps.world); datasets without "
                        "logged impressions train rankers on their rows with sampled negatives")
    keep, out = set(splits), []
    for n, imp in enumerate(read_records(path, Impression), start=1):
        if known_items is not None:
            for name, ids in (("items", imp.items), ("trigger", [] if imp.trigger is None else [imp.trigger])):
                bad = [i for i in ids if i not in known_items]
                if bad:
                    raise DataError(path, n, name, f"item id {bad[0]} is not in items.jsonl; "
                                    "add it to the catalogue or drop this impression")
        if imp.split in keep:
            out.append(imp)
    return out
