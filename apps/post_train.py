"""Post-train a generative bundle with group policy optimisation against the reward mapping.

    python -m apps.post_train --bundle runs/demo/train/bundle --data runs/demo/world \\
        --ranker runs/ranker_demo/ranker.pt --algo sa_gcpo --synthetic-ratio 0.33 --out runs/post/sa_gcpo \\
        [--config FILE] [--set iterations=30 --set lr=1e-5]

Each iteration samples requests from the train rows, a `--synthetic-ratio` share synthetic (a
logged user asking in another scenario, no real target). With `--set learn_on=valid_early` they come
from the earlier half of valid, which the SFT model never saw, and the later half is the valid that
chooses the version and is reported. Each iteration generates a group per request with the
current policy through the decode path (beam sampling in the scenario's pool), scores the items
with the reward mapping (format, relevance, the ranker's expected value, diversity; per-scenario
weights) and updates the policy (`--algo` sa_gcpo, gspo or grpo; several minibatch passes per
rollout). `--workers N` runs the rollout workers, the reward actor and the learner as Ray actors
(weights published through the object store; `ray job submit` on a cluster). Valid HR@10 is
measured before post-training and every `valid_every` iterations (`--set valid_every=N`; `null`:
off), and the version with the best valid HR@10 is the one written (the starting model when no
version beats it). Writes OUT/bundle (that servable bundle), OUT/metrics.json (valid and test
HR@1 / HR@10 before and after, overall and per scenario; the chosen iteration; the per-iteration
monitors; seconds), OUT/monitors.png and OUT/learner.pt (the last version's resumable weights and
optimiser).
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable
from pathlib import Path

from apps.cli import add_common, run, write_report
from oxygen.config import PostTrainConfig, load_config
from oxygen.data.io import load_dataset
from oxygen.eval.ranking import eval_split, evaluate_rows
from oxygen.model.bundle import Bundle
from oxygen.recommenders.bundled import BundleRecommender
from oxygen.rl.post_train import chosen_state, learning_rows, post_train
from oxygen.rl.rewards import RewardSources, load_mapping
from oxygen.training.curves import save_panels

MONITORS = ("reward", "reward_group_std", "target_reward", "reward_ranking", "reward_relevance", "reward_diversity",
            "reward_format", "sid1_entropy", "coverage", "kl", "ratio_max", "loss", "valid_score")


def quality(bundle: Bundle, splits: dict[str, list]) -> dict:
    """HR / NDCG @1..10 of `bundle` on each split's rows, overall and per scenario, with each row's
    target rank ('ranks', for paired tests between runs)."""
    rec = BundleRecommender(bundle, progress=False)
    return {s: evaluate_rows(rec, rows, k=10, keep_ranks=True) for s, rows in splits.items()}


def valid_hr10(bundle: Bundle, rows: list) -> Callable[[dict], float]:
    """A policy state -> HR@10 on `rows` of `bundle` with those weights (one model copy, reloaded)."""
    scored = copy.copy(bundle)
    scored.model = copy.deepcopy(bundle.model)

    def score(state: dict) -> float:
        scored.model.load_state_dict(state)
        rec = BundleRecommender(scored, progress=False)
        return float(evaluate_rows(rec, rows, k=10)["overall"]["hr@10"])
    return score


def main(argv: list[str] | None = None) -> dict:
    """Parse, measure before, post-train, measure after, write bundle + metrics + monitors."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", required=True, type=Path, help="the SFT bundle (apps.train)")
    ap.add_argument("--data", required=True, type=Path, help="its dataset folder")
    ap.add_argument("--ranker", type=Path, default=None, help="ranker.pt from apps.train_ranker (the ranking reward)")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--algo", choices=("sa_gcpo", "gspo", "grpo"), default=None)
    ap.add_argument("--synthetic-ratio", type=float, default=None)
    ap.add_argument("--workers", type=int, default=0, help="rollout workers as Ray actors (with the reward and "
                    "learner actors); 0: every role in this process")
    add_common(ap, config="optional YAML PostTrainConfig")
    a = ap.parse_args(argv)
    sets = [*([f"objective.algo={a.algo}"] if a.algo else []),
            *([f"synthetic_ratio={a.synthetic_ratio}"] if a.synthetic_ratio is not None else []), *a.set]
    cfg = load_config(a.config, PostTrainConfig, sets=sets)
    ds = load_dataset(a.data)
    bundle = Bundle.load(a.bundle, cfg.device)
    sources = RewardSources(str(a.data.resolve()), str(a.bundle.resolve()), str(a.ranker.resolve()) if a.ranker else None,
                            device=cfg.device)
    t0 = time.time()
    learn, valid = learning_rows(ds.splits, cfg.learn_on)
    measured = {"valid": eval_split(valid, cfg.eval_rows), "test": eval_split(ds.splits["test"], cfg.eval_rows)}
    before = quality(bundle, measured)
    validate = valid_hr10(bundle, measured["valid"]) if cfg.valid_every else None
    if a.workers > 0:
        from oxygen.rl.actors import post_train_on_ray

        result, policy = post_train_on_ray(str(a.bundle), sources, learn, cfg, a.workers, validate)
    else:
        result = post_train(bundle, load_mapping(sources, cfg.reward), learn, cfg, validate=validate)
        policy = copy.deepcopy(bundle.model)
        policy.load_state_dict(chosen_state(result))
    tuned = copy.copy(bundle)
    tuned.model, tuned.version = policy.eval(), f"{cfg.objective.algo}-{bundle.version}"
    after = quality(tuned, measured)
    a.out.mkdir(parents=True, exist_ok=True)
    tuned.save(a.out / "bundle")
    result.learner.save(str(a.out.resolve() / "learner.pt"))
    save_panels(result.history, a.out / "monitors.png", list(MONITORS),
                title=f"{cfg.objective.algo}, synthetic {cfg.synthetic_ratio:.0%}")
    out = {"bundle": str(a.bundle), "data": str(a.data), "ranker": str(a.ranker), "config": cfg.model_dump(),
           "before": before, "after": after, "history": result.history, "seconds": round(time.time() - t0, 1),
           "chosen": {"iteration": result.best.iteration, "valid_hr@10": result.best.score} if result.best
           else {"iteration": cfg.iterations}}
    write_report(a.out / "metrics.json", out, indent=1, default=str)
    for split in ("valid", "test"):
        b, f = before[split]["overall"], after[split]["overall"]
        print(f"{split}: HR@1 {b['hr@1']:.4f} -> {f['hr@1']:.4f}   HR@10 {b['hr@10']:.4f} -> {f['hr@10']:.4f}")
    print(f"shipped: the version after iteration {out['chosen']['iteration']} of {cfg.iterations}")
    return out


if __name__ == "__main__":
    run(main)
