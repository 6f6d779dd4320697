"""The generative recommenders `oxygen` and `tiger` behind the offline `Recommender` interface.

`fit` builds the semantic IDs from the train rows (or loads a prebuilt codebook), collates the
rows, trains the encoder-decoder with the plain loop selecting the epoch on valid HR@10 (beam search
over the whole catalogue), and keeps the best weights. `recommend` decodes the top-k items with the
trie-constrained beam search (mixed with the copy distribution when the model has a copy head).
`tiger` is the same model with the scenario/reasoning instructions,
IGR and Q2I off (TIGER: SIDs + a plain encoder-decoder over the history).

    rec = GenerativeRecommender(GenerativeConfig(variant="oxygen")).fit(train, valid, items)
    top = rec.recommend(test_rows, k=10)        # Int64[n, 10] item ids
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from oxygen.config import GenerativeConfig, ModelConfig
from oxygen.data.adapters import catalogue_input
from oxygen.data.batch import ModelBatch
from oxygen.data.io import Dataset
from oxygen.data.schema import Item, Row
from oxygen.data.transitions import TransitionTable
from oxygen.decoding.fusion import FusionSpec, copy_dists, fuse_top_k
from oxygen.decoding.generate import generate_items
from oxygen.eval.metrics import hit_rate, ndcg
from oxygen.model import OxygenModel
from oxygen.model.bundle import Bundle, default_scenarios
from oxygen.recommenders.base import Recommender, check_k
from oxygen.semantic_ids.build import build_codebook
from oxygen.semantic_ids.codebook import Codebook
from oxygen.semantic_ids.trie import PrefixTrie
from oxygen.training.curves import save_curves
from oxygen.training.ema import make_ema
from oxygen.training.loop import FitResult, fit, make_optimizer, run_epoch
from oxygen.training.prepare import Prepared, collate_all, crop_augment, model_config_for, prepare, query_lookup, subsample

TIGER_SWITCHES = {"instruction_placement": "none", "use_reasoning": False, "use_igr": False, "use_q2i": False}
DECODE_BATCH = 256


def variant_model_config(cfg: GenerativeConfig) -> ModelConfig:
    """The model config of the chosen variant (tiger switches the instruction machinery off)."""
    return cfg.model.model_copy(update=TIGER_SWITCHES) if cfg.variant == "tiger" else cfg.model


class GenerativeRecommender(Recommender):
    """Semantic-ID generation with the OxygenREC encoder-decoder (or its TIGER ablation)."""

    def __init__(self, cfg: GenerativeConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.name = cfg.variant
        self.model: OxygenModel | None = None
        self.prep: Prepared | None = None
        self.trie: PrefixTrie | None = None
        self.result: FitResult | None = None
        self.fusion_weight = 0.0  # chosen on valid when cfg.fusion.weights is set

    def fit(self, train_rows: Sequence[Row], valid_rows: Sequence[Row], items: Sequence[Item]
            ) -> "GenerativeRecommender":
        """Build SIDs, collate, train with early stopping on valid HR@10; returns self."""
        torch.set_num_threads(self.cfg.train.threads)
        ds = Dataset(root=Path("."), items=list(items), splits={"train": list(train_rows), "valid": list(valid_rows)})
        cb = self._codebook(ds)  # SIDs from the rows as they are (crop copies would double-count pairs)
        ds.splits["train"] = crop_augment(ds.splits["train"], self.cfg.train.crop_last)
        self.prep = prepare(ds, cb, self.cfg.train, use_queries=self._use_queries)
        self.trie = PrefixTrie(cb.codes, cb.item_ids)
        torch.manual_seed(self.cfg.train.seed)
        self.model = OxygenModel(model_config_for(self.prep, variant_model_config(self.cfg)))
        valid, idx = subsample(self.prep.batches["valid"], self.cfg.train.max_valid_rows, self.cfg.train.seed)
        targets = np.array([valid_rows[i].target for i in idx])

        def validate(model: torch.nn.Module) -> dict[str, float]:
            top = self._decode(model, valid, self.cfg.train.valid_k)
            k = self.cfg.train.valid_k
            return {f"hr@{k}": hit_rate(top, targets, k), f"ndcg@{k}": ndcg(top, targets, k)}

        t0 = time.time()
        self.result = fit(self.model, self.prep.batches["train"], validate, self.cfg.train,
                          metric=f"hr@{self.cfg.train.valid_k}")
        self.fit_info = {"best_epoch": self.result.best_epoch, "best_valid": self.result.best_valid,
                         "history": self.result.history, "codebook": self.prep.codebook.meta.get("source"),
                         "fit_seconds": time.time() - t0}
        if self.cfg.out_dir:
            save_curves(self.result.history, Path(self.cfg.out_dir) / "curve.png", title=self.cfg.variant)
        if self.cfg.fusion.weights:
            self._select_fusion(ds.splits["train"], list(valid_rows))
        return self

    def _select_fusion(self, train_rows: list[Row], valid_rows: list[Row]) -> None:
        """Choose the fusion weight on valid HR@k (every valid row; ties -> the smaller weight)."""
        if self.prep.space.transitions is None:
            self.prep.space.transitions = TransitionTable.build(train_rows)
        k = self.cfg.train.valid_k
        items, logp = self._decode_scored(self.model, self.prep.batches["valid"], max(k, self.cfg.eval_beam))
        dists = self._transition_dists(valid_rows)
        targets = np.array([r.target for r in valid_rows])
        table = {w: hit_rate(fuse_top_k(items, logp, dists, w, k), targets, k) for w in sorted(self.cfg.fusion.weights)}
        self.fusion_weight = max(table, key=lambda w: (table[w], -w))
        self.fit_info["fusion"] = {"weight": self.fusion_weight, f"valid_hr@{k}": table}

    def refit(self, rows: Sequence[Row], items: Sequence[Item]) -> "GenerativeRecommender":
        """Retrain from scratch on `rows` (train + valid) for the epoch count `fit` selected, with the
        same SIDs and feature space; the last weights (or their EMA) are kept (no held-out split is left)."""
        if self.model is None or self.prep is None or self.result is None:
            raise RuntimeError("call fit() before refit(): it builds the SIDs and selects the epochs")
        rows = crop_augment(list(rows), self.cfg.train.crop_last)
        if self.prep.collate_cfg.candidates or self.cfg.fusion.weights:  # counts now from train + valid
            self.prep.space.transitions = TransitionTable.build(rows)
        data = self._collate(rows, "refit", leave_user_out=True)
        torch.manual_seed(self.cfg.train.seed)
        self.model = OxygenModel(self.model.cfg)
        cfg = self.cfg.train.model_copy(update={"epochs": max(1, self.result.best_epoch)})
        opt, sched = make_optimizer(self.model, cfg, cfg.epochs * math.ceil(len(data) / cfg.batch_size))
        gen, ema = torch.Generator().manual_seed(cfg.seed), make_ema(self.model, cfg.ema_decay)
        for epoch in range(cfg.epochs):
            m = run_epoch(self.model, data, opt, sched, cfg, gen, ema=ema)
            tqdm.write(f"refit epoch {epoch + 1}/{cfg.epochs} train_loss={m['loss']:.4f}")
        if ema is not None:
            ema.copy_to_module()
        self.model.eval()
        self.fit_info.update(refit_epochs=cfg.epochs, refit_rows=len(data))
        return self

    @property
    def _use_queries(self) -> bool:
        """Search queries feed the reasoning instruction (oxygen only; tiger has no instructions)."""
        return self.cfg.use_queries and self.cfg.variant == "oxygen"

    def _collate(self, rows: list[Row], desc: str, leave_user_out: bool = False) -> ModelBatch:
        """`rows` as one ModelBatch in the fitted feature space (queries embedded when used)."""
        lookup = query_lookup(rows) if self._use_queries else None
        return collate_all(rows, self.prep.space, self.prep.collate_cfg, lookup, desc, leave_user_out)

    def to_bundle(self, titles: dict[int, str] | None = None, version: str | None = None) -> Bundle:
        """The servable bundle of the fitted model; scenario pools = targets seen per scenario."""
        if self.model is None or self.prep is None:
            raise RuntimeError("call fit() before to_bundle()")
        observed: dict[str, set[int]] = {}
        for split in ("train", "valid"):
            for r in self.prep.rows.get(split, []):
                if r.scenario:
                    observed.setdefault(r.scenario, set()).add(r.target)
        specs = default_scenarios(self.prep.codebook.item_ids.tolist(), observed)
        return Bundle(self.model, self.prep.codebook, self.prep.space, self.prep.collate_cfg, specs,
                      titles or {}, version or f"{self.cfg.variant}-{time.strftime('%Y%m%d-%H%M%S')}",
                      self._fusion_spec() if self.fusion_weight > 0 else None)

    def _codebook(self, ds: Dataset) -> Codebook:
        if self.cfg.sid_dir:
            return Codebook.load(self.cfg.sid_dir)
        cb, self.sid_metrics = build_codebook(self.cfg.sid, catalogue_input(ds.items, ds.splits["train"]))
        return cb

    @staticmethod
    def _chunks(batch: ModelBatch):
        """`batch` in consecutive parts of at most DECODE_BATCH rows."""
        for s in range(0, len(batch), DECODE_BATCH):
            yield batch.select(torch.arange(s, min(s + DECODE_BATCH, len(batch))))

    def _decode_scored(self, model: OxygenModel, batch, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-n item ids Int64[B, n] and log-probs Float[B, n] by constrained beam search (beam >= n),
        in chunks of DECODE_BATCH."""
        model.eval()
        beam = max(n, self.cfg.eval_beam)
        with torch.no_grad():
            out = [generate_items(model, part, [self.trie], beam=beam, k=n) for part in self._chunks(batch)]
        return np.concatenate([ids.numpy() for ids, _ in out]), np.concatenate([sc.numpy() for _, sc in out])

    def _decode(self, model: OxygenModel, batch, k: int) -> np.ndarray:
        """Top-k item ids Int64[B, k] of the model alone (with a copy head: the beam mixed with the
        copy distribution by the model's own gate), chunk by chunk."""
        if not model.cfg.copy_head:
            return self._decode_scored(model, batch, k)[0]
        tops = []
        for part in self._chunks(batch):
            items, logp = self._decode_scored(model, part, max(k, self.cfg.eval_beam))
            gates, dists = copy_dists(model, part, self.prep.space.item_ids)
            tops.append(fuse_top_k(items, logp, dists, gates, k))
        return np.concatenate(tops)

    def _fusion_spec(self, weight: float | None = None) -> FusionSpec:
        f = self.cfg.fusion
        return FusionSpec(self.fusion_weight if weight is None else weight, f.decay, f.max_back)

    def _transition_dists(self, rows: Sequence[Row]) -> list[dict[int, float]]:
        """The transition channel's next-item distribution of each row's history."""
        return self._fusion_spec().dists(self.prep.space.transitions, [r.history for r in rows])

    def recommend(self, rows: Sequence[Row], k: int) -> np.ndarray:
        """Int64[len(rows), k] generated item ids, best first (fused with the transition channel
        when a fusion weight > 0 was selected on valid)."""
        check_k(k)
        if self.model is None or self.prep is None:
            raise RuntimeError("call fit() before recommend()")
        batch = self._collate(list(rows), "rows")
        if self.fusion_weight <= 0:
            return self._decode(self.model, batch, k)
        items, logp = self._decode_scored(self.model, batch, max(k, self.cfg.eval_beam))
        return fuse_top_k(items, logp, self._transition_dists(rows), self.fusion_weight, k)

    def num_params(self) -> int:
        """Trainable parameters of the encoder-decoder."""
        return 0 if self.model is None else int(self.model.num_parameters)

