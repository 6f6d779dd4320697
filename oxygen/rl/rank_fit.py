"""Fit and evaluate ranking models: the project's one training loop on packed samples, selection
on valid AUC, and AUC / GAUC (grouped by user) per scenario and funnel head.

    model, result = fit_ranker(cfg, space, train, valid)            # train/valid: Packed
    report = evaluate(model, test)   # {"all": {"auc_click", "gauc_click", ...}, "by_scenario": {...}}
    save_ranker(model, space, path); model, space = load_ranker(path)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from oxygen.config import RankerConfig
from oxygen.data.schema import SCENARIOS
from oxygen.device import module_device, move, resolve_device
from oxygen.eval.metrics import auc, gauc, group_aucs
from oxygen.rl.rank_data import RankBatch, RankSpace, Request, Sample, timelines
from oxygen.rl.ranking import FORMAT, HEADS, Ranker
from oxygen.training.loop import FitResult, LoopConfig, Trainable, adamw_cosine, fit


@dataclass
class Packed:
    """Collated samples and, per sample, the index of its user in `user_ids` (for GAUC)."""

    batch: RankBatch
    users: np.ndarray  # Int[B]
    user_ids: list[str]


def pack(space: RankSpace, requests: list[Request], rows, cfg: RankerConfig) -> Packed:
    """Requests -> packed samples of `cfg.max_requests` (events from `rows`' timelines)."""
    samples: list[Sample] = space.samples(requests, timelines(rows), cfg.max_requests, cfg.max_events)
    if not samples:
        raise ValueError("no requests to pack; check that the impressions (or rows) of this split exist")
    ids = sorted({s.requests[0].user_id for s in samples})
    users = {u: k for k, u in enumerate(ids)}
    return Packed(space.collate(samples), np.array([users[s.requests[0].user_id] for s in samples]), ids)


def build_model(cfg: RankerConfig, space: RankSpace) -> Ranker:
    """A fresh Ranker over `space` with its item features registered."""
    torch.manual_seed(cfg.seed)
    model = Ranker(cfg, space.sizes)
    model.set_item_features(torch.from_numpy(space.leaf), torch.from_numpy(space.price_bucket))
    return model


@torch.no_grad()
def predict(model: Ranker, batch: RankBatch, chunk: int = 256) -> np.ndarray:
    """Float[B, R, C, 3] funnel probabilities, in eval mode, `chunk` samples at a time."""
    model.eval()
    dev = module_device(model)
    parts = [model.probabilities(move(batch.select(torch.arange(a, min(a + chunk, len(batch)), device="cpu")), dev))
             .float().cpu() for a in range(0, len(batch), chunk)]
    return torch.cat(parts).numpy()


def flat(data: Packed, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per real candidate: (probabilities Float[n, 3], labels Float[n, 3], scenario id Int[n],
    user index Int[n])."""
    b = data.batch
    m = b.cand_mask.numpy()
    scen = np.broadcast_to(b.rq_scen.numpy()[:, :, None], m.shape)[m]
    users = np.broadcast_to(data.users[:, None, None], m.shape)[m]
    return probs[m], b.labels.numpy()[m], scen, users


def user_aucs(model: Ranker, data: Packed, head: int = 0) -> dict[str, dict[str, float]]:
    """{"all" | scenario: {user id: AUC of head `head` over the user's candidates there}} (users
    with both classes): what a paired comparison of two rankers resamples."""
    p, y, scen, users = flat(data, predict(model, data.batch))
    out = {}
    for name, sel in [("all", np.ones(len(p), bool))] + [(s, scen == k + 1) for k, s in enumerate(SCENARIOS)]:
        if sel.any():
            per = group_aucs(p[sel, head], y[sel, head], users[sel])
            out[name] = {data.user_ids[u]: a for u, (a, _) in per.items()}
    return out


def evaluate(model: Ranker, data: Packed, probs: np.ndarray | None = None) -> dict:
    """AUC and GAUC (by user) of each head's probability against its label, overall and per scenario."""
    p, y, scen, users = flat(data, predict(model, data.batch) if probs is None else probs)

    def scores(sel: np.ndarray) -> dict[str, float]:
        out = {"candidates": int(sel.sum())}
        for h, name in enumerate(HEADS):
            out[f"auc_{name}"] = auc(p[sel, h], y[sel, h])
            out[f"gauc_{name}"] = gauc(p[sel, h], y[sel, h], users[sel])
        return out

    return {"all": scores(np.ones(len(p), bool)),
            "by_scenario": {s: scores(scen == k + 1) for k, s in enumerate(SCENARIOS) if (scen == k + 1).any()}}


def fit_ranker(cfg: RankerConfig, space: RankSpace, train: Packed, valid: Packed) -> tuple[Ranker, FitResult]:
    """Train on `train` with AdamW + cosine, select the epoch with the best mean valid AUC."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    model = build_model(cfg, space)
    steps = cfg.epochs * math.ceil(len(train.batch) / cfg.batch_size)
    t = Trainable(model, train.batch, *adamw_cosine(model, cfg.lr, cfg.weight_decay, max(1, steps // 20), steps))

    def validate(m: Ranker) -> dict[str, float]:
        rep = evaluate(m, valid)["all"]
        return {"auc": float(np.nanmean([rep[f"auc_{h}"] for h in HEADS])), **{k: rep[k] for k in rep if "_" in k}}

    result = fit(t, LoopConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, patience=cfg.patience,
                               seed=cfg.seed, grad_clip=1.0, select="valid_auc", device=cfg.device,
                               precision=cfg.precision), validate)
    return model, result


def save_ranker(model: Ranker, space: RankSpace, path: Path) -> Path:
    """One file with the config, the weights and the id spaces (plain types only)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": FORMAT, "config": model.cfg.model_dump(), "state": model.state_dict(),
                "space": space.to_dict()}, path)
    return path


def load_ranker(path: Path, device: str = "cpu") -> tuple[Ranker, RankSpace]:
    """The model (on `device`, oxygen.device) and space `save_ranker` wrote (eval mode); FileNotFoundError names the path, and a
    checkpoint of another format (ranking.FORMAT) is refused with how to retrain it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; train one with `python -m apps.train_ranker --data DIR --out DIR`")
    blob = torch.load(path, weights_only=True, map_location="cpu")
    if blob.get("format", 1) != FORMAT:
        raise ValueError(f"{path}: ranker checkpoint format {blob.get('format', 1)}, this Oxygen reads format {FORMAT}; "
                         "retrain it with `python -m apps.train_ranker --data DIR --out DIR`")
    space = RankSpace.from_dict(blob["space"])
    # a checkpoint written before `request_bias` / `candidate_month` / `scenario_tower` existed has none of them
    before = {"request_bias": False, "candidate_month": False, "scenario_tower": 0}
    model = build_model(RankerConfig(**{**before, **blob["config"]}), space)
    model.load_state_dict(blob["state"])
    return model.to(resolve_device(device)).eval(), space
