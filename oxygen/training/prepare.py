"""Turn a dataset folder + its semantic-ID codebook into model-ready tensors.

`prepare` loads the rows, builds the `FeatureSpace` (item -> codes, profile vocabulary fit on
train), embeds the search queries once with the item text encoder (the training-time source of the
reasoning instruction I_r: search events carry their query; other events use the learnable
default) and collates every split into one `ModelBatch` (in chunks, with a progress bar).

    prep = prepare(load_dataset("data/amazon18-office"), Codebook.load("runs/sids/office"), CollateConfig())
    prep.batches["train"], prep.rows["valid"], prep.space
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields

import numpy as np
import torch
from tqdm.auto import tqdm

from oxygen.config import ModelConfig
from oxygen.data.batch import ModelBatch
from oxygen.data.batching import CollateConfig, FeatureSpace, InstructionLookup, collate
from oxygen.data.io import Dataset
from oxygen.data.schema import PER_HISTORY_FIELDS, Row
from oxygen.data.stats import PROFILE_FIELDS, RowStats
from oxygen.semantic_ids.codebook import Codebook
from oxygen.semantic_ids.text_encoder import encode_texts

CHUNK = 4096


@dataclass
class Prepared:
    """A dataset ready for the model: rows, tensors and the id spaces that made them."""

    dataset: Dataset
    codebook: Codebook
    space: FeatureSpace
    rows: dict[str, list[Row]]
    batches: dict[str, ModelBatch]
    lookup: InstructionLookup | None
    collate_cfg: CollateConfig


def query_table(queries: Iterable[str], encoder: str | None = None) -> dict[str, np.ndarray]:
    """Every distinct query embedded once with the item text encoder: {query: Float32[E]}."""
    queries = sorted(set(queries))
    if not queries:
        return {}
    emb = encode_texts(queries, encoder, progress=True)
    return {q: emb[i] for i, q in enumerate(queries)}


def table_lookup(table: dict[str, np.ndarray]) -> InstructionLookup | None:
    """The lookup returning a row's query embedding (None without a query; None for an empty table)."""
    if not table:
        return None
    return lambda row: table.get(row.query) if row.query else None


class QueryCache:
    """Search-query embeddings kept in memory across calls (long-running roles: the reward actor,
    rollout workers): each new query is embedded once with the item text encoder, no disk cache."""

    def __init__(self, encoder: str | None = None) -> None:
        self.encoder, self.table = encoder, {}

    def lookup(self, rows: Sequence[Row]) -> InstructionLookup:
        """The lookup of `rows`' query embeddings (embedding the new ones now; None without a query)."""
        new = sorted({r.query for r in rows if r.query and r.query not in self.table})
        if new:
            self.table.update(zip(new, encode_texts(new, self.encoder, cache_dir=None, progress=False)))
        return lambda row: self.table[row.query] if row.query else None


RowKey = tuple[str, "int | None"]  # (user_id, timestamp): a row's generated instruction


@dataclass
class RowInstructions:
    """Generated instruction vectors by (user_id, row time), used on rows of `scenarios` (None: all).
    `dropout` (training rows): that share of the covered rows keeps the learnable default instead,
    the rows picked by a hash of (seed, user, time), so the same rows in every epoch and worker.
    `gates`: whether each row's instruction states an open need (gated guidance at decode time);
    `needs`: the open need categories it states, strongest first (need slots at decode time)."""

    vectors: dict[RowKey, np.ndarray]
    scenarios: frozenset[str] | None = None
    dropout: float = 0.0
    seed: int = 0
    gates: dict[RowKey, bool] = field(default_factory=dict)
    needs: dict[RowKey, tuple[str, ...]] = field(default_factory=dict)

    def get(self, row: Row) -> np.ndarray | None:
        """The row's instruction vector, or None (no record, a scenario that reads none, or dropped)."""
        if self.scenarios is not None and row.scenario not in self.scenarios:
            return None
        if self.dropout > 0 and dropped(row, self.dropout, self.seed):
            return None
        return self.vectors.get((row.user_id, row.timestamp))

    def gate(self, row: Row) -> bool:
        """Whether the row's instruction states an open need (False without a record saying so)."""
        return self.gates.get((row.user_id, row.timestamp), False)

    def needs_of(self, row: Row) -> tuple[str, ...]:
        """The open need categories the row's instruction states, strongest first (none without a record)."""
        return self.needs.get((row.user_id, row.timestamp), ())


