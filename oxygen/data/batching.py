"""Collate schema rows into `ModelBatch` tensors (the one batch type of the model).

`FeatureSpace` holds what turns ids into tensor indices: the item -> dense index map, every item's
SID codes, and the profile vocabulary (fit on train rows; unseen values map to 0). `collate`
splits each row's history into the short window (the last `short_len` items) and the long history
before it (the last `long_len` of those, the candidates of instruction-guided retrieval), and
attaches the reasoning-instruction embedding given by an `InstructionLookup` (query text for
search events in training; Redis records in serving; None -> the model's learnable default) and,
with `candidates` > 0, the collaborative candidates of the recent history from the space's
`TransitionTable` (`leave_user_out=True` for train rows: a row's own user's pairs are not counted).

    space = FeatureSpace.build(item_ids, codes, train_rows)
    batch = collate(rows, space, CollateConfig(short_len=10, long_len=40), lookup)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from oxygen.data.batch import ModelBatch
from oxygen.data.schema import BEHAVIOUR_WEIGHTS, BEHAVIOURS, SCENARIOS, Row
from oxygen.data.stats import PROFILE_FIELDS, RowStats, row_stats
from oxygen.data.transitions import TransitionTable

BEHAVIOUR_ID = {b: i + 1 for i, b in enumerate(BEHAVIOURS)}  # 0 pad, 4 unknown
SCENARIO_ID = {s: i + 1 for i, s in enumerate(SCENARIOS)}  # 0 unknown
UNKNOWN_BEHAVIOUR = len(BEHAVIOURS) + 1
InstructionLookup = Callable[[Row], "np.ndarray | None"]


@dataclass(frozen=True)
class CollateConfig:
    """Window sizes, the instruction embedding width, and `history_trigger`: a row without a trigger
    takes its last history item as the trigger (next-item data with no scenarios, e.g. Office,
    where the most recent item plays the part of the cart/checkout trigger). `candidates` = C > 0
    adds the top-C transition candidates of the history (scored with `candidate_decay` over the
    last `candidate_max_back` items)."""

    short_len: int = 10
    long_len: int = 40
    instr_dim: int = 384
    history_trigger: bool = False
    candidates: int = 0
    candidate_decay: float = 0.3
    candidate_max_back: int = 10


@dataclass
class FeatureSpace:
    """Item ids -> dense index and SID codes; profile values -> ids.

    item_ids Int64[N], codes Int64[N, L]; `profile_vocab[(field, value)]` in 1..P-1 (0 unknown);
    `transitions`: the train transitions (only needed when collating with candidates)."""

    item_ids: np.ndarray
    codes: np.ndarray
    profile_vocab: dict[tuple[str, str], int]
    transitions: TransitionTable | None = None

    @classmethod
    def build(cls, item_ids: Sequence[int], codes: np.ndarray, rows: Sequence[Row],
              transitions: bool = False) -> "FeatureSpace":
        """Fit the profile vocabulary (and, with `transitions`, the transition counts) on `rows`
        (train); codes[i] is the SID of item_ids[i]."""
        return cls.from_stats(item_ids, codes, row_stats(rows, pairs=transitions))

    @classmethod
    def from_stats(cls, item_ids: Sequence[int], codes: np.ndarray, stats: RowStats) -> "FeatureSpace":
        """The space fit on train statistics (`oxygen.data.stats`; transitions when it has pairs)."""
        codes = np.asarray(codes, dtype=np.int64)
        if codes.ndim != 2 or len(codes) != len(item_ids):
            raise ValueError(f"codes must be [n_items, levels] aligned with item_ids; got {codes.shape} "
                             f"for {len(item_ids)} items")
        vocab = {fv: i + 1 for i, fv in enumerate(sorted(stats.profile_values))}
        table = TransitionTable.from_pairs(stats.pairs) if stats.pairs is not None else None
        return cls(np.asarray(item_ids, dtype=np.int64), codes, vocab, table)

    def __post_init__(self) -> None:
        self._by_id = np.argsort(self.item_ids, kind="stable")  # item id -> index by binary search, no dict

    @property
    def levels(self) -> int:
        return int(self.codes.shape[1])

    @property
    def profile_size(self) -> int:
        """Size of the profile embedding table (ids 0..profile_size-1)."""
        return len(self.profile_vocab) + 1

    def index(self, item_id: int) -> int:
        """Dense index of an item id; KeyError with a clear message when unknown."""
        return int(self.indices([item_id])[0])

    def indices(self, item_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Int64[n] dense indices of item ids; KeyError naming the first unknown one."""
        ids = np.asarray(item_ids if isinstance(item_ids, np.ndarray) else [int(i) for i in item_ids], dtype=np.int64)
        if not len(self._by_id):
            pos = np.zeros(ids.shape, dtype=np.int64)
        else:
            pos = self._by_id[np.minimum(np.searchsorted(self.item_ids[self._by_id], ids), len(self._by_id) - 1)]
        bad = self.item_ids[pos] != ids if len(self._by_id) else np.ones(ids.shape, dtype=bool)
        if bad.any():
            raise KeyError(f"item {int(ids[bad][0])} has no semantic id; rebuild SIDs for this catalogue")
        return pos


