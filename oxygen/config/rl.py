"""Configs of post-training: the unified ranking model, the reward mapping, the simulated A/B test and
the policy-optimisation objectives."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from oxygen.config.device import OnDevice
from oxygen.config.loading import Scenario, StrictConfig


class RankerConfig(OnDevice):
    """The unified ranking model (oxygen.rl.ranking, apps.train_ranker); listwise False: point-wise."""

    d_model: int = Field(default=64, ge=8)
    layers: int = Field(default=2, ge=1)
    heads: int = Field(default=4, ge=1)
    d_ff: int = Field(default=128, ge=8)
    dropout: float = Field(default=0.1, ge=0, lt=1)  # on the feed-forward output
    attn_dropout: float = Field(default=0.0, ge=0, lt=1)  # on the attention weights: > 0 leaves CPU's fused
    # attention kernel for one that draws a B x heads x T x T mask (2x the step time at T ~150)
    listwise: bool = True
    request_bias: bool = True  # list-wise only: a learned attention bias per layer and head by how many
    # requests back a request token is (own, 1, 2, 3+), so a candidate can weigh its own request over earlier ones
    candidate_month: bool | list[Scenario] = ["homepage", "channel", "cart", "checkout"]  # the scenarios whose
    # candidates also carry their request's (scenario, month), as they carry its query words (True: every
    # scenario, False: none): homepage needs follow the season, and a candidate need not find its request token
    # to know it; kept off search, where it cost valid click AUC (docs/benchmarks.d/ranking.md, B7)
    scenario_tower: int = Field(default=64, ge=0)  # > 0: each scenario adds its own small MLP of this width
    # (candidate state -> 3 funnel logits) to the shared head, zero at the start, as multi-scenario rankers do
    # (0: none); chosen on valid, it turned search from a loss to per-scenario models into a tie (ranking.md B8)
    max_requests: int = Field(default=8, ge=1)  # requests packed per sample (label packing), with
    max_events: int = Field(default=50, ge=1)  # the events before the last of them
    negatives: int = Field(default=9, ge=1)  # sampled negatives per row for datasets without impressions
    negative_power: float = Field(default=0.0, ge=0, le=1)  # ... drawn with P ~ (train target count + 1) **
    # power: 0 uniform (popularity stays a signal, which a policy then exploits), 0.75 word2vec's
    lr: float = Field(default=2e-3, gt=0)
    weight_decay: float = Field(default=0.01, ge=0)
    epochs: int = Field(default=8, ge=1)
    batch_size: int = Field(default=64, ge=1)
    patience: int = Field(default=2, ge=1)
    seed: int = 0
    threads: int | None = Field(default=None, ge=1)


class RewardParts(StrictConfig):
    """Weights of the reward terms in one scenario's mapped total (oxygen.rl.rewards)."""

    format: float = Field(default=1.0, ge=0)
    relevance: float = Field(default=0.0, ge=0)
    ranking: float = Field(default=1.0, ge=0)
    diversity: float = Field(default=0.1, ge=0)


def _scenario_weights() -> dict[str, RewardParts]:
    """Per scenario: search rewards matching the query, homepage rewards variety and the stored
    instruction, channel/cart/checkout mostly the ranking model's expected value."""
    return {"search": RewardParts(relevance=0.5, diversity=0.05), "homepage": RewardParts(relevance=0.2, diversity=0.3),
            "channel": RewardParts(diversity=0.1), "cart": RewardParts(diversity=0.2),
            "checkout": RewardParts(diversity=0.2)}


class RankingValue(StrictConfig):
    """The ranking reward's expected value of an item: click * p_click + cart * p_cart + purchase *
    p_purchase + gmv * p_purchase * price / median catalogue price."""

    click: float = 0.2
    cart: float = 0.3
    purchase: float = 0.5
    gmv: float = 0.5


class RewardConfig(StrictConfig):
    """The reward mapping service (oxygen.rl.rewards, oxygen.rl.actors.RewardActor): the ranking
    value mix, the format penalty, what diversity counts, and the per-scenario weights."""

    value: RankingValue = Field(default_factory=RankingValue)
    format_penalty: float = Field(default=-1.0, le=0)  # an item outside the request's pool (or padding)
    diversity_key: Literal["leaf", "sid1", "sid2"] = "leaf"  # distinct leaf categories or SID prefixes
    weights: dict[Scenario, RewardParts] = Field(
        default_factory=_scenario_weights)
    max_batch: int = Field(default=256, ge=1)  # requests the reward actor scores together
    max_wait_ms: float = Field(default=5.0, ge=0)  # how long the actor waits to fill a batch


