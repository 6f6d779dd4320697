"""Samples of the unified ranking model: one user's requests packed in time order (label packing).

A `Request` is one scenario request with its candidate list (and, for training, per-candidate
click / cart / purchase labels): from logged impressions (`requests_from_impressions`), or, for
datasets without them (Amazon), from the rows' logged positives plus sampled negatives
(`requests_from_rows`). A user's `Timeline` is every event the rows record (targets and histories,
deduplicated by time). `pack` turns up to R requests of one user and the events before the last
of them into one `RankBatch` row; the model's mask (oxygen.rl.ranking) lets a candidate see only
the profile, the events strictly before its request, the request tokens up to its own and (list-
wise) the other candidates of its request.

    space = RankSpace.fit(dataset.items, rows)                 # ids of items, leaves, prices, profile values
    reqs = requests_from_impressions(load_impressions(root))   # list[Request]
    batch = space.collate(space.samples(reqs, timelines(rows), max_requests=8))

RankBatch fields (B samples, P profile slots, H events, R requests, C candidates, Q query words):
    profile Long[B, P]; ev_item, ev_beh, ev_scen Long[B, H], ev_ts Long[B, H], ev_mask Bool[B, H];
    rq_scen, rq_trig Long[B, R], rq_query Long[B, R, Q], rq_ts Long[B, R], rq_mask Bool[B, R];
    rq_month Long[B, R] (1..12, 0 unknown);
    cand_item, cand_leaf, cand_price, cand_pop (train-popularity bucket) Long[B, R, C], cand_mask
    Bool[B, R, C], labels Float[B, R, C, 3];
    the cross features of a candidate with its request: cand_rel Long[B, R, C] (TRIGGER_RELATIONS:
    its relation to the request's trigger) and cand_seen Long[B, R, C] (how many of the user's events
    before this request share its leaf, 0..SEEN_CAP).
Item ids are dense indices + 1 (0 = padding / unknown).
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch

from oxygen.data.schema import BEHAVIOURS, SCENARIOS, Impression, Item, Row
from oxygen.data.stats import PROFILE_FIELDS

QUERY_WORDS, QUERY_BUCKETS = 8, 4096
PRICE_BUCKETS = 16
POP_BUCKETS = 12
TRIGGER_RELATIONS = ("none", "same item", "same leaf", "same parent category", "other")  # cand_rel ids 0..4
SEEN_CAP = 4
NO_TIME = -(2 ** 62)  # events of rows without timestamps: before every request


@dataclass(frozen=True)
class Request:
    """One request: who, when, where, the candidates and (training) their labels Float[C, 3]."""

    user_id: str
    ts: int
    scenario: str
    trigger: int | None
    query: str | None
    items: tuple[int, ...]
    labels: np.ndarray | None = None


@dataclass
class RankBatch:
    """Tensors of B packed samples (see the module docstring); `select` and len() for the loop."""

    profile: torch.Tensor
    ev_item: torch.Tensor
    ev_beh: torch.Tensor
    ev_scen: torch.Tensor
    ev_ts: torch.Tensor
    ev_mask: torch.Tensor
    rq_scen: torch.Tensor
    rq_trig: torch.Tensor
    rq_query: torch.Tensor
    rq_ts: torch.Tensor
    rq_mask: torch.Tensor
    rq_month: torch.Tensor
    cand_item: torch.Tensor
    cand_leaf: torch.Tensor
    cand_price: torch.Tensor
    cand_pop: torch.Tensor
    cand_mask: torch.Tensor
    cand_rel: torch.Tensor
    cand_seen: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return self.profile.shape[0]

    def select(self, index: torch.Tensor) -> RankBatch:
        """The samples at `index` (Long[b])."""
        return RankBatch(**{f.name: getattr(self, f.name)[index] for f in fields(self)})


def requests_from_impressions(imps: Sequence[Impression]) -> list[Request]:
    """One training request per logged list, labels from its outcomes."""
    return [Request(i.user_id, i.timestamp, i.scenario, i.trigger, i.query, tuple(i.items),
                    np.array([i.clicks, i.carts, i.purchases], dtype=np.float32).T) for i in imps]


def negative_weights(train_rows: Sequence[Row], item_ids: Sequence[int], power: float) -> np.ndarray | None:
    """Float[len(item_ids)] sampling probabilities of negatives: (times an item is a train target +
    1) ** power, normalised (word2vec's unigram ** 0.75 at power 0.75); None at power 0 (uniform).
    Negatives drawn like positives leave popularity no signal, so a ranker learns preference."""
    if power == 0:
        return None
    index = {int(i): k for k, i in enumerate(item_ids)}
    counts = np.ones(len(index))
    for r in train_rows:
        if r.target in index:
            counts[index[r.target]] += 1
    w = counts ** power
    return w / w.sum()


def requests_from_rows(rows: Sequence[Row], item_ids: Sequence[int], negatives: int, seed: int,
                       weights: np.ndarray | None = None) -> list[Request]:
    """Requests for datasets without impressions: each row's target (labelled by its behaviour;
    no behaviour counts as a purchase) with `negatives` other items (label 0) sampled uniformly, or
    with `weights` (Float[len(item_ids)], `negative_weights`)."""
    rng, pool, out = np.random.default_rng(seed), np.asarray(item_ids), []
    depth = {"click": 1, "cart": 2, "purchase": 3, None: 3}
    for r in rows:
        drawn = rng.choice(pool, size=min(negatives + 1, len(pool)), replace=False, p=weights)
        neg = [int(i) for i in drawn if i != r.target][:negatives]
        labels = np.zeros((1 + len(neg), 3), dtype=np.float32)
        labels[0, :depth[r.behaviour]] = 1
        out.append(Request(r.user_id, r.timestamp if r.timestamp is not None else 0, r.scenario or "homepage",
                           r.trigger, r.query, (r.target, *neg), labels))
    return out


Event = tuple[int, int, str, str]  # (ts, item, behaviour, scenario)


def history_events(row: Row) -> list[Event]:
    """The events of a row's history, oldest first (rows without timestamps get NO_TIME + k;
    a missing behaviour counts as a purchase, a missing scenario as homepage)."""
    out = []
    for k, item in enumerate(row.history):
        ts = row.history_timestamps[k] if row.history_timestamps else NO_TIME + k
        beh = row.history_behaviours[k] if row.history_behaviours else "purchase"
        scen = row.history_scenarios[k] if row.history_scenarios else "homepage"
        out.append((ts, item, beh, scen))
    return out


def timelines(rows: Sequence[Row]) -> dict[str, list[Event]]:
    """Per user, every event the rows record (their targets and histories), by time, one per time."""
    seen: dict[str, dict[int, Event]] = defaultdict(dict)
    for r in rows:
        if r.timestamp is not None:
            seen[r.user_id][r.timestamp] = (r.timestamp, r.target, r.behaviour or "purchase", r.scenario or "homepage")
        for ev in history_events(r):
            seen[r.user_id].setdefault(ev[0], ev)
    return {u: [ev[t] for t in sorted(ev)] for u, ev in seen.items()}


def query_words(query: str | None) -> list[int]:
    """Up to QUERY_WORDS hashed word ids in 1..QUERY_BUCKETS-1 (stable across runs)."""
    words = (query or "").lower().split()[:QUERY_WORDS]
    return [1 + zlib.crc32(w.encode()) % (QUERY_BUCKETS - 1) for w in words]


@dataclass
class Sample:
    """One packed sample before collation: a user's profile, events and requests."""

    profile: list[int]
    events: list[Event]
    requests: list[Request]


