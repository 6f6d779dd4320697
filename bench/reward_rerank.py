"""How far KL-regularised post-training with a reward could move HR@10, measured without training.

The policy that maximises E[R] - beta * KL(pi || pi_ref) is pi*(y | x) ~ pi_ref(y | x) exp(R(x, y) / beta)
(the closed form behind KL-regularised RL and DPO). Restricted to the reference's own top-N beam,
pi*'s top-10 is that beam re-ranked by log pi_ref + lam * R with lam = 1 / beta. So this bench decodes
the SFT bundle's beam once per row, scores every beam item with the reward mapping (the same one
post-training optimises: oxygen.rl.rewards; it never reads a target), and reports HR@10 over a grid
of lam for the mapped total and for each of its parts. lam = 0 is the SFT model's own order; lam =
inf ranks the beam by the reward alone. If no lam > 0 lifts valid HR@10 over lam = 0, post-training
towards that reward cannot lift HR@10 at any KL weight either: the reward orders the policy's own
candidates worse than the policy does. (It is a ceiling for the beam, not for items outside it.)

    python -m bench.reward_rerank --data W --bundle B --ranker R/ranker.pt --out runs/bench/reward_rerank.json \\
        [--rows 3000] [--beam 50] [--lams 0,0.1,0.3,1,3,10,inf]

lam is chosen per reward source on valid HR@10 (a tie keeps the smaller); test reports it with a
paired bootstrap over rows against lam = 0. The beam is the model's alone (`Decoder.beam`: sequence
log-probs), so a bundle's re-rank mixture is not applied.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from apps.cli import write_report
from oxygen.config import RewardConfig
from oxygen.data.io import load_dataset
from oxygen.data.schema import Row
from oxygen.eval.ranking import eval_split
from oxygen.eval.seeds import paired_bootstrap
from oxygen.recommenders.bundled import BundleRecommender
from oxygen.rl.rewards import RewardMapping, RewardSources, load_mapping

K = 10


def reranked_hits(logp: np.ndarray, items: np.ndarray, reward: np.ndarray, targets: np.ndarray, lam: float) -> np.ndarray:
    """Float[B]: 1 where the target is in the top-K of each row's beam ranked by logp + lam * reward
    (lam = inf: by the reward alone, logp breaking ties). logp, reward Float[B, N]; items Int[B, N]
    (-1: no item, never ranked); targets Int[B]."""
    score = reward + 1e-9 * logp if np.isinf(lam) else logp + lam * reward
    score = np.where(items >= 0, score, -np.inf)
    top = np.take_along_axis(items, np.argsort(-score, axis=1, kind="stable")[:, :K], axis=1)
    return ((top == targets[:, None]) & (top >= 0)).any(axis=1).astype(np.float64)


def beam_rewards(rec: BundleRecommender, mapping: RewardMapping, rows: list[Row], beam: int) -> dict[str, np.ndarray]:
    """One decode and one reward call: items Int[B, N], logp Float[B, N] and each reward source
    Float[B, N] ('total' and the mapping's parts)."""
    decoded = rec.decode(rows, beam, mixture=False)
    out = mapping(rows, decoded.items)
    return {"items": decoded.items, "logp": decoded.scores, "total": out.total, **out.parts}


def split_report(got: dict[str, np.ndarray], targets: np.ndarray, lams: list[float]) -> dict[str, dict[str, np.ndarray]]:
    """Per reward source, per lam: the rows' hits Float[B]."""
    sources = [k for k in got if k not in ("items", "logp")]
    return {src: {str(lam): reranked_hits(got["logp"], got["items"], got[src], targets, lam) for lam in lams}
            for src in sources}


def choose(valid: dict[str, np.ndarray], lams: list[float]) -> str:
    """The lam with the highest mean valid hit rate (a tie: the smaller lam)."""
    best = max(lams, key=lambda lam: (round(float(valid[str(lam)].mean()), 12), -lam))
    return str(best)


def parse_lams(text: str) -> list[float]:
    """`--lams` as sorted floats ('inf' allowed); a clear error when one is not a number >= 0 or 0 is missing."""
    try:
        lams = sorted(float(x) for x in text.split(","))
    except ValueError:
        raise SystemExit(f"--lams {text!r}: give comma-separated numbers, e.g. 0,0.3,1,3,inf") from None
    if any(lam < 0 or np.isnan(lam) for lam in lams):
        raise SystemExit(f"--lams {text!r}: every lam must be >= 0 (inf: the reward alone)")
    if 0.0 not in lams:
        raise SystemExit(f"--lams {text!r}: include 0 (the SFT model's own order, what every lam is compared with)")
    return lams


def main(argv: list[str] | None = None) -> dict:
    """Parse, decode and score both splits, choose lam on valid, write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--bundle", required=True, type=Path)
    ap.add_argument("--ranker", type=Path, default=None, help="ranker.pt from apps.train_ranker (the ranking reward)")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--rows", type=int, default=3000, help="fixed random rows of each split (eval_split)")
    ap.add_argument("--beam", type=int, default=50)
    ap.add_argument("--lams", default="0,0.1,0.3,1,3,10,inf", help="comma-separated; inf: the reward alone")
    a = ap.parse_args(argv)
    lams = parse_lams(a.lams)
    if a.beam < K:
        raise SystemExit(f"--beam {a.beam}: must be at least {K}")
    cfg = RewardConfig()
    mapping = load_mapping(RewardSources(str(a.data), str(a.bundle), str(a.ranker) if a.ranker else None), cfg)
    rec = BundleRecommender(mapping.rewards["relevance"].bundle, beam=a.beam)
    ds = load_dataset(a.data, splits=("valid", "test"))
    hits, scen = {}, {}
    for split in ("valid", "test"):
        rows = eval_split(ds.splits[split], a.rows)
        targets = np.array([r.target for r in rows], dtype=np.int64)
        hits[split] = split_report(beam_rewards(rec, mapping, rows, a.beam), targets, lams)
        scen[split] = np.array([r.scenario for r in rows])
    report = {"data": str(a.data), "bundle": str(a.bundle), "ranker": str(a.ranker), "rows": a.rows, "beam": a.beam,
              "lams": lams, "reward": cfg.model_dump(), "sources": {}}
    for src, by_lam in hits["test"].items():
        lam = choose(hits["valid"][src], lams)
        test, base = by_lam[lam], by_lam["0.0"]
        report["sources"][src] = {
            "valid_hr10": {k: float(v.mean()) for k, v in hits["valid"][src].items()},
            "test_hr10": {k: float(v.mean()) for k, v in by_lam.items()},
            "chosen_lam": lam,
            "test_gap_vs_sft": paired_bootstrap(test, base),
            "test_gap_by_scenario": {s: paired_bootstrap(test[scen["test"] == s], base[scen["test"] == s])
                                     for s in sorted(set(scen["test"]))}}
    write_report(a.out, report, indent=1)
    for src, r in report["sources"].items():
        g = r["test_gap_vs_sft"]
        print(f"{src:10s} valid " + " ".join(f"{k}:{v:.4f}" for k, v in r["valid_hr10"].items())
              + f" | chosen {r['chosen_lam']}: test {r['test_hr10'][r['chosen_lam']]:.4f} "
              f"({g['diff']:+.4f} [{g['lo']:+.4f}, {g['hi']:+.4f}])")
    return report


if __name__ == "__main__":
    main()
