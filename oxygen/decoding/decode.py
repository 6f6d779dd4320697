"""The one decode path: trie-constrained beam search (or beam sampling) over named item pools,
then the optional re-rank mixture, items and scores out. The offline recommender, the serving core
and the demo all decode through a `Decoder`, so they cannot disagree.

The mixture is the model's own copy head when it has one (`MixtureModel.item_mixture`), else the
transition channel when a `RerankSpec` with weight > 0 is given (oxygen.decoding.rerank). With a
mixture the whole beam is kept for re-ranking (k <= beam items come back, re-scored); beam sampling
never mixes (its draw is the answer).

    dec = Decoder(model, {"all": trie}, space.item_ids, space.transitions, RerankSpec(0.2))
    out = dec.decode(batch, histories, beam=50, k=10)              # out.items Int64[B, 10]
    out = dec.decode(batch, histories, beam=64, k=5, pools=["cart", "search"], sampling={"seed": 1})
    out = dec.decode(batch, histories, beam=50, k=10, exclude=[[trigger], []])   # business rules

`dec.guidance` (a weight per pool, the bundle's guidance.json) decodes the requests of those pools with
instruction guidance (oxygen.decoding.guidance); in the pools of `dec.gated` only the requests whose
`gates` entry is on (their instruction states an open need). Beam sampling draws from the model as
it is (the policy post-training scores).

    out = dec.decode(batch, histories, beam=50, k=10, pools=["homepage"] * 2, gates=[True, False])

`dec.need_slots` (slots per pool, the bundle's need_slots.json) gives the first m open needs of each
request's instruction (`needs`: categories per request, strongest first) a slot each: the model's
best item in the request's pool cut to that category (the pool `need_pool(pool, category)`, built by
the bundle from `dec.item_category`), composed into the list by oxygen.decoding.need_slots.compose.

    out = dec.decode(batch, histories, beam=50, k=10, pools=["homepage"] * 2, needs=[["Fans"], []])

`exclude` (item ids per request: the trigger item, recent purchases, a caller's list) acts inside
the trie constraint (oxygen.decoding.trie_set) and on the items the re-rank mixture adds, so no
excluded item comes back and k items still do when the pool holds k others.

Decoding runs on the model's device (`Decoder.device`): each chunk of requests moves there once,
the index is copied there once (TrieSet.to), and items and scores come back as numpy arrays.
`precision` ("auto": bf16 autocast on CUDA, fp32 on the CPU) is an attribute callers may set.

`dec.tables()` is every read-only table of a decoder (each pool's trie and the stacked index) as
numpy arrays only (`DecoderTables`); `Decoder.from_tables(model, tables, ...)` rebuilds it without
copying them. Put once in Ray's object store, the tables are read zero-copy by every worker of a
node (the post-training rollout workers do this, oxygen.rl.actors).
"""

from __future__ import annotations

import time
from collections.abc import Container, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from oxygen.data.transitions import TransitionTable
from oxygen.decoding.beam_search import check_args
from oxygen.decoding.generate import generate_items, trie_set
from oxygen.decoding.guidance import LEVELS, Guided, request_weights
from oxygen.decoding.need_slots import compose, need_pool
from oxygen.decoding.protocol import MixtureModel
from oxygen.decoding.rerank import Mixture, RerankSpec, copy_mixture, rerank
from oxygen.decoding.timing import TimedModel, Timings
from oxygen.decoding.trie_set import TrieSet
from oxygen.device import autocast, module_device
from oxygen.semantic_ids.trie import PrefixTrie

CHUNK = 256  # requests decoded together (bounds the beam state's memory)


