"""Behaviour embeddings of items: Swing item-to-item pairs mined from user histories, then contrastive
training (InfoNCE with in-batch negatives) of one vector per item. This is the path ID-only datasets
use, and the behaviour half of fused embeddings.

Pair mining (`mine_pairs`), on the TRAIN split only. Every user u has an item set I_u (all items of
their rows) with weight w_u = 1 / sqrt(|I_u|). The Swing score of items i != j is

    swing(i, j) = sum over user pairs {u, v} with i, j in I_u ∩ I_v of  w_u * w_v / (alpha + |I_u ∩ I_v|)

so pairs shared by many users whose histories otherwise overlap little score higher. Consecutive
items (a, b) of a row's sequence (history + [target]) add `consecutive_weight` once per user, so a
pair seen in a single user still counts. `max_users_per_item` caps the users considered per item
(deterministic: the first ones by user index) to bound the cost on popular items.

    pairs = mine_pairs(user_of_row, sequences, SwingParams())          # PairSet (a < b, weight)
    emb = train_item_embeddings(pairs, n_items, BehaviourParams())     # float32 [n_items, dim]

Items are dense indices 0..n_items-1 (map item ids before calling).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm


@dataclass(frozen=True)
class SwingParams:
    """Pair-mining knobs: Swing smoothing `alpha`, weight of consecutive pairs, per-item user cap."""

    alpha: float = 1.0
    consecutive_weight: float = 1.0
    max_users_per_item: int = 200


@dataclass(frozen=True)
class BehaviourParams:
    """Contrastive training knobs (dim is ignored when an init matrix is given)."""

    dim: int = 64
    epochs: int = 5
    batch_size: int = 512
    lr: float = 0.01
    temperature: float = 0.1
    seed: int = 0


@dataclass
class PairSet:
    """Item pairs: a, b Int64[P] with a < b, weight Float32[P] > 0, sorted by (a, b)."""

    a: np.ndarray
    b: np.ndarray
    weight: np.ndarray

    def __len__(self) -> int:
        return int(self.a.shape[0])

    def as_dict(self) -> dict[tuple[int, int], float]:
        """{(a, b): weight} for inspection and tests."""
        return {(int(x), int(y)): float(w) for x, y, w in zip(self.a, self.b, self.weight)}


def user_item_sets(users: list[str], sequences: list[list[int]]) -> tuple[list[set[int]], list[set[tuple[int, int]]]]:
    """Per user (in first-seen order): the item set, and the set of consecutive pairs (a < b)."""
    if len(users) != len(sequences):
        raise ValueError(f"{len(users)} user ids but {len(sequences)} sequences; give one user per row")
    index: dict[str, int] = {}
    items: list[set[int]] = []
    consec: list[set[tuple[int, int]]] = []
    for u, seq in zip(users, sequences):
        k = index.setdefault(u, len(index))
        if k == len(items):
            items.append(set())
            consec.append(set())
        items[k].update(seq)
        for x, y in zip(seq[:-1], seq[1:]):
            if x != y:
                consec[k].add((min(x, y), max(x, y)))
    return items, consec


def _capped(items: list[set[int]], cap: int) -> tuple[dict[int, list[int]], list[set[int]]]:
    """Users kept per item (the first `cap` by user index) and each user's items seen within the cap."""
    users_of: dict[int, list[int]] = defaultdict(list)
    kept: list[set[int]] = [set() for _ in items]
    for u, s in enumerate(items):
        for i in s:
            if len(users_of[i]) < cap:
                users_of[i].append(u)
                kept[u].add(i)
    return users_of, kept


