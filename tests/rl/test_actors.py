"""The reward actor on real (local) Ray: concurrent callers are batched, every caller gets what
the in-process reward mapping gives, and a missing checkpoint fails at start with its path."""

from __future__ import annotations

import numpy as np
import pytest
import ray
import torch

from oxygen.config import RankerConfig, RewardConfig
from oxygen.rl.actors import start_reward_actor
from oxygen.rl.rank_data import RankSpace
from oxygen.rl.rank_fit import build_model, save_ranker
from oxygen.rl.rewards import RewardSources, load_mapping
from tests.worlds import tiny_world


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    from bench.tiny_bundle import catalogue_bundle
    root = tmp_path_factory.mktemp("actor")
    ds = tiny_world(root / "w", root / "s", users=50, seed=4, items=300, days=20)
    catalogue_bundle(root / "bundle", ds.items)
    space = RankSpace.fit(ds.items, ds.splits["train"])
    save_ranker(build_model(RankerConfig(d_model=32, heads=4, d_ff=64, layers=1), space), space, root / "ranker.pt")
    return RewardSources(str(root / "w"), str(root / "bundle"), str(root / "ranker.pt")), ds


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)  # logical: 2 rollout + learner + reward actors
    yield
    ray.shutdown()


def test_reward_actor_batches_callers_and_matches_in_process(local_ray, sources):
    src, ds = sources
    cfg = RewardConfig(max_batch=64, max_wait_ms=200.0)
    actor = start_reward_actor(src, cfg)
    rows = (ds.splits["valid"] + ds.splits["test"])[:12]
    assert len(rows) == 12
    rng = np.random.default_rng(1)
    calls = [(rows[4 * k:4 * k + 4], rng.integers(0, 300, size=(4, 3 + k))) for k in range(3)]
    outs = ray.get([actor.score.remote(r, g) for r, g in calls])
    mapping = load_mapping(src, cfg)
    for (r, g), out in zip(calls, outs):
        ref = mapping(r, g)
        np.testing.assert_allclose(out.total, ref.total, rtol=1e-5, atol=1e-6)
        assert set(out.parts) == set(ref.parts)
    stats = ray.get(actor.stats.remote())
    assert stats["calls"] == 3 and stats["batches"] < 3 and stats["items"] == sum(g.size for _, g in calls)
    ray.kill(actor)


def test_a_missing_ranker_fails_at_start(local_ray, sources):
    src, _ = sources
    bad = RewardSources(src.data, src.bundle, src.data + "/nope.pt")
    with pytest.raises(Exception, match="nope.pt not found"):
        start_reward_actor(bad, RewardConfig())


def test_post_training_on_ray_learns_and_publishes_versions(local_ray, tmp_path):
    """The driver loop over two rollout actors, the reward actor and the learner actor: every
    worker holds each new version, the mean reward rises, the learner checkpoint is written."""


    from bench.tiny_bundle import make_bundle
    from oxygen.config import PostTrainConfig, RewardParts, RolloutConfig
    from oxygen.data.schema import Row
    from oxygen.rl.actors import policy_of, ray_roles
    from oxygen.rl.post_train import drive
    from oxygen.rl.rewards import RewardMapping

    bundle = make_bundle(tmp_path / "b")
    only = RewardParts(format=0, relevance=0, ranking=1, diversity=0)
    mapping = RewardMapping({"ranking": lambda rows, g: np.where((g >= 0) & (g % 7 == 0), 1.0, 0.0)},
                            RewardConfig(weights={s: only for s in ("homepage", "channel", "cart")}))
    rng = np.random.default_rng(0)
    rows = [Row(user_id=f"u{k}", history=rng.choice(120, 4, replace=False).tolist(), target=int(rng.integers(120)),
                scenario="homepage") for k in range(30)]
    cfg = PostTrainConfig(iterations=10, requests=16, epochs=2, minibatch=64, lr=3e-3, synthetic_ratio=0.25,
                          threads=1, rollout=RolloutConfig(group=8))
    roles = ray_roles(str(tmp_path / "b"), mapping, cfg, workers=2)
    run = drive(roles, rows, cfg, n_pool=120)
    rewards = [h["reward"] for h in run.history]
    assert np.mean(rewards[-3:]) > np.mean(rewards[:3]) + 0.1, rewards
    assert run.learner.version == 10
    assert [h["version"] for h in run.history] == list(range(1, 11))
    model = policy_of(run, bundle)
    assert not all(torch.equal(v, bundle.model.state_dict()[k]) for k, v in model.state_dict().items())
    assert roles.learner.save(str(tmp_path / "learner.pt")).endswith("learner.pt")


def test_rollout_workers_on_shared_tables_generate_what_own_tables_do(local_ray, tmp_path):
    """Rollout actors reading the decoder tables from the object store (one copy) give exactly the
    groups and old log-probs of an actor that builds its own, and of the in-process worker."""
    from bench.tiny_bundle import make_bundle
    from oxygen.config import RolloutConfig
    from oxygen.data.schema import Row
    from oxygen.rl.actors import RolloutActor
    from oxygen.rl.rollout import RolloutWorker, decoder_tables

    bundle = make_bundle(tmp_path / "b")
    rows = [Row(user_id=f"u{k}", history=[k, k + 40], target=k + 1, scenario=s, trigger=k + 61)
            for k, s in enumerate(["homepage", "cart", "checkout", "search", "channel", "homepage"])]
    cfg = RolloutConfig(group=4)
    ref = ray.put(decoder_tables(bundle))
    shared = RolloutActor.options(num_cpus=1).remote(str(tmp_path / "b"), cfg, 1, ref)
    own = RolloutActor.options(num_cpus=1).remote(str(tmp_path / "b"), cfg, 1, None)
    a, b = ray.get([shared.generate.remote(rows, 3), own.generate.remote(rows, 3)])
    local = RolloutWorker(bundle, cfg).generate(rows, 3)
    for x in (b, local):
        assert np.array_equal(a.items, x.items) and np.allclose(a.old_logp, x.old_logp)
    mem = ray.get(shared.memory.remote())
    assert mem["rss"] > mem["uss"] > 0


@pytest.mark.parametrize("device, gpus, expect", [("cpu", 1.0, 0.0), ("auto", 0.0, 0.0), ("auto", 1.0, 0.25),
                                                  ("cuda", 2.0, 0.25)])
def test_the_roles_share_one_gpu_by_the_device_setting(monkeypatch, device, gpus, expect):
    """Two rollout workers, the reward actor and the learner: a quarter of one GPU each on a GPU device."""
    import oxygen.rl.actors as actors

    monkeypatch.setattr(actors.ray, "cluster_resources", lambda: {"CPU": 8.0, "GPU": gpus})
    assert actors.gpu_share(device, 4) == expect


def test_cuda_roles_on_a_local_ray_without_a_gpu_are_a_clear_error(monkeypatch):
    import oxygen.rl.actors as actors
    from oxygen.device import DeviceError

    monkeypatch.setattr(actors.ray, "cluster_resources", lambda: {"CPU": 8.0})
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(DeviceError, match=r"device=cuda needs 1 GPU\(s\) for the post-training roles \(shared\), but this Ray has 0"):
        actors.gpu_share("cuda", 4)
