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
from dataclasses import dataclass, replace
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
from oxygen.data.stats import merge, row_stats
from oxygen.data.transitions import TransitionTable
from oxygen.decoding.decode import Decoder
from oxygen.decoding.rerank import RerankSpec, rerank
from oxygen.eval.metrics import hit_rate, ndcg
from oxygen.instructions.pipeline import read_instructions, row_vectors
from oxygen.model import OxygenModel
from oxygen.model.bundle import Bundle, default_scenarios
from oxygen.recommenders.base import Recommender, check_k
from oxygen.semantic_ids.build import build_codebook
from oxygen.semantic_ids.codebook import Codebook
from oxygen.semantic_ids.trie import PrefixTrie
from oxygen.training.loop import FitResult, LoopConfig, Trainable, Validate, adamw_cosine, fit
from oxygen.training.prepare import (
    Prepared,
    RowCollator,
    RowInstructions,
    RowKey,
    collate_all,
    crop_augment,
    instruction_lookup,
    model_config_for,
    prepare,
    prepare_from_stats,
    query_lookup,
    query_table,
    subsample,
)
from oxygen.training.ray_data import RaySplit, init_ray
from oxygen.training.ray_train import RayJob, fit_ray

TIGER_SWITCHES = {"instruction_placement": "none", "use_reasoning": False, "use_igr": False, "use_q2i": False}