class ABTestConfig(StrictConfig):
    """`python -m apps.ab_test`: the simulated online A/B test (oxygen.eval.ab)."""

    k: int = Field(default=10, ge=1)  # items each arm shows per request
    requests: int | None = Field(default=3000, ge=1)  # test-period requests sampled (None: all)
    control: str = "sasrec"  # the arm lifts are measured against
    bootstrap: int = Field(default=1000, ge=100)  # resamples of users for the intervals
    seed: int = Field(default=0, ge=0)  # request sample, common random numbers and the bootstrap
    scenarios: list[Scenario] | None = None  # None: all
    split: Literal["valid", "test"] = "test"  # whose requests: valid to choose between arms, test to report


class ObjectiveConfig(StrictConfig):
    """The group policy-optimisation objective (oxygen.rl.objectives): which one and its constants.
    The SA-GCPO temperatures default to the paper's best (Table 11: tau_pos 1.0 > tau_neg 0.95)."""

    algo: Literal["sa_gcpo", "gspo", "grpo"] = "sa_gcpo"
    clip_eps: float = Field(default=0.2, gt=0, lt=1)  # GRPO's token-ratio clip
    seq_clip_eps: float = Field(default=4e-4, gt=0, lt=1)  # GSPO's sequence-ratio clip (its paper's range)
    tau_pos: float = Field(default=1.0, gt=0)  # SA-GCPO gate temperature where the advantage is positive
    tau_neg: float = Field(default=0.95, gt=0)  # ... and where it is not
    kl_beta: float = Field(default=0.0, ge=0)  # weight of KL to the frozen reference policy (0: off)
    log_ratio_clamp: float = Field(default=10.0, gt=0)  # |log(pi / pi_old)| is clamped to this
    std_floor: float = Field(default=0.0, ge=0)  # advantages divide by max(group reward std, this): 0 is the
    # paper's normalisation; above 0, a group whose rewards barely differ gets small advantages, not +-1


class RolloutConfig(StrictConfig):
    """How rollout workers generate a request's group (oxygen.rl.rollout): G items by trie-constrained
    beam sampling (temperature / top-p) or beam search in the request's scenario pool."""

    group: int = Field(default=8, ge=2)  # G items per request
    sampling: bool = True  # False: the top-G of beam search (deterministic groups)
    temperature: float = Field(default=1.0, gt=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    beam: int | None = Field(default=None, ge=1)  # beam width (None: 2 G)


class PostTrainConfig(OnDevice):
    """`python -m apps.post_train`: the objective, the rollout, the reward mapping, the data mix and
    the learner's schedule (several minibatch steps per rollout: the SA-GCPO gate acts off-policy)."""

    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    reward: RewardConfig = Field(default_factory=RewardConfig)
    gamma: bool | None = None  # Gamma threshold on positive advantages (None: on for sa_gcpo only)
    synthetic_ratio: float = Field(default=0.33, ge=0, lt=1)  # share of requests without a real target
    learn_on: Literal["train", "valid_early"] = "train"  # the rows requests are drawn from: the SFT model's
    # train rows, or the earlier half (by time) of valid, which it never saw; then the later half is the
    # valid that chooses the version and is reported (oxygen.rl.post_train.learning_rows)
    target_bonus: float = Field(default=0.0, ge=0)  # added to an item that is its real request's logged target
    # (a rule reward on the label, as in MiniOneRec's RL stage; synthetic requests have none); 0: the target sets Gamma only
    iterations: int = Field(default=30, ge=1)
    requests: int = Field(default=64, ge=1)  # requests per rollout batch
    epochs: int = Field(default=2, ge=1)  # learner passes over each rollout batch
    minibatch: int = Field(default=128, ge=1)  # generated items per learner step
    lr: float = Field(default=1e-5, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    grad_clip: float = Field(default=1.0, gt=0)
    seed: int = 0
    eval_rows: int | None = Field(default=None, ge=1)  # rows of each split HR is measured on before and
    # after (None: all; else a fixed random sample, the same rows for every run, to compare runs cheaply)
    valid_every: int | None = Field(default=10, ge=1)  # valid HR@10 (on the eval_rows) of the starting model,
    # every N iterations and the last; the run ships the best version (a tie: the earlier). None: the last
    threads: int = Field(default=2, ge=1)
    share_tables: bool = True  # on Ray: the decoder tables go to the object store once, rollout workers read them zero-copy

    @property
    def use_gamma(self) -> bool:
        """Whether positive advantages are thresholded by the real target's reward."""
        return self.objective.algo == "sa_gcpo" if self.gamma is None else self.gamma
