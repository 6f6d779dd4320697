"""Post-training roles on Ray (the wiring; the work is plain code elsewhere): the reward actor,
rollout workers and the learner, and the proxies that let THE driver loop (oxygen.rl.post_train.
drive) run them unchanged.

`RewardActor` holds the reward mapping (`oxygen.rl.rewards.load_mapping`: format, relevance,
ranking, diversity over a dataset, a bundle and a ranker) and micro-batches concurrent calls from
rollout workers (`oxygen.rl.batcher.MicroBatcher`): calls arriving within `max_wait_ms` of each
other, up to `max_batch` requests, are scored in one pass. It is an async actor, so many callers
may be waiting at once; scoring runs on the actor's own thread(s).

    actor = start_reward_actor(RewardSources("runs/W", "runs/train/bundle", "runs/ranker/ranker.pt"), RewardConfig())
    rewards = ray.get(actor.score.remote(rows, groups))     # Rewards(total Float[B, G], parts)
    ray.get(actor.stats.remote())                           # {"batches": ..., "items_per_s": ...}

`RolloutActor`s each hold a RolloutWorker; `LearnerActor` holds the Learner. On `device: cuda` every
role asks for an equal share of one GPU (`gpu_share`) and runs its model there. Weights travel through
the object store: the learner's `state()` result (numpy arrays) is one object that every rollout
worker's `set_weights` reads, so a new version is published once, whatever the number of workers.

    roles = ray_roles("runs/train/bundle", sources, PostTrainConfig(), workers=2)
    run = drive(roles, train_rows, cfg, n_pool)             # the same loop as in process
    model = policy_of(run, bundle)                          # the post-trained weights in a model
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence

import numpy as np
import psutil
import ray
import torch

from oxygen.config import OnDevice, PostTrainConfig, RewardConfig, RolloutConfig
from oxygen.data.schema import Row
from oxygen.decoding.decode import DecoderTables
from oxygen.device import ray_gpus_wanted
from oxygen.model.bundle import Bundle
from oxygen.model.encdec import OxygenModel
from oxygen.rl.batcher import MicroBatcher
from oxygen.rl.learner import Learner
from oxygen.rl.post_train import PostTrainRun, Roles, Validate, chosen_state, drive
from oxygen.rl.rewards import RewardMapping, Rewards, RewardSources, load_mapping
from oxygen.rl.rollout import RolloutBatch, RolloutWorker, concat_rollouts, decoder_tables


@ray.remote
class RewardActor:
    """The reward mapping service as one Ray actor (see the module docstring)."""

    def __init__(self, sources: RewardSources | RewardMapping, cfg: RewardConfig, threads: int = 1) -> None:
        """`sources`: the files to load the mapping from, or a mapping object itself."""
        torch.set_num_threads(threads)
        mapping = sources if isinstance(sources, RewardMapping) else load_mapping(sources, cfg)
        self.batcher = MicroBatcher(mapping, cfg.max_batch, cfg.max_wait_ms / 1000.0)

    async def score(self, rows: Sequence[Row], groups: np.ndarray) -> Rewards:
        """Rewards of `rows` x `groups` (Int[B, G], -1 = no item), batched with concurrent calls."""
        return await self.batcher.submit(rows, groups)

    def stats(self) -> dict[str, float]:
        """Calls, batches, requests, items and scoring throughput so far."""
        return self.batcher.stats.as_dict()


def start_reward_actor(sources: RewardSources | RewardMapping, cfg: RewardConfig, num_cpus: float = 1.0,
                       threads: int = 1, num_gpus: float = 0.0) -> ray.actor.ActorHandle:
    """Start the reward actor on the current Ray cluster (ray.init first) and wait until it is ready
    (`num_gpus`: its share of a GPU when `sources.device` is cuda)."""
    actor = RewardActor.options(num_cpus=num_cpus, num_gpus=num_gpus).remote(sources, cfg, threads)
    ray.get(actor.stats.remote())  # surfaces a loading error (missing file, bad config) here
    return actor


def _tensors(state: dict) -> dict[str, torch.Tensor]:
    """Weights from the object store (read-only numpy) as tensors (copied into the model anyway)."""
    return {k: torch.tensor(v) for k, v in state.items()}


@ray.remote
class RolloutActor:
    """One rollout worker on its own process (a policy copy; `set_weights` installs new versions)."""

    def __init__(self, bundle_dir: str, cfg: RolloutConfig, threads: int = 1, tables: DecoderTables | None = None,
                 on: OnDevice | None = None) -> None:
        """`tables`: the bundle's decoder tables from the object store (read zero-copy), or None to
        build them in this process; `on`: device and precision (the PostTrainConfig; None: auto)."""
        torch.set_num_threads(threads)
        on = on or OnDevice()
        self.worker = RolloutWorker(Bundle.load(bundle_dir, on.device), cfg, tables, on.precision)

    def generate(self, rows: Sequence[Row], seed: int) -> RolloutBatch:
        """A group per request of `rows` (see RolloutWorker.generate)."""
        return self.worker.generate(rows, seed)

    def set_weights(self, state: dict, version: int) -> int:
        """Install `state` (name -> numpy array) as `version`; returns the version now held."""
        self.worker.set_weights(_tensors(state), version)
        return self.worker.version

    def memory(self) -> dict[str, float]:
        """This worker process's resident memory in MB: rss (all resident pages, shared ones
        included), uss (pages only this process holds) and pss (shared pages split between
        their processes)."""
        info = psutil.Process().memory_full_info()
        return {k: getattr(info, k) / 2 ** 20 for k in ("rss", "uss", "pss") if hasattr(info, k)}


@ray.remote
class LearnerActor:
    """The learner on its own process: updates from rollout batches, publishes its weights."""

    def __init__(self, bundle_dir: str, cfg: PostTrainConfig) -> None:
        torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        bundle = Bundle.load(bundle_dir, cfg.device)
        self.learner = Learner(bundle.model, cfg, bundle.space, bundle.collate_cfg)

    def update(self, batch: RolloutBatch) -> dict[str, float]:
        """One learner update (see Learner.update)."""
        return self.learner.update(batch)

    def state(self) -> dict[str, np.ndarray]:
        """The policy's weights as numpy arrays (one object-store object per version)."""
        return {k: v.numpy() for k, v in self.learner.state().items()}

    def save(self, path: str) -> str:
        """A resumable checkpoint (Learner.save)."""
        return str(self.learner.save(path))


