"""The generative recommenders `oxygen` and `tiger` behind the offline `Recommender` interface.

`fit` builds the semantic IDs from the train rows (or loads a prebuilt codebook), collates the
rows, trains the encoder-decoder with THE training loop (oxygen.training.loop; with
`train.workers` > 1 the same loop on Ray Train workers) selecting the epoch on valid HR@10 (beam
search over the whole catalogue), and keeps the best weights; with `rerank.weights` it then picks
the transition-channel re-rank weight on valid. `recommend` decodes the top-k items through THE
decode path (oxygen.decoding.decode: the trie-constrained beam, mixed with the copy head or the
transition channel). `tiger` is the same model with the scenario/reasoning instructions, IGR and
Q2I off (TIGER: SIDs + a plain encoder-decoder over the history).

    rec = GenerativeRecommender(GenerativeConfig(variant="oxygen")).fit(train, valid, items)
    top = rec.recommend(test_rows, k=10)        # Int64[n, 10] item ids
"""

from __future__ import annotations

import hashlib
import math
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from oxygen.config import GenerativeConfig, ModelConfig, TrainConfig
from oxygen.data.adapters import catalogue_input
from oxygen.data.batch import ModelBatch
from oxygen.data.batching import CollateConfig
from oxygen.data.io import Dataset
from oxygen.data.schema import Item, Row
from oxygen.data.transitions import TransitionTable
from oxygen.decoding.decode import Decoder
from oxygen.decoding.rerank import RerankSpec, rerank
from oxygen.eval.metrics import hit_rate, ndcg
from oxygen.model import OxygenModel
from oxygen.model.bundle import Bundle, default_scenarios
from oxygen.recommenders.base import Recommender, check_k
from oxygen.semantic_ids.build import build_codebook
from oxygen.semantic_ids.codebook import Codebook
from oxygen.semantic_ids.trie import PrefixTrie
from oxygen.training.loop import FitResult, LoopConfig, Trainable, Validate, adamw_cosine, fit
from oxygen.training.prepare import Prepared, collate_all, crop_augment, model_config_for, prepare, query_lookup, subsample
from oxygen.training.ray_train import RayJob, fit_ray

TIGER_SWITCHES = {"instruction_placement": "none", "use_reasoning": False, "use_igr": False, "use_q2i": False}


def variant_model_config(cfg: GenerativeConfig, rows: Sequence[Row]) -> ModelConfig:
    """The model config of the chosen variant (tiger switches the instruction machinery off), with
    `use_q2i: null` resolved: Q2I aligns the query / reasoning instruction with the target item, so
    on data without any query (next-item logs such as Amazon), where that instruction is one
    constant vector, it is off; an explicit true or false is kept."""
    if cfg.variant == "tiger":
        return cfg.model.model_copy(update=TIGER_SWITCHES)
    if cfg.model.use_q2i is None:
        return cfg.model.model_copy(update={"use_q2i": any(r.query for r in rows)})
    return cfg.model


def collate_config(cfg: GenerativeConfig) -> CollateConfig:
    """How rows become tensors for this job: windows and the transition candidates."""
    t = cfg.train
    return CollateConfig(short_len=t.short_len, long_len=t.long_len, history_trigger=t.history_trigger,
                         candidates=cfg.model.candidates, candidate_decay=cfg.transitions.decay,
                         candidate_max_back=cfg.transitions.max_back)


def adamw(model: torch.nn.Module, cfg: TrainConfig, steps: int):
    """AdamW + warmup/cosine schedule of `cfg` for `steps` optimiser steps (picklable by partial)."""
    return adamw_cosine(model, cfg.lr, cfg.weight_decay, cfg.warmup_steps, steps)