def dropped(row: Row, share: float, seed: int) -> bool:
    """Whether `row` is among the `share` of rows left with the default instruction: a stable hash
    of (seed, user, time) mapped to [0, 1), the same in every process (Python's hash() is not).

    >>> r = Row(user_id="u1", history=[1], target=2, scenario="homepage", timestamp=5)
    >>> dropped(r, 0.0, 0), dropped(r, 1.0, 0)
    (False, True)
    """
    key = f"{seed}:{row.user_id}:{row.timestamp}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / 2**64 < share


def instruction_lookup(queries: InstructionLookup | None, generated: RowInstructions | None
                       ) -> InstructionLookup | None:
    """Search rows: their query's embedding (`queries`); other rows: the instruction generated for
    (user, row time) when `generated` has one; else None (the model's learnable default)."""
    if generated is None or not generated.vectors:
        return queries

    def lookup(row: Row) -> np.ndarray | None:
        if row.query and queries is not None:
            return queries(row)
        return generated.get(row)
    return lookup


def query_lookup(rows: list[Row], encoder: str | None = None) -> InstructionLookup | None:
    """Embed every distinct query of `rows` once; the lookup returns a row's query embedding or None."""
    return table_lookup(query_table((r.query for r in rows if r.query), encoder))


def concat(batches: list[ModelBatch]) -> ModelBatch:
    """Concatenate ModelBatches along the batch dimension."""
    return ModelBatch(**{f.name: torch.cat([getattr(b, f.name) for b in batches])
                         for f in fields(ModelBatch)})


def crop_augment(rows: list[Row], last: int) -> list[Row]:
    """`rows` plus, for every row with more than `last` history items, a copy whose history (and
    per-history lists) keeps only the last `last` items (crop augmentation: it stresses the
    most recent items, e.g. item-to-item transitions when last = 1). last = 0: rows unchanged."""
    if last <= 0:
        return list(rows)
    extra = [r.model_copy(update={"history": r.history[-last:],
                                  **{f: getattr(r, f)[-last:] for f in PER_HISTORY_FIELDS if getattr(r, f) is not None}})
             for r in rows if len(r.history) > last]
    return list(rows) + extra


def collate_all(rows: list[Row], space: FeatureSpace, cfg: CollateConfig,
                lookup: InstructionLookup | None, desc: str, leave_user_out: bool = False) -> ModelBatch:
    """Collate many rows in chunks (progress bar) into one ModelBatch (`leave_user_out`: training
    rows, whose own pairs are in the transition counts; see oxygen.data.transitions)."""
    parts = [collate(rows[i:i + CHUNK], space, cfg, lookup, leave_user_out=leave_user_out)
             for i in tqdm(range(0, len(rows), CHUNK), desc=f"collate {desc}", leave=False)]
    return concat(parts)


def prepare(ds: Dataset, cb: Codebook, ccfg: CollateConfig, use_queries: bool = True,
            encoder: str | None = None, generated: RowInstructions | None = None,
            train_instructions: RowInstructions | None = None) -> Prepared:
    """Index and collate every split of `ds` with the codebook `cb` and windows `ccfg` (train rows
    fit the profiles and, with candidates, the transition counts). `generated` instructions go to
    the non-search rows they cover; the train split reads `train_instructions` (None: none)."""
    if "train" not in ds.splits:
        raise ValueError(f"{ds.root}: no train rows; a model needs train.jsonl (and valid.jsonl to select)")
    check_sids(ds, cb)
    space = FeatureSpace.build(cb.item_ids, cb.codes, ds.splits["train"], transitions=ccfg.candidates > 0)
    all_rows = [r for rows in ds.splits.values() for r in rows]
    lookup = query_lookup(all_rows, encoder) if use_queries else None
    batches = {s: collate_all(rows, space, ccfg, instruction_lookup(lookup, train_instructions if s == "train"
                                                                    else generated), s, leave_user_out=s == "train")
               for s, rows in ds.splits.items()}
    return Prepared(ds, cb, space, dict(ds.splits), batches, lookup, ccfg)