def _swing_scores(items: list[set[int]], params: SwingParams) -> dict[tuple[int, int], float]:
    """Swing score of every item pair shared by at least two users (see the module docstring)."""
    users_of, kept = _capped(items, params.max_users_per_item)
    user_pairs: set[tuple[int, int]] = set()
    for us in users_of.values():
        user_pairs.update(combinations(us, 2))
    weight = [1.0 / math.sqrt(max(len(s), 1)) for s in items]
    scores: dict[tuple[int, int], float] = defaultdict(float)
    for u, v in tqdm(sorted(user_pairs), desc="swing", disable=len(user_pairs) < 100_000):
        common = kept[u] & kept[v]
        if len(common) < 2:
            continue
        s = weight[u] * weight[v] / (params.alpha + len(items[u] & items[v]))
        for i, j in combinations(sorted(common), 2):
            scores[(i, j)] += s
    return scores


def mine_pairs(users: list[str], sequences: list[list[int]], params: SwingParams = SwingParams()) -> PairSet:
    """Swing + consecutive item pairs from rows (`users[r]` owns `sequences[r]` = history + [target])."""
    items, consec = user_item_sets(users, sequences)
    scores = _swing_scores(items, params)
    if params.consecutive_weight > 0:
        for pairs in consec:
            for p in pairs:
                scores[p] = scores.get(p, 0.0) + params.consecutive_weight
    keys = sorted(k for k, v in scores.items() if v > 0)
    a = np.array([k[0] for k in keys], dtype=np.int64)
    b = np.array([k[1] for k in keys], dtype=np.int64)
    w = np.array([scores[k] for k in keys], dtype=np.float32)
    return PairSet(a, b, w)


def random_embeddings(n_items: int, dim: int, seed: int) -> np.ndarray:
    """Deterministic random unit vectors float32 [n_items, dim] (the fallback of items with no pairs)."""
    g = np.random.default_rng(seed)
    x = g.standard_normal((n_items, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True).clip(min=1e-12)


def info_nce(ea: torch.Tensor, eb: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE of matched rows ea[k] <-> eb[k] ([B, D] each) with in-batch negatives."""
    za, zb = F.normalize(ea, dim=1), F.normalize(eb, dim=1)
    logits = za @ zb.T / temperature                     # [B, B]
    labels = torch.arange(za.shape[0])
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


def train_item_embeddings(pairs: PairSet, n_items: int, params: BehaviourParams = BehaviourParams(),
                          init: np.ndarray | None = None) -> np.ndarray:
    """Contrastively trained, L2-normalised item embeddings float32 [n_items, D].

    Each epoch draws len(pairs) pairs with probability proportional to their Swing weight and runs
    InfoNCE over batches of them. Rows start from `init` ([n_items, D], e.g. text embeddings) or
    from deterministic random vectors; items in no pair keep their start vector.
    """
    if len(pairs) and int(max(pairs.a.max(), pairs.b.max())) >= n_items:
        raise ValueError(f"pair item index {int(max(pairs.a.max(), pairs.b.max()))} >= n_items={n_items}; "
                         "map item ids to dense indices 0..n_items-1 first")
    start = init if init is not None else random_embeddings(n_items, params.dim, params.seed)
    if start.shape[0] != n_items:
        raise ValueError(f"init has {start.shape[0]} rows but n_items={n_items}; give one row per item")
    emb = torch.nn.Embedding.from_pretrained(torch.tensor(start, dtype=torch.float32), freeze=False,
                                             sparse=True)
    if len(pairs) < 2:
        return _normalise(emb.weight.detach().numpy())
    torch.manual_seed(params.seed)
    g = np.random.default_rng(params.seed)
    w = pairs.weight.astype(np.float64)
    prob = w / w.sum()
    opt = torch.optim.SparseAdam(emb.parameters(), lr=params.lr)
    a, b = torch.from_numpy(pairs.a), torch.from_numpy(pairs.b)
    for _ in tqdm(range(params.epochs), desc="behaviour epochs"):
        order = torch.from_numpy(g.choice(len(pairs), size=len(pairs), p=prob))
        for s in range(0, len(order), params.batch_size):
            idx = order[s: s + params.batch_size]
            if idx.numel() < 2:
                continue
            loss = info_nce(emb(a[idx]), emb(b[idx]), params.temperature)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return _normalise(emb.weight.detach().numpy())


def _normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, float32 contiguous."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True).clip(min=1e-12)