class GenerativeRecommender(Recommender):
    """Semantic-ID generation with the OxygenREC encoder-decoder (or its TIGER ablation)."""

    def __init__(self, cfg: GenerativeConfig, run_dir: Path | str | None = None) -> None:
        super().__init__()
        self.cfg, self.run_dir = cfg, run_dir  # run_dir: where Ray Train keeps its checkpoints (workers > 1)
        self.name = cfg.variant
        self.model: OxygenModel | None = None
        self.prep: Prepared | None = None
        self.trie: PrefixTrie | None = None
        self.result: FitResult | None = None
        self.rerank_weight = 0.0  # chosen on valid when cfg.rerank.weights is set

    def fit(self, train_rows: Sequence[Row], valid_rows: Sequence[Row], items: Sequence[Item]
            ) -> "GenerativeRecommender":
        """Build SIDs, collate, train with early stopping on valid HR@k; returns self."""
        c = self.cfg.train
        torch.set_num_threads(c.threads)
        ds = Dataset(root=Path("."), items=list(items), splits={"train": list(train_rows), "valid": list(valid_rows)})
        cb = self._codebook(ds)  # SIDs from the rows as they are (crop copies would double-count pairs)
        ds.splits["train"] = crop_augment(ds.splits["train"], c.crop_last)
        self.prep = prepare(ds, cb, collate_config(self.cfg), use_queries=self._use_queries)
        self.trie = PrefixTrie(cb.codes, cb.item_ids)
        torch.manual_seed(c.seed)
        self.model = OxygenModel(model_config_for(self.prep, variant_model_config(self.cfg, ds.splits["train"])))
        valid, idx = subsample(self.prep.batches["valid"], c.max_valid_rows, c.seed)
        validate = DecodeValidator(self.trie, self.prep.space.item_ids, valid, [list(valid_rows)[i] for i in idx],
                                   c.valid_k, max(c.valid_k, self.cfg.eval_beam))
        self.result = self._train(self.prep.batches["train"], c.epochs, f"valid_hr@{c.valid_k}", validate)
        self.fit_info = {"best_epoch": self.result.best_epoch, "best_valid": self.result.best_valid,
                         "history": self.result.history, "codebook": self.prep.codebook.meta.get("source"),
                         "use_q2i": self.model.cfg.use_q2i,
                         "fit_seconds": self.result.train_seconds}
        if self.cfg.rerank.weights:
            self._select_rerank(ds.splits["train"], list(valid_rows))
        return self

    def _train(self, data: ModelBatch, epochs: int, select: str | None, validate: Validate | None) -> FitResult:
        """THE loop on self.model: select on valid (`select`) or train exactly `epochs` (refit),
        in this process or, with train.workers > 1, on Ray Train workers."""
        c = self.cfg.train
        loop = LoopConfig(epochs=epochs, batch_size=c.batch_size, patience=c.patience, seed=c.seed,
                          ema_decay=c.ema_decay, grad_clip=c.grad_clip, select=select)
        if select is not None:
            torch.manual_seed(c.seed)  # fit's dropout stream starts at the seed (refit's follows the init)
        steps = epochs * math.ceil(len(data) / c.batch_size)
        if c.workers > 1:
            return self._train_ray(data, loop, steps, validate)
        return fit(Trainable(self.model, data, *adamw(self.model, c, steps)), loop, validate)

    def _train_ray(self, data: ModelBatch, loop: LoopConfig, steps: int, validate: Validate | None) -> FitResult:
        """The same loop on `train.workers` Ray Train workers; the run is named by what it trains, so
        starting the same job again resumes it from its last checkpoint."""
        c = self.cfg.train
        job = RayJob(factory=partial(OxygenModel, self.model.cfg), init_state=self.model.state_dict(), data=data,
                     optimizer=partial(adamw, cfg=c, steps=steps), loop=loop, validate=validate, threads=c.threads)
        key = hashlib.sha1(f"{self.cfg.model_dump_json()}|{loop}|{len(data)}".encode()).hexdigest()[:10]
        storage = Path(self.run_dir or tempfile.mkdtemp(prefix="oxygen-train-")) / "ray_train"
        result, state = fit_ray(job, c.workers, storage, name=f"{'fit' if loop.select else 'refit'}-{key}")
        self.model.load_state_dict(state)
        self.model.eval()
        return result

    def _select_rerank(self, train_rows: list[Row], valid_rows: list[Row]) -> None:
        """Choose the re-rank weight on valid HR@k (every valid row; ties -> the smaller weight)."""
        if self.prep.space.transitions is None:
            self.prep.space.transitions = TransitionTable.build(train_rows)
        k, beam = self.cfg.train.valid_k, max(self.cfg.train.valid_k, self.cfg.eval_beam)
        items, logp = self._decoder(self.model).beam(self.prep.batches["valid"], beam, beam)
        dists = self._rerank_spec(0.0).dists(self.prep.space.transitions, [r.history for r in valid_rows])
        targets = np.array([r.target for r in valid_rows])
        table = {w: hit_rate(rerank(items, logp, (w, dists), k)[0], targets, k) for w in sorted(self.cfg.rerank.weights)}
        self.rerank_weight = max(table, key=lambda w: (table[w], -w))
        self.fit_info["rerank"] = {"weight": self.rerank_weight, f"valid_hr@{k}": table}

    def refit(self, rows: Sequence[Row], items: Sequence[Item]) -> "GenerativeRecommender":
        """Retrain from scratch on `rows` (train + valid) for the epoch count `fit` selected, with the
        same SIDs and feature space; the last weights (or their EMA) are kept (no held-out split is left)."""
        if self.model is None or self.prep is None or self.result is None:
            raise RuntimeError("call fit() before refit(): it builds the SIDs and selects the epochs")
        rows = crop_augment(list(rows), self.cfg.train.crop_last)
        if self.prep.collate_cfg.candidates or self.cfg.rerank.weights:  # counts now from train + valid
            self.prep.space.transitions = TransitionTable.build(rows)
        data = self._collate(rows, "refit", leave_user_out=True)
        torch.manual_seed(self.cfg.train.seed)
        self.model = OxygenModel(self.model.cfg)
        epochs = max(1, self.result.best_epoch)
        self._train(data, epochs, None, None)
        self.fit_info.update(refit_epochs=epochs, refit_rows=len(data))
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
                      self._rerank_spec() if self.rerank_weight > 0 else None)

    def _codebook(self, ds: Dataset) -> Codebook:
        if self.cfg.sid_dir:
            return Codebook.load(self.cfg.sid_dir)
        cb, self.sid_metrics = build_codebook(self.cfg.sid, catalogue_input(ds.items, ds.splits["train"]))
        return cb

    def _rerank_spec(self, weight: float | None = None) -> RerankSpec:
        """The transition-channel re-rank with the selected weight (or `weight`)."""
        t = self.cfg.transitions
        return RerankSpec(self.rerank_weight if weight is None else weight, t.decay, t.max_back)

    def _decoder(self, model: OxygenModel, spec: RerankSpec | None = None) -> Decoder:
        """THE decode path over the whole catalogue for `model` (re-ranked with `spec` if given)."""
        return Decoder(model, {"all": self.trie}, self.prep.space.item_ids, self.prep.space.transitions, spec)

    def recommend(self, rows: Sequence[Row], k: int) -> np.ndarray:
        """Int64[len(rows), k] generated item ids, best first (re-ranked with the transition
        channel when a re-rank weight > 0 was selected on valid, or by the model's copy head)."""
        check_k(k)
        if self.model is None or self.prep is None:
            raise RuntimeError("call fit() before recommend()")
        rows = list(rows)
        dec = self._decoder(self.model, self._rerank_spec() if self.rerank_weight > 0 else None)
        return dec.decode(self._collate(rows, "rows"), [r.history for r in rows], max(k, self.cfg.eval_beam), k).items

    def num_params(self) -> int:
        """Trainable parameters of the encoder-decoder."""
        return 0 if self.model is None else int(self.model.num_parameters)



@dataclass
class DecodeValidator:
    """Validation by decoding: HR@k and NDCG@k of the model alone (its copy head included, no
    transition re-rank) over the whole catalogue on fixed valid rows (picklable, so Ray Train
    workers can run it)."""

    trie: PrefixTrie
    item_ids: np.ndarray
    batch: ModelBatch
    rows: list[Row]
    k: int
    beam: int

    def __call__(self, model: torch.nn.Module) -> dict[str, float]:
        """Metrics of `model` on the valid rows, decoded through THE decode path."""
        decoder = Decoder(model, {"all": self.trie}, self.item_ids)
        top = decoder.decode(self.batch, [r.history for r in self.rows], self.beam, self.k).items
        targets = np.array([r.target for r in self.rows])
        return {f"hr@{self.k}": hit_rate(top, targets, self.k), f"ndcg@{self.k}": ndcg(top, targets, self.k)}