def _history_features(row: Row, space: FeatureSpace) -> np.ndarray:
    """[len(history), L + 3] int64: codes, item index + 1, behaviour id, scenario id per item."""
    n = len(row.history)
    out = np.zeros((n, space.levels + 3), dtype=np.int64)
    k = space.indices(row.history)
    out[:, : space.levels] = space.codes[k]
    out[:, space.levels] = k + 1
    beh = row.history_behaviours or [None] * n
    scen = row.history_scenarios or [None] * n
    out[:, space.levels + 1] = [BEHAVIOUR_ID.get(b, UNKNOWN_BEHAVIOUR) for b in beh]
    out[:, space.levels + 2] = [SCENARIO_ID.get(s, 0) for s in scen]
    return out


def _pad(rows: list[np.ndarray], length: int, width: int, left: bool) -> tuple[np.ndarray, np.ndarray]:
    """Stack variable-length [n_i, width] arrays into [B, length, width] (+ mask), keeping the
    last `length` entries; padding goes on the left of the short window (recent items aligned)."""
    out = np.zeros((len(rows), length, width), dtype=np.int64)
    mask = np.zeros((len(rows), length), dtype=bool)
    for b, a in enumerate(rows):
        a = a[len(a) - min(len(a), length):]
        start = length - len(a) if left else 0
        out[b, start:start + len(a)] = a
        mask[b, start:start + len(a)] = True
    return out, mask


def _split(feats: np.ndarray, L: int, prefix: str) -> dict[str, torch.Tensor]:
    t = torch.from_numpy(feats)
    return {f"{prefix}_codes": t[..., :L], f"{prefix}_items": t[..., L],
            f"{prefix}_behaviour": t[..., L + 1], f"{prefix}_scenario": t[..., L + 2]}


def _instructions(rows: Sequence[Row], dim: int, lookup: InstructionLookup | None):
    emb = np.zeros((len(rows), dim), dtype=np.float32)
    mask = np.zeros(len(rows), dtype=bool)
    for b, r in enumerate(rows):
        e = lookup(r) if lookup is not None else None
        if e is not None:
            emb[b], mask[b] = e, True
    return torch.from_numpy(emb), torch.from_numpy(mask)


def _targets(rows: Sequence[Row], space: FeatureSpace, train: bool):
    L = space.levels
    idx = space.indices([r.target for r in rows]) if train else np.full(len(rows), -1, dtype=np.int64)
    codes = space.codes[idx] if train else np.zeros((len(rows), L), dtype=np.int64)
    weight = [BEHAVIOUR_WEIGHTS[r.behaviour or "purchase"] for r in rows]
    return torch.from_numpy(codes), torch.from_numpy(idx), torch.tensor(weight, dtype=torch.float32, device="cpu")


