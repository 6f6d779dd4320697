"""The reward mapping: format, relevance, ranking and diversity rewards behind one signature, and
the scenario-aware mapping that combines them (OxygenREC's reward mapping service).

Every reward is called as `reward(rows, groups) -> Float[B, G]`: B requests (`Row`s: the policy's
prompts — user, time, scenario, trigger, query, history, profile) and, per request, a group of G
generated item ids `groups` Int[B, G] (-1: no item); out, one value per generated item. No reward
reads a row's target or hidden truth: they see what the policy saw and what it generated.
- `FormatReward`: 1 for an item of the request scenario's pool, else `penalty` (padding, unknown
  ids, items outside the pool).
- `RelevanceReward`: cosine in the Q2I space of a trained bundle (the adapter space where the
  model's query q = MLP(scenario, instruction) meets the item projections) between the request's
  query (search) or stored instruction and each item; 0 where the request has neither.
- `RankingReward`: the unified ranking model's expected value of each item in its request's
  context, a mix of p_click, p_cart, p_purchase and p_purchase x price (RewardConfig.value).
- `DiversityReward`: group level; 1 / (number of the group's items sharing the item's key — leaf
  category or SID prefix), so a group's values sum to its number of distinct keys.
`RewardMapping` weighs them per scenario (RewardConfig.weights) into the total that post-training
optimises, and keeps the parts for reports.

    mapping = build_mapping(items, bundle, ranker, space, RewardConfig())
    out = mapping(rows, groups)          # out.total Float[B, G]; out.parts["ranking"] Float[B, G]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from oxygen.config import RankingValue, RewardConfig, RewardParts
from oxygen.data.batching import InstructionLookup, collate
from oxygen.data.io import find_file, load_items
from oxygen.data.schema import Item, Row
from oxygen.device import module_device
from oxygen.model.bundle import Bundle
from oxygen.rl.rank_data import RankSpace
from oxygen.rl.rank_fit import load_ranker, predict
from oxygen.rl.ranking import Ranker
from oxygen.training.prepare import QueryCache

PARTS: tuple[str, ...] = tuple(RewardParts.model_fields)  # format, relevance, ranking, diversity


class Reward(Protocol):
    """The one signature: rows (B requests) and groups Int[B, G] -> Float[B, G]."""

    def __call__(self, rows: Sequence[Row], groups: np.ndarray) -> np.ndarray: ...


def check_groups(rows: Sequence[Row], groups: np.ndarray) -> np.ndarray:
    """`groups` as Int64[B, G] with B = len(rows); a clear error otherwise."""
    g = np.asarray(groups)
    if g.ndim != 2 or g.shape[0] != len(rows) or (g.size and not np.issubdtype(g.dtype, np.integer)):
        raise ValueError(f"groups must be an integer array [B, G] with B = len(rows) = {len(rows)}, "
                         f"got shape {g.shape} dtype {g.dtype}; pass one row of item ids (-1 = none) per request")
    return g.astype(np.int64)


class ItemLookup:
    """Item id -> dense index (-1 for padding and unknown ids), vectorised over arrays."""

    def __init__(self, item_ids: Sequence[int]) -> None:
        ids = np.asarray(item_ids, dtype=np.int64)
        self.size = int(ids.max()) + 1 if len(ids) else 0
        self.table = np.full(max(self.size, 1), -1, dtype=np.int64)
        self.table[ids] = np.arange(len(ids))

    def __call__(self, groups: np.ndarray) -> np.ndarray:
        """Int[...] item ids -> Int[...] dense indices, -1 where the id is padding or unknown."""
        ok = (groups >= 0) & (groups < self.size)
        return np.where(ok, self.table[np.clip(groups, 0, max(self.size - 1, 0))], -1)


class FormatReward:
    """1 for an item of the request scenario's pool, else `penalty`.

    >>> r = FormatReward({"search": [1, 2], "cart": [3]}, penalty=-1.0)
    >>> rows = [Row(user_id="u1", history=[], target=0, scenario="search"),
    ...         Row(user_id="u2", history=[], target=0, scenario="cart")]
    >>> r(rows, np.array([[1, 3], [3, -1]])).tolist()
    [[1.0, -1.0], [1.0, -1.0]]
    """

    def __init__(self, pools: Mapping[str, Sequence[int]], penalty: float = -1.0,
                 default: Sequence[int] | None = None) -> None:
        """`pools`: scenario -> legal item ids; `default`: the pool of scenarios not named (None: no
        item is legal there)."""
        self.pools = {s: np.unique(np.asarray(p, dtype=np.int64)) for s, p in pools.items()}
        self.default = np.unique(np.asarray(default, dtype=np.int64)) if default is not None else np.zeros(0, np.int64)
        self.penalty = penalty

    def __call__(self, rows: Sequence[Row], groups: np.ndarray) -> np.ndarray:
        g = check_groups(rows, groups)
        out = np.full(g.shape, self.penalty, dtype=np.float64)
        for b, row in enumerate(rows):
            pool = self.pools.get(row.scenario or "homepage", self.default)
            out[b, np.isin(g[b], pool) & (g[b] >= 0)] = 1.0
        return out


def diversity(keys: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Float[B, G]: 1 / (valid items of the group sharing the item's key), 0 for invalid items.

    keys Int[B, G], valid Bool[B, G]. A group's values sum to its number of distinct keys:
    >>> diversity(np.array([[5, 5, 7, 9]]), np.array([[True, True, True, False]])).tolist()
    [[0.5, 0.5, 1.0, 0.0]]
    """
    same = (keys[:, :, None] == keys[:, None, :]) & valid[:, :, None] & valid[:, None, :]
    count = same.sum(-1)
    return np.where(valid, 1.0 / np.maximum(count, 1), 0.0)


