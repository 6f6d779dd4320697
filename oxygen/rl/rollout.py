"""Rollouts: a policy version generates a group of G items per request through THE decode path, and
records what the learner needs (`RolloutBatch`, the one batch type between the post-training roles).

`RolloutWorker` holds a copy of the bundle's model at some weight version: `generate(rows)`
collates the requests (search queries embedded once per worker, `QueryCache`), decodes G items per
request in its scenario's pool (trie-constrained beam sampling, or beam search), looks up their SID
paths and scores them teacher-forced under the same weights (old log-probs, `rl.policy`).
`set_weights(state, version)` installs a newer policy. Rewards are filled in by the driver from
the reward mapping (`with_rewards`).

    worker = RolloutWorker(bundle, RolloutConfig(group=8))
    batch = worker.generate(rows, seed=3)          # items Int[B, G], codes Int[B, G, L], old_logp Float[B, G, L]
    batch = with_rewards(batch, mapping, real)     # rewards Float[B, G], target_reward Float[B] (NaN: synthetic)
    # with_rewards(batch, mapping, real, target_bonus=1.0): + 1 where an item is its real request's target
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from oxygen.config import RolloutConfig
from oxygen.data.batching import collate
from oxygen.data.schema import Row
from oxygen.decoding.decode import DecoderTables
from oxygen.device import autocast, module_device
from oxygen.model.bundle import CATALOGUE_POOL, Bundle
from oxygen.rl.policy import repeat_rows, token_log_probs
from oxygen.rl.rewards import Scorer
from oxygen.training.prepare import QueryCache


@dataclass
class RolloutBatch:
    """B requests, each with G generated items: what the learner trains on.

    items Int64[B, G] (-1: fewer legal items than G), codes Int64[B, G, L] (0 where no item),
    old_logp Float32[B, G, L] (the generating policy's token log-probs), version (its weights);
    after `with_rewards`: rewards Float64[B, G] (mapped totals), target_reward Float64[B] (the mapped
    reward of the request's real target; NaN for synthetic requests) and the reward parts."""

    rows: list[Row]
    items: np.ndarray
    codes: np.ndarray
    old_logp: np.ndarray
    version: int
    rewards: np.ndarray | None = None
    target_reward: np.ndarray | None = None
    parts: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def mask(self) -> np.ndarray:
        """Bool[B, G]: real generated items."""
        return self.items >= 0


class RolloutWorker:
    """One policy copy that generates groups (see the module docstring)."""

    def __init__(self, bundle: Bundle, cfg: RolloutConfig, tables: DecoderTables | None = None,
                 precision: str = "auto") -> None:
        """`tables`: the bundle's decoder tables (`decoder_tables(bundle)`) built once elsewhere and
        shared, else this worker builds its own. The worker runs on the bundle model's device, its
        forwards in `precision` (oxygen.device.autocast; the learner must use the same)."""
        self.bundle, self.cfg, self.precision = bundle, cfg, precision
        self.model = copy.deepcopy(bundle.model).eval()
        self.decoder = bundle.decoder(CATALOGUE_POOL, self.model, tables)
        self.decoder.precision = precision
        self.queries, self.version = QueryCache(), 0

    def set_weights(self, state: dict[str, torch.Tensor], version: int) -> None:
        """Install policy weights `state` as version `version`."""
        self.model.load_state_dict(state)
        self.model.eval()
        self.version = version

    def codes_of(self, items: np.ndarray) -> np.ndarray:
        """Int64[B, G, L] SID paths of items Int[B, G] (0 where -1)."""
        space = self.bundle.space
        idx = space.indices(np.where(items >= 0, items, space.item_ids[0]).reshape(-1)).reshape(items.shape)
        return np.where(items[..., None] >= 0, space.codes[idx], 0)

    def generate(self, rows: Sequence[Row], seed: int = 0) -> RolloutBatch:
        """G items per request of `rows` from the current weights, with their old log-probs."""
        rows, g = list(rows), self.cfg.group
        batch = collate(rows, self.bundle.space, self.bundle.collate_cfg, self.queries.lookup(rows), with_targets=False)
        sampling = {"temperature": self.cfg.temperature, "top_p": self.cfg.top_p, "seed": seed} if self.cfg.sampling else None
        pools = self.bundle.pools_for([r.scenario for r in rows])
        out = self.decoder.decode(batch, [r.history for r in rows], self.cfg.beam or 2 * g, g, pools, sampling)
        items = np.full((len(rows), g), -1, dtype=np.int64)
        items[:, : out.items.shape[1]] = out.items[:, :g]
        codes = self.codes_of(items)
        dev = module_device(self.model)
        with torch.no_grad(), autocast(dev, self.precision):
            flat = torch.as_tensor(codes.reshape(-1, codes.shape[-1]), device=dev)
            logp = token_log_probs(self.model, repeat_rows(batch.to(dev), g), flat)
        return RolloutBatch(rows, items, codes, logp.float().cpu().reshape(codes.shape).numpy(), self.version)


def decoder_tables(bundle: Bundle) -> DecoderTables:
    """The read-only decoder tables a RolloutWorker of `bundle` decodes with (its scenario pools and
    the catalogue pool), to build once and share between workers."""
    return bundle.decoder(CATALOGUE_POOL).tables()


def with_rewards(batch: RolloutBatch, mapping: Scorer, real: np.ndarray, target_bonus: float = 0.0) -> RolloutBatch:
    """`batch` with its rewards: the mapped total of every generated item and, for requests with
    `real` True (Bool[B]), the mapped reward of the request's real target item (R*_g, SA-GCPO's
    threshold); synthetic requests get NaN. With `target_bonus` > 0 a generated item that IS its
    real request's logged target also earns the bonus (a rule reward on the logged label, as in
    MiniOneRec's RL stage; part "target"); otherwise the target enters only the threshold."""
    out = mapping(batch.rows, batch.items)
    targets = np.array([r.target for r in batch.rows], dtype=np.int64)
    target = mapping(batch.rows, targets[:, None]).total[:, 0]
    rewards, parts = np.where(batch.mask, out.total, 0.0), dict(out.parts)
    if target_bonus > 0:
        parts["target"] = ((batch.items == targets[:, None]) & batch.mask & np.asarray(real)[:, None]).astype(np.float64)
        rewards = rewards + target_bonus * parts["target"]
    return replace(batch, rewards=rewards, target_reward=np.where(real, target, np.nan), parts=parts)


def concat_rollouts(batches: Sequence[RolloutBatch]) -> RolloutBatch:
    """One batch of the requests of `batches` in order (e.g. the shares of several rollout workers),
    padded to the widest group; the oldest weight version is kept."""
    if not batches:
        raise ValueError("no rollout batches to concatenate")
    g = max(b.items.shape[1] for b in batches)

    def pad(x: np.ndarray, value: float) -> np.ndarray:
        widths = [(0, 0), (0, g - x.shape[1])] + [(0, 0)] * (x.ndim - 2)
        return np.pad(x, widths, constant_values=value)
    return RolloutBatch([r for b in batches for r in b.rows], np.concatenate([pad(b.items, -1) for b in batches]),
                        np.concatenate([pad(b.codes, 0) for b in batches]),
                        np.concatenate([pad(b.old_logp, 0.0) for b in batches]), min(b.version for b in batches))
