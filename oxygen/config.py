"""Pydantic models for every job's configuration, and YAML loading. No logic lives here.

Each job (world generation, SID building, training, serving, …) has one config class. Configs
load from YAML with `load_config(path, Cls, sets=[...])`: a file may start from others
(`extends: base.yaml`, merged key by key), and `key.path=value` overrides (`--set` on every job's
command line) apply last. Unknown keys are errors, so a typo never passes.

    cfg = load_config("configs/office/oxygen.yaml", GenerativeConfig, sets=["train.epochs=3"])
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

C = TypeVar("C", bound=BaseModel)


class StrictConfig(BaseModel):
    """Base of all configs: unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid")


class ConfigError(ValueError):
    """A config file, `extends:` chain or `--set` override that cannot be read or validated."""


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """The mapping in YAML file `path` with its `extends:` chain merged underneath (paths relative
    to the file that names them; later files win, nested mappings merge key by key)."""
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: `extends:` loops back to itself ({' -> '.join(map(str, seen))})")
    if not path.exists():
        where = f" (named by `extends:` in {seen[-1]})" if seen else ""
        raise ConfigError(f"config file {path} not found{where}; pass an existing YAML file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the config must be a YAML mapping of key: value")
    parents = data.pop("extends", None) or []
    merged: dict = {}
    for parent in [parents] if isinstance(parents, str) else parents:
        merged = merge(merged, _read_yaml(path.parent / parent, (*seen, path)))
    return merge(merged, data)


def merge(base: dict, top: dict) -> dict:
    """`top` over `base`: nested mappings merge key by key, anything else is replaced (new dict)."""
    out = dict(base)
    for k, v in top.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def apply_set(data: dict, assignment: str) -> dict:
    """`data` with one `key.path=value` override applied (value read as YAML: 3, 0.5, true, [1, 2])."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key.strip() or any(not part for part in key.strip().split(".")):
        raise ConfigError(f"--set {assignment!r}: write key.path=value, e.g. --set train.epochs=5")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        raise ConfigError(f"--set {assignment!r}: the value is not valid YAML: {e}") from None
    parts = key.strip().split(".")
    update: dict = {parts[-1]: value}
    for part in reversed(parts[:-1]):
        update = {part: update}
    return merge(data, update)


def load_config(path: Path | str | None, cls: type[C], sets: Sequence[str] = (), base: dict | None = None,
                **overrides: object) -> C:
    """Build `cls` from `base` (a dict, default empty), then the YAML at `path` with its `extends:`
    chain, then keyword `overrides` that are not None, then `sets` ("key.path=value", in order)."""
    data = merge(base or {}, _read_yaml(Path(path)) if path is not None else {})
    data.update({k: v for k, v in overrides.items() if v is not None})
    for assignment in sets:
        data = apply_set(data, assignment)
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        flags = " ".join(f"--set {s}" for s in sets)
        where = (f"{path} with {flags}" if sets else f"{path}") if path else (flags or "config")
        raise ConfigError(f"{where}: invalid {cls.__name__}: {_problems(e)}") from None


def _problems(err: ValidationError) -> str:
    """Each pydantic error as `key.path: what is wrong`, on one line."""
    out = []
    for e in err.errors():
        where = f"{'.'.join(map(str, e['loc']))}: " if e["loc"] else ""
        if e["type"] == "extra_forbidden":
            out.append(f"{where}is not a known field; check its spelling")
        else:
            got = f" (got {e['input']!r})" if e["type"] != "missing" and not isinstance(e.get("input"), dict) else ""
            out.append(f"{where}{e['msg'].removeprefix('Value error, ')}{got}")
    return "; ".join(out)


# ---- per-job configs are appended below (one class per job) ----


class TrainConfig(StrictConfig):
    """Pre-training loop: optimiser, schedule, early stopping, validation, windows, threads/workers."""

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


class SASRecConfig(StrictConfig):
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
    the paper's scheme: search rows carry their query, the others the learnable default)."""

    file: str | None = None
    train: bool = True
    scenarios: list[Literal["search", "homepage", "channel", "cart", "checkout"]] | None = None  # None: every scenario


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


class WorldConfig(StrictConfig):
    """Shop-world generation (`python -m apps.world`): sizes, simulated time, seed and split."""

    items: int = Field(default=20000, ge=1)
    users: int = Field(default=20000, ge=1)
    days: int = Field(default=90, ge=10)
    seed: int = 0
    max_history: int = Field(default=50, ge=1)
    start_date: str = "2025-10-01"
    valid_frac: float = Field(default=0.1, gt=0, lt=0.5)
    test_frac: float = Field(default=0.1, gt=0, lt=0.5)
    impression_rate: float = Field(default=0.5, ge=0, le=1)  # share of requests with a logged list (impressions.jsonl)
    impression_size: int = Field(default=10, ge=1, le=100)  # items per logged list