def variant_model_config(cfg: GenerativeConfig, has_queries: bool) -> ModelConfig:
    """The model config of the chosen variant (tiger switches the instruction machinery off), with
    `use_q2i: null` resolved: Q2I aligns the query / reasoning instruction with the target item, so
    on data without any query (next-item logs such as Amazon), where that instruction is one
    constant vector, it is off (`has_queries`: some train row has a query); an explicit true or
    false is kept."""
    if cfg.variant == "tiger":
        return cfg.model.model_copy(update=TIGER_SWITCHES)
    if cfg.model.use_q2i is None:
        return cfg.model.model_copy(update={"use_q2i": has_queries})
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
        self.pools: dict[str, set[int]] = {}  # targets seen per scenario in train + valid (serving pools)
        self.generated: RowInstructions | None = None  # per-row instruction vectors (cfg.instructions.file)

    def fit(self, train_rows: Sequence[Row] | RaySplit, valid_rows: Sequence[Row], items: Sequence[Item]
            ) -> "GenerativeRecommender":
        """Build SIDs, collate, train with early stopping on valid HR@k; returns self. `train_rows`
        may be a RaySplit: the rows then stay in Ray Data and each Ray Train worker collates its shard."""
        c = self.cfg.train
        torch.set_num_threads(c.threads)
        if self.cfg.instructions.file and self.cfg.variant == "oxygen":
            self.generated = self.row_instructions(row_vectors(read_instructions(self.cfg.instructions.file)))
        prepare_train = self._prepare_split if isinstance(train_rows, RaySplit) else self._prepare_rows
        data, has_queries, datasets = prepare_train(train_rows, list(valid_rows), list(items))
        self.trie = PrefixTrie(self.prep.codebook.codes, self.prep.codebook.item_ids)
        torch.manual_seed(c.seed)
        self.model = OxygenModel(model_config_for(self.prep, variant_model_config(self.cfg, has_queries)))
        valid, idx = subsample(self.prep.batches["valid"], c.max_valid_rows, c.seed)
        validate = DecodeValidator(self.trie, self.prep.space.item_ids, valid, [list(valid_rows)[i] for i in idx],
                                   c.valid_k, max(c.valid_k, self.cfg.eval_beam))
        self.result = self._train(data, c.epochs, f"valid_hr@{c.valid_k}", validate, datasets)
        self.fit_info = {"best_epoch": self.result.best_epoch, "best_valid": self.result.best_valid,
                         "history": self.result.history, "codebook": self.prep.codebook.meta.get("source"),
                         "use_q2i": self.model.cfg.use_q2i,
                         "fit_seconds": self.result.train_seconds}
        if self.cfg.rerank.weights:
            self._select_rerank(train_rows, list(valid_rows))
        return self

    def _prepare_rows(self, train_rows: Sequence[Row], valid_rows: list[Row], items: list[Item]):
        """SIDs and the collated train batch from rows in memory -> (data, has_queries, datasets=None)."""
        ds = Dataset(root=Path("."), items=items, splits={"train": list(train_rows), "valid": valid_rows})
        cb = self._codebook(items, ds.splits["train"])  # SIDs from the rows as they are (crop copies would double-count pairs)
        ds.splits["train"] = crop_augment(ds.splits["train"], self.cfg.train.crop_last)
        self.prep = prepare(ds, cb, collate_config(self.cfg), use_queries=self._use_queries,
                            generated=self.generated, train_instructions=self._train_instructions)
        self.pools = merge([row_stats(ds.splits["train"]), row_stats(valid_rows)]).scenario_targets
        return self.prep.batches["train"], any(r.query for r in ds.splits["train"]), None

    def _prepare_split(self, split: RaySplit, valid_rows: list[Row], items: list[Item]):
        """The same from a RaySplit: the space from its merged statistics, the train rows collated
        on the workers -> (RowCollator, has_queries, {"train": dataset})."""
        init_ray(self.cfg.train.workers)
        cb = self._codebook(items, None)
        stats = split.stats(pairs=self._needs_pairs, crop_last=self.cfg.train.crop_last)
        ds = Dataset(root=split.path.parent, items=items, splits={"valid": valid_rows})
        self.prep, data = prepare_from_stats(ds, stats, cb, collate_config(self.cfg), self._use_queries,
                                             self.cfg.train.crop_last, self.generated, self._train_instructions)
        self.pools = merge([stats, row_stats(valid_rows)]).scenario_targets
        return data, bool(stats.queries), {"train": split.dataset()}

    @property
    def _needs_pairs(self) -> bool:
        """Whether training needs the transition counts (candidates, or the re-rank on valid)."""
        return self.cfg.model.candidates > 0 or bool(self.cfg.rerank.weights)

    def _train(self, data: ModelBatch | RowCollator, epochs: int, select: str | None, validate: Validate | None,
               datasets: dict | None = None) -> FitResult:
        """THE loop on self.model: select on valid (`select`) or train exactly `epochs` (refit),
        in this process or, with train.workers > 1 or rows in Ray Data (`datasets`), on Ray Train workers."""
        c = self.cfg.train
        loop = LoopConfig(epochs=epochs, batch_size=c.batch_size, patience=c.patience, seed=c.seed,
                          ema_decay=c.ema_decay, grad_clip=c.grad_clip, select=select, device=c.device,
                          precision=c.precision)
        if select is not None:
            torch.manual_seed(c.seed)  # fit's dropout stream starts at the seed (refit's follows the init)
        steps = epochs * math.ceil(len(data) / c.batch_size)
        if c.workers > 1 or datasets:
            return self._train_ray(data, loop, steps, validate, datasets)
        return fit(Trainable(self.model, data, *adamw(self.model, c, steps)), loop, validate)

    def _train_ray(self, data: ModelBatch | RowCollator, loop: LoopConfig, steps: int, validate: Validate | None,
                   datasets: dict | None) -> FitResult:
        """The same loop on `train.workers` Ray Train workers; the run is named by what it trains, so
        starting the same job again resumes it from its last checkpoint."""
        c = self.cfg.train
        job = RayJob(factory=partial(OxygenModel, self.model.cfg), init_state=self.model.state_dict(), data=data,
                     optimizer=partial(adamw, cfg=c, steps=steps), loop=loop, validate=validate, threads=c.threads)
        key = hashlib.sha1(f"{self.cfg.model_dump_json()}|{loop}|{len(data)}".encode()).hexdigest()[:10]
        storage = Path(self.run_dir or tempfile.mkdtemp(prefix="oxygen-train-")) / "ray_train"
        result, state = fit_ray(job, max(1, c.workers), storage, name=f"{'fit' if loop.select else 'refit'}-{key}",
                                datasets=datasets)
        self.model.load_state_dict(state)
        self.model.eval()
        return result

    def _select_rerank(self, train_rows: Sequence[Row] | RaySplit, valid_rows: list[Row]) -> None:
        """Choose the re-rank weight on valid HR@k (every valid row; ties -> the smaller weight)."""
        if self.prep.space.transitions is None:  # rows in memory (a RaySplit's space has its pairs)
            self.prep.space.transitions = TransitionTable.build(train_rows)
        k, beam = self.cfg.train.valid_k, max(self.cfg.train.valid_k, self.cfg.eval_beam)
        items, logp = self._decoder(self.model).beam(self.prep.batches["valid"], beam, beam)
        dists = self._rerank_spec(0.0).dists(self.prep.space.transitions, [r.history for r in valid_rows])
        targets = np.array([r.target for r in valid_rows])
        table = {w: hit_rate(rerank(items, logp, (w, dists), k)[0], targets, k) for w in sorted(self.cfg.rerank.weights)}
        self.rerank_weight = max(table, key=lambda w: (table[w], -w))
        self.fit_info["rerank"] = {"weight": self.rerank_weight, f"valid_hr@{k}": table}

    def refit(self, rows: Sequence[Row] | RaySplit, items: Sequence[Item]) -> "GenerativeRecommender":
        """Retrain from scratch on `rows` (train + valid) for the epoch count `fit` selected, with the
        same SIDs and feature space; the last weights (or their EMA) are kept (no held-out split is left)."""
        if self.model is None or self.prep is None or self.result is None:
            raise RuntimeError("call fit() before refit(): it builds the SIDs and selects the epochs")
        data, datasets = self._split_data(rows) if isinstance(rows, RaySplit) else self._rows_data(rows)
        torch.manual_seed(self.cfg.train.seed)
        self.model = OxygenModel(self.model.cfg)
        epochs = max(1, self.result.best_epoch)
        self._train(data, epochs, None, None, datasets)
        self.fit_info.update(refit_epochs=epochs, refit_rows=len(data))
        return self

    def _rows_data(self, rows: Sequence[Row]) -> tuple[ModelBatch, None]:
        """Refit rows in memory collated (transition counts now from them)."""
        rows = crop_augment(list(rows), self.cfg.train.crop_last)
        if self.prep.collate_cfg.candidates or self.cfg.rerank.weights:  # counts now from train + valid
            self.prep.space.transitions = TransitionTable.build(rows)
        return self._collate(rows, "refit", leave_user_out=True, train=True), None

    def _split_data(self, split: RaySplit) -> tuple[RowCollator, dict]:
        """Refit rows in Ray Data: the counts and queries from their statistics, collated on the workers."""
        c = self.cfg.train
        stats = split.stats(pairs=self._needs_pairs, crop_last=c.crop_last)
        if stats.pairs is not None:
            self.prep.space.transitions = TransitionTable.from_pairs(stats.pairs)
        table = query_table(stats.queries) if self._use_queries else {}
        collator = RowCollator(self.prep.space, self.prep.collate_cfg, table, c.crop_last, stats.augmented_rows,
                               self._train_instructions)
        return collator, {"train": split.dataset()}

    @property
    def _use_queries(self) -> bool:
        """Search queries feed the reasoning instruction (oxygen only; tiger has no instructions)."""
        return self.cfg.use_queries and self.cfg.variant == "oxygen"

    def row_instructions(self, vectors: dict[RowKey, np.ndarray] | None) -> RowInstructions | None:
        """Per-row instruction vectors as this model reads them (on cfg.instructions.scenarios)."""
        if vectors is None:
            return None
        scen = self.cfg.instructions.scenarios
        return RowInstructions(vectors, frozenset(scen) if scen is not None else None)

    @property
    def _train_instructions(self) -> RowInstructions | None:
        """What the training rows read of the generated instructions: none (the paper's scheme, or
        instructions.train off), else all but the instructions.dropout share of them."""
        if self.generated is None or not self.cfg.instructions.train:
            return None
        return replace(self.generated, dropout=self.cfg.instructions.dropout, seed=self.cfg.train.seed)

    def _collate(self, rows: list[Row], desc: str, leave_user_out: bool = False, train: bool = False) -> ModelBatch:
        """`rows` as one ModelBatch in the fitted feature space (queries embedded when used; the
        generated instructions for the rows they cover; training rows read `_train_instructions`)."""
        queries = query_lookup(rows) if self._use_queries else None
        generated = self._train_instructions if train else self.generated
        return collate_all(rows, self.prep.space, self.prep.collate_cfg, instruction_lookup(queries, generated),
                           desc, leave_user_out)

    def to_bundle(self, titles: dict[int, str] | None = None, version: str | None = None,
                  categories: dict[int, str] | None = None) -> Bundle:
        """The servable bundle of the fitted model; scenario pools = targets seen per scenario;
        `categories` (item id -> leaf category) let it serve `instructions.need_slots`."""
        if self.model is None or self.prep is None:
            raise RuntimeError("call fit() before to_bundle()")
        specs = default_scenarios(self.prep.codebook.item_ids.tolist(), self.pools,
                                  self.cfg.instructions.scenarios if self.generated is not None else None)
        ins = self.cfg.instructions
        guided = sorted(s for s, spec in specs.items() if spec.reads_instruction) \
            if self.generated is not None and ins.guidance != 0 else []
        return Bundle(self.model, self.prep.codebook, self.prep.space, self.prep.collate_cfg, specs,
                      titles or {}, version or f"{self.cfg.variant}-{time.strftime('%Y%m%d-%H%M%S')}",
                      self._rerank_spec() if self.rerank_weight > 0 else None,
                      {s: ins.guidance for s in guided}, frozenset(guided if ins.guidance_gated else ()),
                      tuple(ins.guidance_levels), {s: m for s, m in ins.need_slots.items() if s in specs},
                      categories or {})

    def _codebook(self, items: list[Item], train_rows: list[Row] | None) -> Codebook:
        """The prebuilt codebook (`sid_dir`) or SIDs built here (`train_rows` None: rows in Ray
        Data, so only text SIDs, which need no rows, can be built)."""
        if self.cfg.sid_dir:
            return Codebook.load(self.cfg.sid_dir)
        if train_rows is None and self.cfg.sid.source != "text":
            raise ValueError(f"sid.source={self.cfg.sid.source} needs the train rows in memory, but they stay in "
                             "Ray Data here (train.workers > 1); build the SIDs first (python -m apps.build_sids "
                             "--data DIR --out SIDS) and pass --sids SIDS, or set sid.source=text")
        cb, self.sid_metrics = build_codebook(self.cfg.sid, catalogue_input(items, train_rows or []))
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