def check_sids(ds: Dataset, cb: Codebook) -> None:
    """Every catalogue item of `ds` has a semantic id in `cb` (ValueError naming the fix if not)."""
    missing = set(ds.item_ids) - set(cb.item_ids.tolist())
    if missing:
        raise ValueError(f"{len(missing)} items of {ds.root} (e.g. {sorted(missing)[:3]}) have no SID; "
                         f"rebuild with `python -m apps.build_sids --data {ds.root}`")


@dataclass
class RowCollator:
    """Train rows -> one ModelBatch where the rows are (a Ray Train worker's shard): crop copies,
    the fitted space, the windows and the query table (picklable, shipped once). `rows` = the
    whole split's training rows after augmentation (what the schedule is sized on)."""

    space: FeatureSpace
    cfg: CollateConfig
    queries: dict[str, np.ndarray]
    crop_last: int
    rows: int
    generated: RowInstructions | None = None  # instructions attached to the train rows

    def __len__(self) -> int:
        return self.rows

    def __call__(self, rows: list[Row]) -> ModelBatch:
        """The collated training batch of `rows` (own-user transitions left out)."""
        lookup = instruction_lookup(table_lookup(self.queries), self.generated)
        return collate_all(crop_augment(rows, self.crop_last), self.space, self.cfg, lookup, "train shard",
                           leave_user_out=True)


def prepare_from_stats(ds: Dataset, stats: RowStats, cb: Codebook, ccfg: CollateConfig,
                       use_queries: bool = True, crop_last: int = 0, generated: RowInstructions | None = None,
                       train_instructions: RowInstructions | None = None) -> tuple[Prepared, RowCollator]:
    """`prepare` for a train split that is not in memory: the space is fit on its statistics
    (`ds` holds the items and the valid rows, collated here), the train rows are collated by the
    returned RowCollator where they live."""
    check_sids(ds, cb)
    space = FeatureSpace.from_stats(cb.item_ids, cb.codes, stats)
    valid = list(ds.splits.get("valid", []))
    table = query_table(stats.queries | {r.query for r in valid if r.query}) if use_queries else {}
    lookup = table_lookup(table)
    batches = {"valid": collate_all(valid, space, ccfg, instruction_lookup(lookup, generated), "valid")}
    collator = RowCollator(space, ccfg, table, crop_last, stats.augmented_rows, train_instructions)
    return Prepared(ds, cb, space, {"valid": valid}, batches, lookup, ccfg), collator


def model_config_for(prep: Prepared, base: ModelConfig) -> ModelConfig:
    """`base` with the data-dependent sizes (codebook widths, item and profile vocabularies) filled."""
    if base.candidates != prep.collate_cfg.candidates:
        raise ValueError(f"model.candidates={base.candidates} but the rows were collated with "
                         f"{prep.collate_cfg.candidates} candidates; collate with CollateConfig(candidates=model.candidates)")
    C = base.candidates
    longest = prep.collate_cfg.short_len + len(PROFILE_FIELDS) + (base.igr_k if base.use_igr else 0) + C + 4
    return base.model_copy(update={"use_item_id": base.use_item_id is not False,
        "codebook_sizes": tuple(int(w) for w in prep.codebook.widths),
        "n_items": len(prep.space.item_ids), "profile_size": prep.space.profile_size,
        "profile_slots": len(PROFILE_FIELDS), "max_positions": max(base.max_positions, longest)})


def subsample(batch: ModelBatch, n: int | None, seed: int = 0) -> tuple[ModelBatch, np.ndarray]:
    """At most `n` rows of `batch` (a fixed random subset, for cheaper validation) and their index."""
    if n is None or n >= len(batch):
        return batch, np.arange(len(batch))
    idx = np.sort(np.random.default_rng(seed).choice(len(batch), n, replace=False))
    return batch.select(torch.from_numpy(idx)), idx
