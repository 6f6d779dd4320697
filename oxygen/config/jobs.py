"""Configs of the data and slow-thinking jobs: the shop world, the instruction LM and its training,
the near-line instruction pipeline."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from oxygen.config.device import OnDevice
from oxygen.config.loading import StrictConfig


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


class LMConfig(OnDevice):
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
