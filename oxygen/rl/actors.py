"""Post-training roles on Ray (the wiring; the work is plain code elsewhere): the reward actor.

`RewardActor` holds the reward mapping (`oxygen.rl.rewards.load_mapping`: format, relevance,
ranking, diversity over a dataset, a bundle and a ranker) and micro-batches concurrent calls from
rollout workers (`oxygen.rl.batcher.MicroBatcher`): calls arriving within `max_wait_ms` of each
other, up to `max_batch` requests, are scored in one pass. It is an async actor, so many callers
may be waiting at once; scoring runs on the actor's own thread(s).

    actor = start_reward_actor(RewardSources("runs/W", "runs/train/bundle", "runs/ranker/ranker.pt"), RewardConfig())
    rewards = ray.get(actor.score.remote(rows, groups))     # Rewards(total Float[B, G], parts)
    ray.get(actor.stats.remote())                           # {"batches": ..., "items_per_s": ...}
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import ray
import torch

from oxygen.config import RewardConfig
from oxygen.data.schema import Row
from oxygen.rl.batcher import MicroBatcher
from oxygen.rl.rewards import Rewards, RewardSources, load_mapping


@ray.remote
class RewardActor:
    """The reward mapping service as one Ray actor (see the module docstring)."""

    def __init__(self, sources: RewardSources, cfg: RewardConfig, threads: int = 1) -> None:
        torch.set_num_threads(threads)
        self.batcher = MicroBatcher(load_mapping(sources, cfg), cfg.max_batch, cfg.max_wait_ms / 1000.0)

    async def score(self, rows: Sequence[Row], groups: np.ndarray) -> Rewards:
        """Rewards of `rows` x `groups` (Int[B, G], -1 = no item), batched with concurrent calls."""
        return await self.batcher.submit(rows, groups)

    def stats(self) -> dict[str, float]:
        """Calls, batches, requests, items and scoring throughput so far."""
        return self.batcher.stats.as_dict()


def start_reward_actor(sources: RewardSources, cfg: RewardConfig, num_cpus: float = 1.0,
                       threads: int = 1) -> ray.actor.ActorHandle:
    """Start the reward actor on the current Ray cluster (ray.init first) and wait until it is ready."""
    actor = RewardActor.options(num_cpus=num_cpus).remote(sources, cfg, threads)
    ray.get(actor.stats.remote())  # surfaces a loading error (missing file, bad config) here
    return actor
