"""Configs of the recommenders and their parts: the training loop, the baselines, the fast-thinking
model, semantic IDs, the transition channel, re-ranking, generated instructions and the generative job."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from oxygen.config.device import OnDevice
from oxygen.config.loading import Scenario, StrictConfig
from oxygen.device import DeviceSetting


class TrainConfig(OnDevice):
    """Pre-training loop: optimiser, schedule, early stopping, validation, windows, threads/workers,
    device and precision (with workers > 1 and a GPU device, one GPU per Ray Train worker, NCCL)."""

    epochs: int = Field(default=20, ge=1)
    batch_size: int = Field(default=256, ge=1)
    lr: float = Field(default=2e-3, gt=0)
    weight_decay: float = Field(default=0.01, ge=0)
    warmup_steps: int = Field(default=50, ge=0)
    grad_clip: float = Field(default=1.0, gt=0)
    patience: int = Field(default=5, ge=1)
    valid_k: int = Field(default=10, ge=1)
    max_valid_rows: int | None = Field(default=None, ge=1)  # None: validate on every valid row
    short_len: int = Field(default=10, ge=1)
    long_len: int = Field(default=40, ge=0)
    history_trigger: bool = False  # rows without a trigger use their last history item (no-scenario data)
    crop_last: int = Field(default=0, ge=0)  # >0: also train on each row cut to its last crop_last items
    ema_decay: float = Field(default=0.99, ge=0, lt=1)  # >0: validate and keep an EMA of the weights
    seed: int = 0
    threads: int = Field(default=2, ge=1)  # torch threads in all (split between workers)
    workers: int = Field(default=1, ge=1)  # >1: data-parallel Ray Train workers (DDP), checkpointed per epoch


class PopConfig(StrictConfig):
    """`pop` baseline (oxygen.recommenders.pop): most popular train items."""

    exclude_history: bool = False


class MarkovConfig(StrictConfig):
    """`markov` baseline (oxygen.recommenders.markov): first-order item-to-item transitions."""

    decay: float = Field(default=0.3, gt=0, le=1)
    max_back: int = Field(default=10, ge=1)
    self_loops: bool = True
    symmetric: float = Field(default=0.0, ge=0)
    exclude_history: bool = False


class SASRecConfig(OnDevice):
    """`sasrec` baseline (oxygen.recommenders.sasrec): causal self-attention next-item model."""

    hidden: int = Field(default=64, ge=1)
    blocks: int = Field(default=2, ge=1)
    heads: int = Field(default=1, ge=1)
    max_len: int = Field(default=20, ge=1)
    dropout: float = Field(default=0.2, ge=0, lt=1)
    loss: Literal["ce", "bce"] = "ce"
    lr: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    batch_size: int = Field(default=128, ge=1)
    epochs: int = Field(default=200, ge=1)
    patience: int = Field(default=10, ge=1)
    select_metric: Literal["ndcg@10", "hr@10"] = "ndcg@10"
    exclude_history: bool = False
    seed: int = 0
    threads: int = Field(default=2, ge=1)


class ModelConfig(StrictConfig):
    """The fast-thinking encoder-decoder (oxygen.model): sizes, instruction switches, IGR, Q2I, MoE.

    Data-dependent sizes (`codebook_sizes`, `n_items`, `profile_size`) come from the SID codebook
    and `FeatureSpace`; the rest are architecture and ablation switches."""

    codebook_sizes: tuple[int, ...] = (256, 256, 256)  # K_l per SID level
    n_items: int = Field(default=0, ge=0)  # item-id vocabulary is n_items + 1 (0 = padding)
    profile_size: int = Field(default=64, ge=1)  # profile ids 0..profile_size-1 (0 = unknown)
    profile_slots: int = Field(default=5, ge=0)
    n_scenarios: int = Field(default=6, ge=1)  # 0 unknown + SCENARIOS
    n_behaviours: int = Field(default=5, ge=1)  # 0 pad, click, cart, purchase, unknown
    d_model: int = Field(default=128, ge=8)
    n_heads: int = Field(default=4, ge=1)
    enc_layers: int = Field(default=2, ge=1)
    dec_layers: int = Field(default=2, ge=1)
    d_ff: int = Field(default=256, ge=8)
    dropout: float = Field(default=0.1, ge=0, lt=1)
    max_positions: int = Field(default=128, ge=8)  # encoder sequence length limit
    use_item_id: bool | None = None  # an id embedding beside the SID tokens; None: on once n_items is filled from the data
    instruction_placement: Literal["none", "right_of_bos", "replace_bos", "add_to_bos",
                                   "left_of_bos", "two_tokens"] = "right_of_bos"
    use_reasoning: bool = True  # off: every example uses the learnable default instruction
    instr_dim: int = Field(default=384, ge=1)
    query_adapter: bool = False  # search queries through an adapter of their own, apart from the generated
    # instructions of other scenarios (False: one adapter for both, the paper's reasoning adapter)
    adapter_dim: int = Field(default=64, ge=2)  # shared IGR / Q2I space
    use_igr: bool = True
    igr_k: int = Field(default=10, ge=1)
    use_q2i: bool | None = None  # None: on when the train rows carry queries (resolved by the recommender)
    q2i_weight: float = Field(default=0.1, ge=0)
    candidates: int = Field(default=0, ge=0)  # collaborative candidate tokens C: top-C transition candidates in the encoder
    copy_head: bool = False  # pointer over the encoder's item tokens mixed in by a learned gate (oxygen.model.copy)
    moe_experts: int = Field(default=0, ge=0)  # 0 = dense FFN
    moe_active: int = Field(default=2, ge=1)
    moe_where: Literal["encoder", "decoder", "both"] = "both"
    moe_aux_weight: float = Field(default=0.01, ge=0)

    def model_post_init(self, __context: object) -> None:
        if len(self.codebook_sizes) < 1 or min(self.codebook_sizes) < 1:
            raise ValueError(f"codebook_sizes {self.codebook_sizes}: need >= 1 level with >= 1 code each")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} must be divisible by n_heads {self.n_heads}")
        if self.moe_experts and self.moe_active > self.moe_experts:
            raise ValueError(f"moe_active {self.moe_active} > moe_experts {self.moe_experts}; lower it")


class SIDConfig(StrictConfig):
    """Semantic-ID building (apps/build_sids): embedding source, residual k-means, behaviour training."""

    source: Literal["text", "behaviour", "fused", "auto"] = "auto"  # auto: fused if items have text
    levels: int = Field(default=3, ge=1)
    width: int | None = Field(default=None, ge=2)  # None: rq_kmeans.default_width(N, levels)
    encoder: str | None = None  # sentence-transformers folder; None: all-MiniLM-L6-v2 (packaged)
    device: DeviceSetting = "auto"  # where the text encoder runs (oxygen.device)
    text_batch_size: int = Field(default=64, ge=1)
    cache_dir: str | None = ".cache/text_embeddings"
    text_weight: float = Field(default=0.5, ge=0, le=1)  # fused: share of the text half
    kmeans_niter: int = Field(default=20, ge=1)
    swing_alpha: float = Field(default=1.0, gt=0)
    consecutive_weight: float = Field(default=1.0, ge=0)
    max_users_per_item: int = Field(default=200, ge=2)
    behaviour_dim: int = Field(default=64, ge=2)
    behaviour_epochs: int = Field(default=5, ge=1)
    behaviour_batch_size: int = Field(default=512, ge=2)
    behaviour_lr: float = Field(default=0.01, gt=0)
    temperature: float = Field(default=0.1, gt=0)
    seed: int = 0


class TransitionConfig(StrictConfig):
    """The generative model's transition channel (oxygen.data.transitions): P_t(b | history) sums the
    item-to-item successor distributions of the last `max_back` history items, weighted decay**j.
    It scores the collaborative candidates (model.candidates) and the re-rank (rerank.weights)."""

    decay: float = Field(default=0.3, gt=0, le=1)
    max_back: int = Field(default=10, ge=1)


RERANK_GRID = [0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0]


class RerankConfig(StrictConfig):
    """Re-ranking the beam with the transition channel (oxygen.decoding.rerank): the mixture weight w
    is chosen on valid HR@k from `weights` (0 = the model alone, so valid may keep the pure model;
    empty: never re-rank). Off by default when the model has a copy head, its own mixture."""

    weights: list[float] = Field(default_factory=lambda: list(RERANK_GRID))

    def model_post_init(self, __context: object) -> None:
        if any(not 0.0 <= w <= 1.0 for w in self.weights):
            raise ValueError(f"rerank weights {self.weights} must lie in [0, 1] (0 = the model alone)")


class InstructionsConfig(StrictConfig):
    """Generated reasoning instructions (slow thinking): `file` = per-row records from
    `python -m apps.instructions generate --per-row` (user_id, at = the row's time, text), used for
    the valid/test rows they cover; `train`: also attach them to the non-search training rows (else
    the paper's scheme: search rows carry their query, the others the learnable default).

    `guidance` (with a `file`): the instruction-guidance weight the bundle's scenarios that read
    instructions are served with (oxygen.decoding.guidance; 0: none), at `guidance_levels`, and with
    `guidance_gated` only for requests whose stored instruction states an open need. Training and
    apps.train's own figures decode as trained; `bench.instruction_guidance` measures the weight.

    `need_slots` (scenario -> m): the bundle gives m slots of each list of that scenario to the
    first m open needs of the user's stored instruction (oxygen.decoding.need_slots; with or without
    a `file`, and on a model trained by the paper's scheme too); `bench.need_slots` measures m."""

    file: str | None = None
    train: bool = True
    scenarios: list[Scenario] | None = None  # None: every scenario
    # the share of covered training rows left with the learnable default (fixed per row by seed),
    # so the model keeps a path from history alone; valid, test and serving always read theirs
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    guidance: float = Field(default=0.0, gt=-1.0, le=10.0)
    guidance_gated: bool = True
    guidance_levels: list[Literal[0, 1, 2]] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    need_slots: dict[Scenario, Annotated[int, Field(ge=0, le=10)]] = Field(default_factory=dict)


class GenerativeConfig(StrictConfig):
    """A generative recommender job (`apps.bench quality --model oxygen|tiger`): SIDs, model, training.

    `variant: tiger` is this model with instructions, reasoning, IGR and Q2I switched off. Defaults
    are the best general settings known (docs/benchmarks.md); what valid can choose safely (the
    re-rank weight, which may be 0) is chosen on valid."""

    variant: Literal["oxygen", "tiger"] = "oxygen"
    sid_dir: str | None = None  # a prebuilt codebook (apps.build_sids); None: build from train rows
    sid: SIDConfig = Field(default_factory=SIDConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval_beam: int = Field(default=50, ge=1, le=512)
    use_queries: bool = True  # search queries as the reasoning instruction in training
    instructions: InstructionsConfig = Field(default_factory=InstructionsConfig)
    transitions: TransitionConfig = Field(default_factory=TransitionConfig)
    rerank: RerankConfig = Field(default_factory=RerankConfig)  # re-rank the beam with the transition channel

    def model_post_init(self, __context: object) -> None:
        if self.model.copy_head and self.rerank.weights:
            if "weights" in self.rerank.model_fields_set:
                raise ValueError("model.copy_head and rerank.weights both mix in other items: the copy head "
                                 "learns its own per-request weight; drop rerank.weights or copy_head")
            self.rerank.weights = []  # the default grid gives way to the copy head's own mixture