@dataclass
class Decoded:
    """Items Int64[B, k] best first (-1 padded) and their scores Float[B, k] (-inf padded): sequence
    log-probs, or mixture probabilities when re-ranked; `need` Int64[B, k] (with need slots): the
    position in the request's `needs` of the open need an item's slot went to, -1 for the model's own."""

    items: np.ndarray
    scores: np.ndarray
    need: np.ndarray | None = None

    def need_of(self, b: int, needs: Sequence[str], k: int) -> dict[int, str]:
        """{item id: open need} of request b's first k items that fill need slots."""
        if self.need is None:
            return {}
        return {int(i): needs[int(j)] for i, j in zip(self.items[b, :k], self.need[b, :k]) if j >= 0}


@dataclass
class DecoderTables:
    """A decoder's read-only tables, numpy arrays only: pool names (sorted), each pool's trie
    (PrefixTrie.state), the stacked index (TrieSet.state) and the item ids of the feature space."""

    names: list[str]
    tries: list[dict[str, np.ndarray]]
    index: dict[str, np.ndarray]
    item_ids: np.ndarray

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays."""
        arrays = [a for t in self.tries for a in t.values()] + list(self.index.values()) + [self.item_ids]
        return int(sum(a.nbytes for a in arrays))


class Decoder:
    """Decodes one model version into named item pools (see the module docstring)."""

    def __init__(self, model: MixtureModel, pools: dict[str, PrefixTrie], item_ids: np.ndarray,
                 transitions: TransitionTable | None = None, spec: RerankSpec | None = None,
                 index: TrieSet | None = None) -> None:
        """`index`: the pools' stacked index when already built (from_tables), else built here."""
        if not pools:
            raise ValueError("a Decoder needs at least one item pool (name -> PrefixTrie)")
        if spec is not None and spec.weight > 0 and transitions is None:
            raise ValueError("re-ranking with the transition channel needs its counts (transitions=None given)")
        self.model, self.item_ids, self.transitions, self.spec = model, item_ids, transitions, spec
        self.names = sorted(pools)
        self.positions = {n: i for i, n in enumerate(self.names)}  # pool name -> its position in names
        self.tries = [pools[n] for n in self.names]
        self.index = index if index is not None else trie_set(self.tries)
        self.precision = "auto"  # oxygen.device.autocast: bf16 on CUDA, fp32 on the CPU; "fp32" / "bf16" to force
        self._guidance: dict[str, float] = {}
        self.gated: frozenset[str] = frozenset()  # pools whose guidance acts only where a request's gate is on
        self.guidance_levels: tuple[int, ...] = LEVELS  # the SID levels guidance acts on
        self.need_slots: dict[str, int] = {}  # pool -> slots its requests' open needs may take
        self.item_category: dict[int, str] = {}  # item id -> leaf category (need slots read histories with it)

    @property
    def guidance(self) -> dict[str, float]:
        """Instruction-guidance weight per pool name (oxygen.decoding.guidance; a pool absent: 0)."""
        return self._guidance

    @guidance.setter
    def guidance(self, weights: dict[str, float]) -> None:
        unknown = sorted(set(weights) - set(self.names))
        if unknown:
            raise ValueError(f"guidance names pools {unknown} this decoder does not have (pools: {self.names})")
        self._guidance = {str(k): float(v) for k, v in weights.items()}

    @property
    def device(self) -> torch.device:
        """Where decoding runs: the model's device (requests are moved there once per chunk)."""
        return module_device(self.model)

    def tables(self) -> DecoderTables:
        """The decoder's read-only tables (see the module docstring)."""
        return DecoderTables(self.names, [t.state() for t in self.tries], self.index.state(), np.asarray(self.item_ids))

    @classmethod
    def from_tables(cls, model: MixtureModel, tables: DecoderTables, transitions: TransitionTable | None = None,
                    spec: RerankSpec | None = None) -> Decoder:
        """A decoder of `model` over the pools of `tables`, whose arrays it uses as they are."""
        tries = [PrefixTrie.from_state(t) for t in tables.tries]
        return cls(model, dict(zip(tables.names, tries)), tables.item_ids, transitions, spec,
                   TrieSet.from_state(tries, tables.index))

    def pool_index(self, pools: Sequence[str] | None, n: int) -> torch.Tensor:
        """Long[n]: each request's pool position (None: every request in the first pool)."""
        if pools is None:
            return torch.zeros(n, dtype=torch.long, device="cpu")
        unknown = sorted(set(pools) - set(self.names))
        if unknown or len(pools) != n:
            raise ValueError(f"pools must name one of {self.names} per request; got {len(pools)} "
                             f"names for {n} requests, unknown {unknown}")
        return torch.tensor([self.positions[p] for p in pools], dtype=torch.long, device="cpu")

    def beam(self, batch: Any, beam: int, n: int, pools: Sequence[str] | None = None,
             sampling: Any = None, exclude: Sequence[Sequence[int]] | None = None,
             gates: Sequence[bool] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The model alone: top-n items Int64[B, n] and sequence log-probs Float[B, n]."""
        pool = self.pool_index(pools, len(batch))
        exclude, gates = _per_request(exclude, len(batch)), _gates(gates, len(batch))
        parts = [self._beam(self._chunk(batch, s, e), beam, n, pool[s:e], sampling,
                            None if exclude is None else exclude[s:e], None, None if gates is None else gates[s:e])
                 for s, e in _chunks(len(batch))]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def mixture(self, batch: Any, histories: Sequence[Sequence[int]]) -> Mixture | None:
        """The re-rank mixture of these requests: the copy head's, else the transition channel's
        (weight > 0), else None."""
        with torch.no_grad(), autocast(self.device, self.precision):
            copied = self.model.item_mixture(batch)
        if copied is not None:
            return copy_mixture(copied, self.item_ids)
        if self.spec is not None and self.spec.weight > 0:
            return np.full(len(histories), self.spec.weight), self.spec.dists(self.transitions, histories)
        return None

    def decode(self, batch: Any, histories: Sequence[Sequence[int]], beam: int, k: int,
               pools: Sequence[str] | None = None, sampling: Any = None,
               exclude: Sequence[Sequence[int]] | None = None, timings: Timings | None = None,
               gates: Sequence[bool] | None = None, needs: Sequence[Sequence[str]] | None = None) -> Decoded:
        """Top-k items and scores of every request, `CHUNK` requests at a time; `histories` (each
        request's item ids, oldest first) feed the transition channel; `exclude` (item ids per
        request) never come back; `timings` (optional) receives stages encoder / decode / rerank;
        `gates` (one per request; None: all off) turn on the guidance of `gated` pools; `needs`
        (open need categories per request, strongest first; None: none) fill the `need_slots` of
        their pools (not under beam sampling)."""
        check_args(beam, k, len(batch))
        if len(histories) != len(batch):
            raise ValueError(f"{len(histories)} histories for {len(batch)} requests; give one per request")
        pool = self.pool_index(pools, len(batch))
        exclude, gates = _per_request(exclude, len(batch)), _gates(gates, len(batch))
        timings = timings if timings is not None else Timings()
        filling = needs is not None and bool(self.need_slots) and sampling is None
        if filling and len(needs) != len(batch):
            raise ValueError(f"needs must hold one category list per request: {len(needs)} lists for {len(batch)} requests")
        # one chunk: keep its encoded state, which the need decodes start from
        starts: list[Any] | None = [] if filling and len(batch) <= CHUNK and hasattr(self.model, "restart") else None
        parts = [self._decode(self._chunk(batch, s, e), histories[s:e], beam, k, pool[s:e], sampling,
                              None if exclude is None else exclude[s:e], timings, None if gates is None else gates[s:e],
                              starts)
                 for s, e in _chunks(len(batch))]
        out = Decoded(np.concatenate([p.items for p in parts]), np.concatenate([p.scores for p in parts]))
        if not filling:
            return out
        with timings.stage("need_slots"):
            encoded = starts[0] if starts else None
            return self._fill_needs(batch, histories, beam, pool, exclude, gates, needs, out, encoded, timings)

    def _fill_needs(self, batch: Any, histories: Sequence[Sequence[int]], beam: int, pool: torch.Tensor,
                    exclude: Sequence[Sequence[int]] | None, gates: Sequence[bool] | None,
                    needs: Sequence[Sequence[str]], out: Decoded, encoded: Any = None,
                    timings: Timings | None = None) -> Decoded:
        """`out` with each request's need slots filled: one constrained decode per (request, open
        need) among the first m of its pool's, all in one batch, then `compose`. The scores of need
        items are their log-probs inside the category (not comparable with the others). `encoded`
        (the state the main pass's `start` returned for the whole batch, or None) lets those decodes
        start from the requests' encoder output instead of encoding them again."""
        jobs = []  # (request, position of the need in needs[request], need pool)
        for b, cats in enumerate(needs):
            name = self.names[int(pool[b])]
            found = [(j, need_pool(name, c)) for j, c in enumerate(cats) if need_pool(name, c) in self.positions]
            jobs += [(b, j, n) for j, n in found[:self.need_slots.get(name, 0)]]
        out.need = np.full(out.items.shape, -1, dtype=np.int64)
        if not jobs:
            return out
        picked = [b for b, _, _ in jobs]
        rows = torch.tensor(picked, dtype=torch.long)
        sub, names = batch.select(rows), [n for _, _, n in jobs]
        ex = None if exclude is None else [exclude[b] for b in picked]
        gs = None if gates is None else [gates[b] for b in picked]
        if encoded is not None and len(jobs) <= CHUNK:  # one chunk: start from the encoded rows
            items, scores = self._beam(self._chunk(sub, 0, len(jobs)), beam, 1, self.pool_index(names, len(jobs)),
                                       None, ex, timings, gs, resume=(encoded, rows))
        else:
            items, scores = self.beam(sub, beam, 1, names, exclude=ex, gates=gs)
        got: dict[int, dict[int, tuple[int, float]]] = {}  # request -> {need item: (need position, score)}
        for q, (b, j, _) in enumerate(jobs):
            if items[q, 0] >= 0:
                got.setdefault(b, {}).setdefault(int(items[q, 0]), (j, float(scores[q, 0])))
        k = out.items.shape[1]
        for b, slot in got.items():
            have = {int(i): float(s) for i, s in zip(out.items[b], out.scores[b]) if i >= 0}
            known = {self.item_category.get(int(i)) for i in histories[b]}
            ids = compose(list(have), list(slot), known, self.item_category, k)
            out.items[b], out.scores[b], out.need[b] = -1, -np.inf, -1
            out.items[b, :len(ids)] = ids
            out.scores[b, :len(ids)] = [slot[i][1] if i in slot else have[i] for i in ids]
            out.need[b, :len(ids)] = [slot[i][0] if i in slot else -1 for i in ids]
        return out

    def _chunk(self, batch: Any, start: int, end: int) -> Any:
        """Requests start..end-1 of `batch` on the decoder's device (the one move per chunk)."""
        part = batch if start == 0 and end == len(batch) else batch.select(torch.arange(start, end, device="cpu"))
        return part.to(self.device) if hasattr(part, "to") else part

    def _beam(self, batch: Any, beam: int, n: int, pool: torch.Tensor, sampling: Any,
              exclude: Sequence[Sequence[int]] | None, timings: Timings | None = None,
              gates: Sequence[bool] | None = None, keep: list[Any] | None = None,
              resume: tuple[Any, torch.Tensor] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Beam search of one chunk. `keep` (a list) receives the state `start` returns; `resume`
        (an encoded state, rows Long[B] of it) starts from those rows instead of encoding `batch`
        (those rows), unless a request is guided: its twin needs an encoder pass of its own."""
        timings = timings if timings is not None else Timings()
        before, t0 = timings.ms.get("encoder", 0.0), time.perf_counter()
        weights = (request_weights(self.guidance, self.names, pool, self.gated, gates)
                   if self.guidance and sampling is None else None)
        model = self.model if weights is None else Guided(self.model, weights, self.guidance_levels)
        if resume is not None and weights is None:
            model = Resumed(model, *resume)
        if keep is not None:
            model = Kept(model, keep)
        with torch.no_grad():
            ids, scores = generate_items(TimedModel(model, timings), batch, self.index, beam=beam, k=n,
                                         pool_index=pool, sampling=sampling, exclude=exclude, precision=self.precision)
        timings.add("decode", (time.perf_counter() - t0) * 1000 - (timings.ms["encoder"] - before))
        return ids.numpy(), scores.numpy()

    def _decode(self, batch: Any, histories: Sequence[Sequence[int]], beam: int, k: int, pool: torch.Tensor,
                sampling: Any, exclude: Sequence[Sequence[int]] | None, timings: Timings,
                gates: Sequence[bool] | None, keep: list[Any] | None = None) -> Decoded:
        with timings.stage("rerank"):
            mixture = None if sampling is not None else self.mixture(batch, histories)
        if mixture is None:
            return Decoded(*self._beam(batch, beam, k, pool, sampling, exclude, timings, gates, keep))
        items, logp = self._beam(batch, beam, beam, pool, None, exclude, timings, gates, keep)
        allowed = [self.tries[int(p)] if exclude is None or not exclude[b] else
                   Without(self.tries[int(p)], frozenset(int(i) for i in exclude[b])) for b, p in enumerate(pool)]
        with timings.stage("rerank"):
            return Decoded(*rerank(items, logp, mixture, k, allowed))


class Kept:
    """A StepModel that appends every state its `start` returns to `starts`."""

    def __init__(self, model: Any, starts: list[Any]) -> None:
        self.model, self.starts = model, starts

    def start(self, batch: Any) -> Any:
        """The wrapped model's start, kept."""
        state = self.model.start(batch)
        self.starts.append(state)
        return state

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)


class Resumed:
    """A StepModel whose `start` gives requests `rows` Long[B] of an already encoded `state`
    (`restart` of a ResumableModel) instead of encoding its batch."""

    def __init__(self, model: Any, state: Any, rows: torch.Tensor) -> None:
        self.model, self.state, self.rows = model, state, rows

    def start(self, batch: Any) -> Any:
        """Requests `rows` of the encoded state (the batch must be those rows)."""
        if len(batch) != len(self.rows):
            raise ValueError(f"a resumed start for {len(self.rows)} rows got a batch of {len(batch)}")
        return self.model.restart(self.state, self.rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)


@dataclass(frozen=True)
class Without:
    """A pool's item set minus a request's exclusions (membership only; nothing is copied)."""

    pool: Container[int]
    excluded: frozenset[int]

    def __contains__(self, item: object) -> bool:
        return item in self.pool and item not in self.excluded


def _per_request(exclude: Sequence[Sequence[int]] | None, n: int) -> Sequence[Sequence[int]] | None:
    """`exclude` checked to hold one list per request (None when nothing is excluded)."""
    if exclude is None or not any(len(x) for x in exclude):
        return None
    if len(exclude) != n:
        raise ValueError(f"exclude must hold one item list per request: {len(exclude)} lists for {n} requests")
    return exclude


def _gates(gates: Sequence[bool] | None, n: int) -> Sequence[bool] | None:
    """`gates` checked to hold one flag per request (None: every gate off)."""
    if gates is not None and len(gates) != n:
        raise ValueError(f"gates must hold one flag per request: {len(gates)} flags for {n} requests")
    return gates


def _chunks(n: int) -> list[tuple[int, int]]:
    """(start, end) of consecutive runs of at most CHUNK requests covering 0..n-1."""
    return [(s, min(s + CHUNK, n)) for s in range(0, n, CHUNK)]