class DiversityReward:
    """Group-level diversity over item keys (leaf category or SID prefix), `diversity` per group."""

    def __init__(self, item_ids: Sequence[int], keys: Sequence[int]) -> None:
        """`keys[k]`: the key (int) of item `item_ids[k]`."""
        self.lookup, self.keys = ItemLookup(item_ids), np.asarray(keys, dtype=np.int64)

    def __call__(self, rows: Sequence[Row], groups: np.ndarray) -> np.ndarray:
        idx = self.lookup(check_groups(rows, groups))
        valid = idx >= 0
        return diversity(np.where(valid, self.keys[np.maximum(idx, 0)], -1), valid)


def expected_value(probs: np.ndarray, price: np.ndarray, value: RankingValue, price_unit: float) -> np.ndarray:
    """Float[B, G]: click p_c + cart p_a + purchase p_p + gmv p_p price / price_unit.

    probs Float[B, G, 3] (p_click, p_cart, p_purchase), price Float[B, G]:
    >>> v = RankingValue(click=1.0, cart=0.0, purchase=1.0, gmv=1.0)
    >>> expected_value(np.array([[[0.5, 0.2, 0.1]]]), np.array([[20.0]]), v, price_unit=10.0).round(3).tolist()
    [[0.8]]
    """
    gmv = probs[..., 2] * price / price_unit
    return value.click * probs[..., 0] + value.cart * probs[..., 1] + value.purchase * probs[..., 2] + value.gmv * gmv


class RankingReward:
    """The unified ranking model's expected value of each generated item in its request's context."""

    def __init__(self, ranker: Ranker, space: RankSpace, prices: Mapping[int, float], value: RankingValue,
                 chunk: int = 256) -> None:
        """`prices`: item id -> price (missing: 0); the GMV term is in units of the median price."""
        self.ranker, self.space, self.value, self.chunk = ranker.eval(), space, value, chunk
        self.lookup = ItemLookup(list(prices))
        self.price = np.array(list(prices.values()), dtype=np.float64)
        positive = self.price[self.price > 0]
        self.price_unit = float(np.median(positive)) if len(positive) else 1.0

    def probabilities(self, rows: Sequence[Row], groups: np.ndarray) -> np.ndarray:
        """Float[B, G, 3]: the ranker's funnel probabilities of each generated item."""
        g = check_groups(rows, groups)
        samples = self.space.row_samples(rows, g, self.ranker.cfg.max_events)
        batch = self.space.collate(samples)
        return predict(self.ranker, batch, self.chunk)[:, 0, : g.shape[1]]

    def __call__(self, rows: Sequence[Row], groups: np.ndarray) -> np.ndarray:
        g = check_groups(rows, groups)
        idx = self.lookup(g)
        price = np.where(idx >= 0, self.price[np.maximum(idx, 0)], 0.0)
        out = expected_value(self.probabilities(rows, g), price, self.value, self.price_unit)
        return np.where(idx >= 0, out, 0.0)