def _candidates(rows: Sequence[Row], space: FeatureSpace, cfg: CollateConfig, leave_user_out: bool):
    """cand_codes Long[B, C, L], cand_items Long[B, C] (index + 1), cand_mask Bool[B, C]."""
    C, L = cfg.candidates, space.levels
    codes, items = np.zeros((len(rows), C, L), dtype=np.int64), np.zeros((len(rows), C), dtype=np.int64)
    mask = np.zeros((len(rows), C), dtype=bool)
    if C > 0 and space.transitions is None:
        raise ValueError("CollateConfig.candidates > 0 needs FeatureSpace.transitions: build the space with "
                         "FeatureSpace.build(..., transitions=True) on the train rows")
    for b, r in enumerate(rows if C > 0 else []):
        found = space.transitions.candidates(r.history, C, cfg.candidate_decay, cfg.candidate_max_back,
                                             exclude_user=r.user_id if leave_user_out else None)
        idx = space.indices(list(found))
        codes[b, :len(idx)], items[b, :len(idx)], mask[b, :len(idx)] = space.codes[idx], np.add(idx, 1), True
    return torch.from_numpy(codes), torch.from_numpy(items), torch.from_numpy(mask)


def _trigger(row: Row, from_history: bool) -> int | None:
    """The row's trigger item, else (with `from_history`) its last history item, else None."""
    if row.trigger is not None or not from_history or not row.history:
        return row.trigger
    return row.history[-1]


def collate(rows: Sequence[Row], space: FeatureSpace, cfg: CollateConfig = CollateConfig(),
            lookup: InstructionLookup | None = None, with_targets: bool = True,
            leave_user_out: bool = False) -> ModelBatch:
    """Turn rows into a ModelBatch (see its docstring for shapes). `with_targets=False` for serving;
    `leave_user_out=True` for training rows with candidates (see the module docstring)."""
    if not rows:
        raise ValueError("collate needs at least one row")
    L = space.levels
    hist = [_history_features(r, space) for r in rows]
    short, short_mask = _pad(hist, cfg.short_len, L + 3, left=True)
    older = [h[: max(0, len(h) - cfg.short_len)] for h in hist]
    long, long_mask = _pad(older, max(cfg.long_len, 1), L + 3, left=False)
    prof = np.array([[space.profile_vocab.get((f, getattr(r.profile, f)), 0) if r.profile else 0
                      for f in PROFILE_FIELDS] for r in rows], dtype=np.int64)
    triggers = [_trigger(r, cfg.history_trigger) for r in rows]
    trig = np.zeros((len(rows), L), dtype=np.int64)
    tmask = np.array([t is not None for t in triggers])
    for b, t in enumerate(triggers):
        if t is not None:
            trig[b] = space.codes[space.index(t)]
    instr, imask = _instructions(rows, cfg.instr_dim, lookup)
    tcodes, titems, weight = _targets(rows, space, with_targets)
    cand_codes, cand_items, cand_mask = _candidates(rows, space, cfg, leave_user_out)
    return ModelBatch(
        **_split(short, L, "short"), short_mask=torch.from_numpy(short_mask),
        **_split(long, L, "long"), long_mask=torch.from_numpy(long_mask),
        profile=torch.from_numpy(prof), scenario=torch.tensor([SCENARIO_ID.get(r.scenario, 0) for r in rows], device="cpu"),
        trigger_codes=torch.from_numpy(trig), trigger_mask=torch.from_numpy(tmask),
        instr_emb=instr, instr_mask=imask, cand_codes=cand_codes, cand_items=cand_items, cand_mask=cand_mask,
        target_codes=tcodes, target_items=titems, weight=weight)