class RolloutPool:
    """Driver-side proxy: a request batch split over the rollout actors, their shares concatenated."""

    def __init__(self, actors: Sequence[ray.actor.ActorHandle]) -> None:
        self.actors = list(actors)

    def generate(self, rows: Sequence[Row], seed: int = 0) -> RolloutBatch:
        parts = np.array_split(np.arange(len(rows)), len(self.actors))
        refs = [a.generate.remote([rows[i] for i in p], seed * len(self.actors) + k)
                for k, (a, p) in enumerate(zip(self.actors, parts)) if len(p)]
        return concat_rollouts(ray.get(refs))

    def set_weights(self, state: ray.ObjectRef, version: int) -> None:
        """Every actor installs the one published `state` object."""
        got = ray.get([a.set_weights.remote(state, version) for a in self.actors])
        if any(v != version for v in got):
            raise RuntimeError(f"rollout workers hold versions {got}, expected {version}")


class LearnerProxy:
    """Driver-side proxy of the learner actor; `state()` is an object-store reference."""

    def __init__(self, actor: ray.actor.ActorHandle) -> None:
        self.actor, self.version = actor, 0

    def update(self, batch: RolloutBatch) -> dict[str, float]:
        out = ray.get(self.actor.update.remote(batch))
        self.version = int(out.get("version", self.version))
        return out

    def state(self) -> ray.ObjectRef:
        return self.actor.state.remote()

    def save(self, path: str) -> str:
        return ray.get(self.actor.save.remote(path))