ITEM_FEATURES = ("leaf", "parent", "price_bucket", "popularity")  # Int[N + 1] each, by dense index (0 = padding)


class RankSpace:
    """The id spaces of the ranking model: items, their features (leaf and parent category, price
    bucket, train-popularity bucket) and profile values."""

    def __init__(self, item_index: dict[int, int], features: dict[str, np.ndarray],
                 profile_vocab: dict[tuple[str, str], int], profiles: dict[str, list[int]]) -> None:
        """`features[name]` Int[N + 1] by dense item index for each name of ITEM_FEATURES (a missing
        one is all 0: unknown)."""
        size = len(item_index) + 1
        self.item_index, self.profile_vocab, self.profiles = item_index, profile_vocab, profiles
        self.features = {f: np.asarray(features.get(f, np.zeros(size)), dtype=np.int64) for f in ITEM_FEATURES}
        self.leaf, self.parent = self.features["leaf"], self.features["parent"]
        self.price_bucket, self.popularity = self.features["price_bucket"], self.features["popularity"]

    @classmethod
    def fit(cls, items: Sequence[Item], rows: Sequence[Row]) -> RankSpace:
        """Index the catalogue (leaf = last category, parent = the path above it, price by log-price
        bucket, popularity by the log count of train rows targeting the item) and the rows' profiles."""
        index = {it.item_id: k + 1 for k, it in enumerate(items)}
        cats = sorted({it.categories[-1] for it in items if it.categories})
        cat_id = {c: k + 1 for k, c in enumerate(cats)}
        parents = sorted({tuple(it.categories[:-1]) for it in items if len(it.categories) > 1})
        parent_id = {c: k + 1 for k, c in enumerate(parents)}
        f = {name: np.zeros(len(items) + 1, dtype=np.int64) for name in ITEM_FEATURES}
        for it in items:
            k = index[it.item_id]
            f["leaf"][k] = cat_id.get(it.categories[-1], 0) if it.categories else 0
            f["parent"][k] = parent_id.get(tuple(it.categories[:-1]), 0)
            if it.price:
                f["price_bucket"][k] = 1 + min(int(np.log2(1 + it.price) * 1.5), PRICE_BUCKETS - 2)
        counts = np.bincount([index[r.target] for r in rows if r.target in index], minlength=len(items) + 1)
        f["popularity"] = 1 + np.minimum(np.log2(1 + counts).astype(np.int64), POP_BUCKETS - 2)
        f["popularity"][0] = 0
        values = sorted({(k, str(getattr(r.profile, k))) for r in rows if r.profile for k in PROFILE_FIELDS})
        vocab = {fv: k + 1 for k, fv in enumerate(values)}
        profiles = {}
        for r in rows:
            if r.profile and r.user_id not in profiles:
                profiles[r.user_id] = [vocab.get((k, str(getattr(r.profile, k))), 0) for k in PROFILE_FIELDS]
        return cls(index, f, vocab, profiles)

    def to_dict(self) -> dict:
        """Plain lists and dicts (what a checkpoint stores)."""
        return {"items": sorted(self.item_index, key=self.item_index.get),
                "features": {k: v.tolist() for k, v in self.features.items()},
                "profile_vocab": [[f, v, k] for (f, v), k in sorted(self.profile_vocab.items())],
                "profiles": self.profiles}

    @classmethod
    def from_dict(cls, d: dict) -> RankSpace:
        """The inverse of `to_dict`."""
        return cls({int(i): k + 1 for k, i in enumerate(d["items"])},
                   {k: np.array(v, dtype=np.int64) for k, v in d["features"].items()},
                   {(f, v): int(k) for f, v, k in d["profile_vocab"]}, {u: list(p) for u, p in d["profiles"].items()})

    @property
    def sizes(self) -> dict[str, int]:
        """Embedding table sizes (ids 0..size-1)."""
        return {"items": len(self.item_index) + 1, "leaves": int(self.leaf.max()) + 1,
                "prices": PRICE_BUCKETS, "profile": len(self.profile_vocab) + 1}

    def samples(self, requests: Sequence[Request], lines: dict[str, list[Event]], max_requests: int,
                max_events: int) -> list[Sample]:
        """Each user's requests in time order, cut into packs of `max_requests`, each with the last
        `max_events` events before its last request."""
        by_user: dict[str, list[Request]] = defaultdict(list)
        for r in requests:
            by_user[r.user_id].append(r)
        out = []
        for user in sorted(by_user):
            reqs = sorted(by_user[user], key=lambda r: r.ts)
            line = lines.get(user, [])
            times = np.array([e[0] for e in line], dtype=np.int64)
            for a in range(0, len(reqs), max_requests):
                pack = reqs[a:a + max_requests]
                end = int(np.searchsorted(times, pack[-1].ts, side="left"))
                out.append(Sample(self.profiles.get(user, [0] * len(PROFILE_FIELDS)),
                                  line[max(0, end - max_events):end], pack))
        return out

    def row_samples(self, rows: Sequence[Row], groups: np.ndarray, max_events: int) -> list[Sample]:
        """One single-request sample per row, scoring `groups[b]` (Int[B, G] item ids; unknown ids and
        -1 become padding ids) as the candidates of row b's request, with its profile and the last
        `max_events` events of its history (what a policy's prompt holds: nothing at or after it)."""
        out = []
        for row, group in zip(rows, groups, strict=True):
            prof = [self.profile_vocab.get((f, str(getattr(row.profile, f))), 0) if row.profile else 0
                    for f in PROFILE_FIELDS]
            ts = row.timestamp if row.timestamp is not None else NO_TIME + len(row.history)
            rq = Request(row.user_id, ts, row.scenario or "homepage", row.trigger, row.query,
                         tuple(int(i) for i in group))
            out.append(Sample(prof, history_events(row)[-max_events:], [rq]))
        return out

    def collate(self, samples: Sequence[Sample]) -> RankBatch:
        """Pad `samples` into one RankBatch (shapes in the module docstring)."""
        B = len(samples)
        H = max(1, max(len(s.events) for s in samples))
        R = max(len(s.requests) for s in samples)
        C = max(len(r.items) for s in samples for r in s.requests)
        t = {k: np.zeros(shape, dtype=np.int64) for k, shape in (
            ("ev_item", (B, H)), ("ev_beh", (B, H)), ("ev_scen", (B, H)), ("ev_ts", (B, H)),
            ("rq_scen", (B, R)), ("rq_trig", (B, R)), ("rq_query", (B, R, QUERY_WORDS)), ("rq_ts", (B, R)),
            ("cand_item", (B, R, C)))}
        masks = {"ev_mask": np.zeros((B, H), bool), "rq_mask": np.zeros((B, R), bool),
                 "cand_mask": np.zeros((B, R, C), bool)}
        labels = np.zeros((B, R, C, 3), dtype=np.float32)
        beh, scen = {b: k + 1 for k, b in enumerate(BEHAVIOURS)}, {s: k + 1 for k, s in enumerate(SCENARIOS)}
        for b, s in enumerate(samples):
            for h, (ts, item, be, sc) in enumerate(s.events):
                t["ev_item"][b, h], t["ev_beh"][b, h] = self.item_index.get(item, 0), beh.get(be, 0)
                t["ev_scen"][b, h], t["ev_ts"][b, h], masks["ev_mask"][b, h] = scen.get(sc, 0), ts, True
            for r, rq in enumerate(s.requests):
                t["rq_scen"][b, r], t["rq_ts"][b, r], masks["rq_mask"][b, r] = scen.get(rq.scenario, 0), rq.ts, True
                t["rq_trig"][b, r] = self.item_index.get(rq.trigger, 0) if rq.trigger is not None else 0
                words = query_words(rq.query)
                t["rq_query"][b, r, :len(words)] = words
                ids = [self.item_index.get(i, 0) for i in rq.items]
                t["cand_item"][b, r, :len(ids)] = ids
                masks["cand_mask"][b, r, :len(ids)] = [i > 0 for i in ids]  # -1 / unknown ids: padding
                if rq.labels is not None:
                    labels[b, r, :len(ids)] = rq.labels
        t["profile"] = np.array([s.profile for s in samples], dtype=np.int64)
        t.update(self.cross_features(t, masks))
        return RankBatch(**{k: torch.from_numpy(v) for k, v in {**t, **masks}.items()}, labels=torch.from_numpy(labels))

    def cross_features(self, t: dict[str, np.ndarray], masks: dict[str, np.ndarray], chunk: int = 512
                       ) -> dict[str, np.ndarray]:
        """The candidates' leaf / price, the request month and the candidate x request features
        (cand_rel, cand_seen: only events strictly before the candidate's own request count)."""
        cand, trig = t["cand_item"], t["rq_trig"][:, :, None]
        rel = np.where(cand == trig, 1, np.where(self.leaf[cand] == self.leaf[trig], 2,
                       np.where((self.parent[cand] == self.parent[trig]) & (self.parent[cand] > 0), 3, 4)))
        rel = np.where(trig > 0, rel, 0)
        ts, known = t["rq_ts"], masks["rq_mask"] & (t["rq_ts"] > NO_TIME // 2)
        month = np.where(known, ts.astype("datetime64[s]").astype("datetime64[M]").astype(np.int64) % 12 + 1, 0)
        seen = np.zeros(cand.shape, dtype=np.int64)
        ev_leaf = np.where(masks["ev_mask"], self.leaf[t["ev_item"]], -1)
        for a in range(0, len(cand), chunk):
            sl = slice(a, a + chunk)
            before = masks["ev_mask"][sl, None, :] & (t["ev_ts"][sl, None, :] < ts[sl, :, None])  # [b, R, H]
            same = self.leaf[cand[sl]][..., None] == ev_leaf[sl, None, None, :]  # [b, R, C, H]
            seen[sl] = np.minimum((same & before[:, :, None, :]).sum(-1), SEEN_CAP)
        return {"cand_leaf": self.leaf[cand], "cand_price": self.price_bucket[cand], "cand_pop": self.popularity[cand],
                "rq_month": month,
                "cand_rel": rel, "cand_seen": seen}