class RankerConfig(StrictConfig):
    """The unified ranking model (oxygen.rl.ranking, apps.train_ranker); listwise False: point-wise."""

    d_model: int = Field(default=64, ge=8)
    layers: int = Field(default=2, ge=1)
    heads: int = Field(default=4, ge=1)
    d_ff: int = Field(default=128, ge=8)
    dropout: float = Field(default=0.1, ge=0, lt=1)
    listwise: bool = True
    max_requests: int = Field(default=8, ge=1)  # requests packed per sample (label packing), with
    max_events: int = Field(default=50, ge=1)  # the events before the last of them
    negatives: int = Field(default=9, ge=1)  # sampled negatives per row for datasets without impressions
    lr: float = Field(default=2e-3, gt=0)
    weight_decay: float = Field(default=0.01, ge=0)
    epochs: int = Field(default=8, ge=1)
    batch_size: int = Field(default=64, ge=1)
    patience: int = Field(default=2, ge=1)
    seed: int = 0
    threads: int | None = Field(default=None, ge=1)


class LMConfig(StrictConfig):
    """The small instruction LM (oxygen.instructions.lm): BPE vocabulary, a Qwen2-architecture causal
    LM trained from scratch in fp32 on CPU, and its optimiser. head_dim = hidden / heads must be 32
    or 64 (what vLLM's CPU attention kernels take)."""

    vocab_size: int = Field(default=8192, ge=300)  # BPE vocabulary incl. 256 bytes + special tokens
    # sizes: ~1.5M parameters (with an 8k vocabulary); forward+backward ran at ~20-30k tokens/s on 2
    # lightly loaded cores (hidden 256 / layers 4 / heads 4: ~4-7k), so 20k pairs of ~400 tokens take
    # minutes an epoch; on a shared, saturated machine the loop measured ~1.2k tokens/s
    hidden: int = Field(default=128, ge=32)
    layers: int = Field(default=2, ge=1)
    heads: int = Field(default=2, ge=1)  # head_dim 64
    intermediate: int = Field(default=384, ge=32)  # SwiGLU MLP width
    ctx: int = Field(default=1024, ge=64)  # max positions; longer training pairs are cut oldest-first
    epochs: int = Field(default=3, ge=1)
    lr: float = Field(default=2e-3, gt=0)
    weight_decay: float = Field(default=0.01, ge=0)
    warmup_steps: int = Field(default=50, ge=0)
    batch_size: int = Field(default=16, ge=1)
    grad_clip: float = Field(default=1.0, gt=0)
    seed: int = 0
    threads: int = Field(default=2, ge=1)

    def model_post_init(self, __context: object) -> None:
        if self.hidden % self.heads or self.hidden // self.heads not in (32, 64):
            raise ValueError(f"hidden / heads must be 32 or 64 (vLLM's CPU kernels), got {self.hidden}/{self.heads}")


class InstructorConfig(StrictConfig):
    """`python -m apps.train_instructor`: the LM and how the (prompt, completion) pairs are split."""

    lm: LMConfig = Field(default_factory=LMConfig)
    valid_frac: float = Field(default=0.05, gt=0, lt=0.5)  # held-out pairs for valid loss / best epoch
    max_pairs: int | None = Field(default=None, ge=2)  # None: every pair


class NearlineConfig(StrictConfig):
    """The near-line instruction pipeline (`python -m apps.nearline`, deployments/nearline.yaml):
    which events schedule a regeneration, the merge window, the workers' leases, retries and
    autoscaling bounds, and the backend that writes the instructions."""

    window_s: float = Field(default=300.0, gt=0)  # all of a user's events in one window -> one regeneration
    high_value: list[Literal["search", "click", "cart", "purchase"]] = ["search", "cart", "purchase"]
    lease_s: float = Field(default=60.0, gt=0)  # a claimed window not completed by then is redone elsewhere
    reclaim_idle_s: float | None = Field(default=None, gt=0)  # None: window_s + lease_s
    max_tries: int = Field(default=3, ge=1)  # failed regenerations before the events are dead-lettered
    backoff_s: float = Field(default=5.0, ge=0)  # wait before retrying a failed window
    claim_batch: int = Field(default=64, ge=1)  # users regenerated together (one backend batch)
    min_workers: int = Field(default=1, ge=0)
    max_workers: int = Field(default=4, ge=1)
    users_per_worker: int = Field(default=200, ge=1)  # open windows + unread events one worker keeps up with
    scale_down_after_s: float = Field(default=30.0, ge=0)  # backlog must stay low this long before shrinking
    backend: Literal["knowledge", "hf", "vllm", "service"] = "knowledge"  # service: the vLLM instruction service
    model: str | None = None  # LM folder for hf / vllm
    coverage: float = Field(default=0.8, gt=0, le=1)  # the knowledge teacher's coverage
    service_timeout_s: float = Field(default=30.0, gt=0)  # a service call slower than this fails (retried)
    max_history: int = Field(default=200, ge=1)  # events kept per user state

    def model_post_init(self, __context: object) -> None:
        if self.min_workers > self.max_workers:
            raise ValueError(f"min_workers {self.min_workers} > max_workers {self.max_workers}")
        if self.backend in ("hf", "vllm") and not self.model:
            raise ValueError(f"backend {self.backend} needs `model` (an LM folder from apps.train_instructor)")

    @property
    def reclaim_after_s(self) -> float:
        """Idle time after which another worker takes over pending events."""
        return self.reclaim_idle_s if self.reclaim_idle_s is not None else self.window_s + self.lease_s
