"""End-to-end SID building: embeddings -> residual k-means -> unique codes -> Codebook + metrics.

    cb, metrics = build_codebook(SIDConfig(source="text"), CatalogueInput(item_ids, texts, ...))
    cb.save("runs/sids/office")

`codes_from_embeddings` is the part after the embeddings, reusable on any float32 [N, D] matrix
(benchmarks at 1M items call it on precomputed embeddings).
"""

from __future__ import annotations

import time

import numpy as np

from oxygen.config import SIDConfig
from oxygen.semantic_ids.codebook import Codebook, resolve_collisions
from oxygen.semantic_ids.embeddings import CatalogueInput, item_embeddings
from oxygen.semantic_ids.metrics import sid_metrics
from oxygen.semantic_ids.rq_kmeans import default_width, residual_kmeans


def widths_for(cfg: SIDConfig, n_items: int) -> list[int]:
    """Per-level widths: cfg.width at every level, or the default rule for this catalogue size."""
    k = cfg.width if cfg.width is not None else default_width(n_items, cfg.levels)
    return [int(k)] * cfg.levels


def codes_from_embeddings(x: np.ndarray, widths: list[int], seed: int = 0,
                          niter: int = 20) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """(unique codes Int64[N, L], raw codes Int64[N, L], centroids) of embeddings x [N, D]."""
    raw, cents = residual_kmeans(x, widths, seed=seed, niter=niter)
    return resolve_collisions(x, raw, cents), raw, cents


def build_codebook(cfg: SIDConfig, cat: CatalogueInput) -> tuple[Codebook, dict[str, float]]:
    """Build the unique-SID codebook of a catalogue and its metrics (timings in seconds included)."""
    t0 = time.perf_counter()
    x, info = item_embeddings(cfg, cat)
    t1 = time.perf_counter()
    widths = widths_for(cfg, len(cat.item_ids))
    codes, raw, cents = codes_from_embeddings(x, widths, cfg.seed, cfg.kmeans_niter)
    t2 = time.perf_counter()
    meta = {**info, "seed": cfg.seed, "dim": int(x.shape[1]), "config": cfg.model_dump()}
    cb = Codebook(item_ids=np.array(cat.item_ids, dtype=np.int64), codes=codes, widths=widths,
                  raw_codes=raw, centroids=cents, meta=meta)
    metrics = sid_metrics(codes, widths, raw_codes=raw, categories=cat.categories)
    metrics.update({"width": float(widths[0]), "pairs": float(info["pairs"]),
                    "items_in_pairs": float(info["items_in_pairs"]), "embed_s": t1 - t0,
                    "quantise_s": t2 - t1, "total_s": time.perf_counter() - t0})
    return cb, metrics