def cosine_rewards(q: np.ndarray, has_q: np.ndarray, item_vecs: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Float[B, G]: q_b . v_bg for unit q Float[B, A] and unit item vectors Float[B, G, A]; 0 where
    the request has no query (has_q Bool[B]) or the item is invalid (valid Bool[B, G]).

    >>> q = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> v = np.array([[[1.0, 0.0], [0.0, 1.0]], [[0.6, 0.8], [1.0, 0.0]]])
    >>> cosine_rewards(q, np.array([True, False]), v, np.ones((2, 2), bool)).tolist()
    [[1.0, 0.0], [0.0, 0.0]]
    """
    cos = np.einsum("ba,bga->bg", q, item_vecs)
    return np.where(has_q[:, None] & valid, cos, 0.0)


class RelevanceReward:
    """Cosine in a bundle's Q2I space between the request's query / instruction and each item."""

    def __init__(self, bundle: Bundle, instructions: InstructionLookup | None = None,
                 encoder: str | None = None) -> None:
        """`instructions`: a row's stored instruction vector (non-search rows; None: none);
        search queries are embedded with the item text encoder (`encoder` folder, None: packaged)."""
        self.bundle, self.instructions, self.encoder = bundle, instructions, encoder
        self.model = bundle.model.eval()
        self.lookup = ItemLookup(bundle.space.item_ids.tolist())
        self.device = module_device(self.model)
        with torch.no_grad():
            codes = torch.as_tensor(np.asarray(bundle.space.codes), dtype=torch.long, device=self.device)
            self.item_vecs = self.model.retriever.items(self.model.embed.item(codes)).float().cpu().numpy()  # Float[N, A]
        self.queries_cache = QueryCache(encoder)

    def _query_vectors(self, rows: Sequence[Row]) -> InstructionLookup:
        """The lookup of each row's instruction: its query's embedding (search), else the stored one."""
        queries = self.queries_cache.lookup(rows)

        def lookup(row: Row) -> np.ndarray | None:
            if row.query:
                return queries(row)
            return self.instructions(row) if self.instructions is not None else None
        return lookup

    def queries(self, rows: Sequence[Row]) -> tuple[np.ndarray, np.ndarray]:
        """(q Float[B, A] unit rows, has_q Bool[B]): each request's point in the Q2I space."""
        lookup = self._query_vectors(rows)
        has = np.array([lookup(r) is not None for r in rows], dtype=bool)
        batch = collate(list(rows), self.bundle.space, self.bundle.collate_cfg, lookup, with_targets=False)
        with torch.no_grad():
            q = self.model.conditions(batch.to(self.device)).q.float().cpu().numpy()
        return q, has

    def __call__(self, rows: Sequence[Row], groups: np.ndarray) -> np.ndarray:
        g = check_groups(rows, groups)
        q, has = self.queries(rows)
        idx = self.lookup(g)
        vecs = self.item_vecs[np.maximum(idx, 0)]
        return cosine_rewards(q, has, vecs, idx >= 0)


@dataclass
class Rewards:
    """The mapped total Float[B, G] and every computed part by name (Float[B, G] each)."""

    total: np.ndarray
    parts: dict[str, np.ndarray]


Scorer = Callable[[Sequence[Row], np.ndarray], Rewards]  # a RewardMapping, or a proxy of the reward actor


class RewardMapping:
    """Per scenario, total = sum over parts of weight[scenario][part] x part(rows, groups)."""

    def __init__(self, rewards: Mapping[str, Reward], cfg: RewardConfig) -> None:
        """`rewards`: part name (PARTS) -> reward; a part some scenario weighs > 0 must be present."""
        unknown = set(rewards) - set(PARTS)
        if unknown:
            raise ValueError(f"unknown reward parts {sorted(unknown)}; the parts are {PARTS}")
        missing = sorted({p for w in cfg.weights.values() for p in PARTS if getattr(w, p) > 0} - set(rewards))
        if missing:
            raise ValueError(f"the reward weights use {missing} but no such reward was given; give it or set "
                             f"its weights to 0 (--set weights.<scenario>.<part>=0)")
        self.rewards, self.cfg = dict(rewards), cfg

    def weights(self, rows: Sequence[Row]) -> np.ndarray:
        """Float[B, len(PARTS)]: each request's part weights (a scenario without weights: homepage's)."""
        default = self.cfg.weights.get("homepage", RewardParts())
        return np.array([[getattr(self.cfg.weights.get(r.scenario or "homepage", default), p) for p in PARTS]
                         for r in rows], dtype=np.float64).reshape(len(rows), len(PARTS))

    def __call__(self, rows: Sequence[Row], groups: np.ndarray) -> Rewards:
        g = check_groups(rows, groups)
        w = self.weights(rows)
        total, parts = np.zeros(g.shape, dtype=np.float64), {}
        for k, name in enumerate(PARTS):
            if name in self.rewards and (w[:, k] > 0).any():
                parts[name] = self.rewards[name](rows, g)
                total += w[:, k, None] * parts[name]
        return Rewards(total, parts)


def leaf_keys(items: Sequence[Item]) -> list[int]:
    """An int per item for its leaf category (last category; items without one get a key of their own)."""
    ids: dict[str, int] = {}
    return [ids.setdefault(it.categories[-1], len(ids)) if it.categories else -2 - k for k, it in enumerate(items)]


def sid_keys(bundle: Bundle, levels: int) -> list[int]:
    """An int per bundle item for its first `levels` SID codes."""
    codes = np.asarray(bundle.space.codes)[:, :levels]
    _, inverse = np.unique(codes, axis=0, return_inverse=True)
    return inverse.reshape(-1).tolist()


def build_mapping(items: Sequence[Item], bundle: Bundle | None, ranker: Ranker | None, space: RankSpace | None,
                  cfg: RewardConfig, instructions: InstructionLookup | None = None) -> RewardMapping:
    """The reward mapping over a catalogue: format over the bundle's scenario pools (no bundle: the
    catalogue), diversity by `cfg.diversity_key`, relevance from the bundle's Q2I space, ranking
    from the ranker; parts whose model is missing are left out (their weights must be 0)."""
    catalogue = [it.item_id for it in items]
    pools = {s: spec.pool for s, spec in bundle.scenarios.items()} if bundle is not None else {}
    rewards: dict[str, Reward] = {"format": FormatReward(pools, cfg.format_penalty, default=catalogue)}
    if cfg.diversity_key == "leaf":
        rewards["diversity"] = DiversityReward(catalogue, leaf_keys(items))
    elif bundle is not None:
        level = {"sid1": 1, "sid2": 2}[cfg.diversity_key]
        rewards["diversity"] = DiversityReward(bundle.space.item_ids.tolist(), sid_keys(bundle, level))
    if bundle is not None:
        rewards["relevance"] = RelevanceReward(bundle, instructions)
    if ranker is not None and space is not None:
        rewards["ranking"] = RankingReward(ranker, space, {it.item_id: it.price or 0.0 for it in items}, cfg.value)
    return RewardMapping(rewards, cfg)


@dataclass(frozen=True)
class RewardSources:
    """Where the reward mapping's parts come from: the dataset folder (its items.jsonl: pools,
    leaves, prices), a trained bundle (pools, Q2I space, SIDs; None: none) and a ranker checkpoint
    from `apps.train_ranker` (None: none)."""

    data: str
    bundle: str | None = None
    ranker: str | None = None
    device: str = "cpu"  # where the bundle's Q2I space and the ranker run (oxygen.device)


def load_mapping(sources: RewardSources, cfg: RewardConfig) -> RewardMapping:
    """`build_mapping` over the files `sources` names (what the reward actor runs)."""
    root = Path(sources.data)
    path = find_file(root, "items")
    if path is None:
        raise FileNotFoundError(f"{root}: no items.jsonl or items.parquet; pass a dataset folder")
    items = load_items(path)
    bundle = Bundle.load(sources.bundle, sources.device) if sources.bundle else None
    ranker, space = load_ranker(sources.ranker, sources.device) if sources.ranker else (None, None)
    return build_mapping(items, bundle, ranker, space, cfg)
