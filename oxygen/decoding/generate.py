"""The decoding front door used by training, evaluation and serving: item pools in, item ids out.

    ids, scores = generate_items(model, batch, tries=[full_trie], beam=50, k=10)
    ids, scores = generate_items(model, batch, tries=pool_tries, pool_index=pools, beam=128, k=20,
                                 sampling={"temperature": 0.8, "top_p": 0.9, "seed": 1})
    ids, scores = generate_items(model, batch, tries=[full_trie], beam=50, k=10, exclude=[[7, 9]] * B)

A `TrieSet` is built once per list of tries and cached by identity, so serving pays it at start.
Decoding runs where the model is (its device): the batch and the index go there, ids come back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from oxygen.decoding.beam_search import SamplingParams, beam_search, check_args
from oxygen.decoding.protocol import StepModel
from oxygen.decoding.trie_set import TrieSet
from oxygen.device import autocast, module_device
from oxygen.semantic_ids.trie import PrefixTrie

_CACHE: dict[tuple[int, ...], TrieSet] = {}  # holds the tries too, so their ids stay unique
_CACHE_SIZE = 8


def trie_set(tries: Sequence[PrefixTrie]) -> TrieSet:
    """The stacked index of `tries` (built once per distinct list of trie objects)."""
    key = tuple(id(t) for t in tries)
    if key not in _CACHE:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = TrieSet(tries)
    return _CACHE[key]


def check_fits(model: StepModel, tries: TrieSet) -> None:
    """Clear error when the tries' SID levels or codes do not fit the model's codebook sizes."""
    sizes = tuple(model.codebook_sizes)
    if len(sizes) != tries.depth:
        raise ValueError(f"the tries have {tries.depth} SID levels but the model has {len(sizes)} "
                         f"(codebook_sizes={sizes}); build the tries from the model's codebook")
    for level, (lv, k) in enumerate(zip(tries.levels, sizes)):
        top, low = int(lv.child_code.max()), int(lv.child_code.min())
        if top >= k or low < 0:
            raise ValueError(f"a trie uses codes {low}..{top} at SID level {level} but the model has codes 0..{k - 1} "
                             f"there; build the tries from the model's codebook")


def _sampling(sampling: Any) -> SamplingParams | None:
    """SamplingParams from None, SamplingParams, a dict or a pydantic model with the same fields."""
    if sampling is None or isinstance(sampling, SamplingParams):
        return sampling
    data = sampling if isinstance(sampling, dict) else sampling.model_dump()
    return SamplingParams(**data)


def generate_items(model: StepModel, batch: Any, tries: Sequence[PrefixTrie] | TrieSet, beam: int, k: int,
                   pool_index: torch.Tensor | None = None, sampling: Any = None,
                   exclude: Sequence[Sequence[int]] | None = None, precision: str = "auto"
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k item ids Long[B, k] (-1 padded) and scores Float[B, k] for a batch of B requests, on the CPU.
    The batch goes to the model's device once and the forward passes run in `precision`
    (oxygen.device.autocast: bf16 on CUDA under auto, fp32 on the CPU).

    `tries`: the item pools, as PrefixTries (stacked once and cached) or an already stacked TrieSet;
    `pool_index` Long[B] picks each request's trie (default: the first); `sampling` (SamplingParams,
    dict or pydantic model with temperature/top_k/top_p/seed) switches to beam sampling; `exclude`
    (item ids per request) are blocked inside the trie constraint."""
    B = len(batch)
    check_args(beam, k, B)
    if not tries:
        raise ValueError("generate_items needs at least one trie (the item pool to decode into)")
    pool = torch.zeros(B, dtype=torch.long, device="cpu") if pool_index is None else torch.as_tensor(pool_index, device="cpu").long()
    if pool.shape != (B,) or int(pool.min()) < 0 or int(pool.max()) >= len(tries):
        raise ValueError(f"pool_index must be Long[{B}] with values in [0, {len(tries)})")
    ts = tries if isinstance(tries, TrieSet) else trie_set(tries)
    check_fits(model, ts)
    dev = module_device(model)
    batch = batch.to(dev) if hasattr(batch, "to") else batch
    with torch.no_grad(), autocast(dev, precision):
        items, scores = beam_search(model, batch, ts, pool, beam, k, _sampling(sampling), exclude)
    return items.cpu(), scores.float().cpu()