class RewardProxy:
    """Driver-side proxy of the reward actor with the mapping's call signature."""

    def __init__(self, actor: ray.actor.ActorHandle) -> None:
        self.actor = actor

    def __call__(self, rows: Sequence[Row], groups: np.ndarray) -> Rewards:
        return ray.get(self.actor.score.remote(rows, groups))


def ray_roles(bundle_dir: str, rewards: RewardSources | RewardMapping, cfg: PostTrainConfig, workers: int,
              threads_per_worker: int = 1) -> Roles:
    """The roles as Ray actors (ray.init first): `workers` rollout actors, the reward actor, the
    learner; a cluster with too few CPUs for them is an error here (not actors waiting forever).
    With `cfg.share_tables` the decoder tables are built once here and put in the object store;
    every rollout worker reads that one copy (zero-copy on its node)."""
    need = workers * threads_per_worker + cfg.threads + 1
    have = ray.cluster_resources().get("CPU", 0)
    if have < need:
        raise RuntimeError(f"post-training needs {need} CPUs on the Ray cluster ({workers} rollout workers x "
                           f"{threads_per_worker}, the learner {cfg.threads}, the reward actor 1) but it has {have:g}; "
                           "use fewer workers or start Ray with more CPUs (ray.init(num_cpus=...))")
    tables = ray.put(decoder_tables(Bundle.load(bundle_dir))) if cfg.share_tables else None
    gpu = gpu_share(cfg.device, workers + 2)
    rollouts = [RolloutActor.options(num_cpus=threads_per_worker, num_gpus=gpu).remote(
        bundle_dir, cfg.rollout, threads_per_worker, tables, cfg) for _ in range(workers)]
    learner = LearnerActor.options(num_cpus=cfg.threads, num_gpus=gpu).remote(bundle_dir, cfg)
    on_gpu = isinstance(rewards, RewardSources) and rewards.device != "cpu"  # its bundle and ranker run there
    reward = start_reward_actor(rewards, cfg.reward, num_gpus=gpu if on_gpu else 0.0)
    return Roles(RolloutPool(rollouts), RewardProxy(reward), LearnerProxy(learner))


def gpu_share(device: str, roles: int) -> float:
    """The GPU fraction each of `roles` actors asks for: 0 on the CPU; with device cuda (or auto on
    a cluster with GPUs) the roles share one GPU (1 / roles each), so the rollout workers, the
    reward actor and the learner sit on one GPU node beside the shared tables. A local Ray without
    a GPU and device cuda is an error naming the fix."""
    wanted = ray_gpus_wanted(device, 1, float(ray.cluster_resources().get("GPU", 0)),
                             bool(os.environ.get("RAY_ADDRESS")), "the post-training roles (shared)")
    return 1.0 / roles if wanted else 0.0


def policy_of(run: PostTrainRun, bundle: Bundle) -> OxygenModel:
    """The post-trained policy of a Ray run, as a model (the bundle's architecture, the weights the
    run ships: its best version on valid, or the learner's last)."""
    model = copy.deepcopy(bundle.model)
    model.load_state_dict(_tensors(ray.get(chosen_state(run))))
    return model.eval()


def post_train_on_ray(bundle_dir: str, rewards: RewardSources | RewardMapping, rows: Sequence[Row],
                      cfg: PostTrainConfig, workers: int, validate: Validate | None = None
                      ) -> tuple[PostTrainRun, OxygenModel]:
    """THE driver loop over Ray actors (a local Ray with enough CPUs is started unless one is
    connected: on a cluster, `ray job submit` runs this against it); (run, post-trained model).
    `validate` scores a policy state in this process (the learner's object-store weights fetched)."""
    if not ray.is_initialized():
        ray.init(num_cpus=workers + cfg.threads + 1, include_dashboard=False, log_to_driver=False)
    bundle = Bundle.load(bundle_dir)
    on_ref = None if validate is None else (lambda ref: validate(_tensors(ray.get(ref))))
    run = drive(ray_roles(bundle_dir, rewards, cfg, workers), rows, cfg, len(bundle.space.item_ids), validate=on_ref)
    return run, policy_of(run, bundle)
