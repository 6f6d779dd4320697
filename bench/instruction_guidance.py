"""Instruction guidance, an experiment for slow thinking (issue 10): does decoding that leans harder
on the reasoning instruction lift the deductive rows without costing the others?

The model hedges: on rows whose hidden reason is a contextual need it puts the need's leaf in its
top 10 on most rows but gives it few of the ten slots (docs/benchmarks.d/instructions.md, D).
Guidance in the manner of classifier-free guidance sharpens what the instruction adds: every beam
is scored twice, with the request's instruction (c) and with the learnable default instruction (u),
and decoding follows log_softmax((1 + w) c - w u) at the chosen SID levels (w = 0: the plain
model; -1 < w < 0 interpolates towards the model's answer with the default). `Guided`
(oxygen.decoding.guidance) wraps a StepModel, so THE decode path (trie constraint, pools, re-rank)
is unchanged; it costs one more request per request in the batch.

    python -m bench.instruction_guidance --data runs/demo/world --bundle runs/demo/train/bundle \\
        --instructions runs/demo/instructions/rows.jsonl --out runs/bench/guidance.json

HR@10 of the homepage rows of valid and test with each weight, on all rows, the deductive rows and
the others (the hidden reason is read for evaluation only), w chosen on valid HR@10 of all rows,
and paired bootstraps over test rows of each weight against w = 0.

Gated guidance: a row is guided only when its instruction states an *open* situational need, one
whose category (the need phrase read with the catalogue's vocabulary) is not among the categories
of the user's history: the record's `open_needs`, which the generator writes
(oxygen.instructions.needs) and serving reads from Redis, so the bench measures the gate serving
applies. The shop world fires a contextual need at most once per user, so an open need is what a
deductive visit follows. The gated lists are the guided lists on gated rows and the plain ones
elsewhere (what the decode path gives with `gates`; tests/decoding/test_guidance.py checks it); their
weight is chosen on valid the same way.

Seeds: with one bundle per seed and the paper-scheme bundle of each seed (`--baseline`, decoded
with the default instruction), the gated weight is chosen on valid with the seeds' hits averaged,
and the test rows report, per hidden reason, the default, the generated (unguided) and the gated
lists, the deductive ratio to the default, and paired bootstraps over rows:

    python -m bench.instruction_guidance --data runs/demo/world --instructions runs/demo/instructions/rows.jsonl \
        --levels 0 --bundle G0 G1 G2 --baseline P0 P1 P2 --out runs/bench/guidance_seeds.json

`frontier` in that report is every weight against the baselines. `--save` writes each bundle's
weight chosen on its own valid rows, with the levels guided, into its guidance.json for homepage,
which the decode path then applies (serving included); `--save --gated` the gated weight, marked
gated, so serving guides only requests whose stored instruction states an open need; w = 0 removes it.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from apps.cli import write_report
from oxygen.data.batching import collate
from oxygen.data.io import load_dataset
from oxygen.decoding.guidance import LEVELS, Guided
from oxygen.eval.instructions import deductive, reason_masks, reason_of
from oxygen.eval.ranking import eval_split
from oxygen.eval.seeds import mean_std, paired_bootstrap
from oxygen.instructions.pipeline import read_instructions, row_instructions
from oxygen.model.bundle import Bundle, guidance_json, read_guidance
from oxygen.training.prepare import instruction_lookup

K, BEAM = 10, 30
WEIGHTS = (0.0, 0.5, 1.0, 2.0)


def split_hits(bundle: Bundle, rows: list, lookup: Any, weights: tuple[float, ...], levels: tuple[int, ...]
               ) -> dict[float, np.ndarray]:
    """{w: Float[len(rows)] 1 where the target is in the top K} of the homepage `rows`."""
    batch = collate(rows, bundle.space, bundle.collate_cfg, lookup, with_targets=False)
    targets = np.array([r.target for r in rows])
    out = {}
    for w in weights:
        dec = bundle.decoder()
        dec.guidance = {}  # the bundle's own weight (guidance.json) gives way to the one measured here
        dec.model = Guided(bundle.model, w, levels)
        top = dec.decode(batch, [r.history for r in rows], BEAM, K, pools=["homepage"] * len(rows)).items
        out[w] = (top == targets[:, None]).any(axis=1).astype(np.float64)
    return out


def summary(hits: dict[float, np.ndarray], ded: np.ndarray) -> dict:
    """HR@K per weight on all, deductive and other rows."""
    return {str(w): {"all": float(h.mean()), "deductive": float(h[ded].mean()), "other": float(h[~ded].mean())}
            for w, h in hits.items()}


@dataclass
class HomepageRows:
    """The homepage rows of one split with what every seed shares: the instruction lookup, the
    deductive mask and hidden reasons (evaluation only) and the gate (from records and history)."""

    rows: list
    ded: np.ndarray  # Bool[n]
    reasons: np.ndarray  # Str[n]
    gate: np.ndarray  # Bool[n]: the instruction states an open need


def homepage_rows(data: Path, instructions: Path, max_rows: int | None = None) -> tuple[dict[str, HomepageRows], Any]:
    """({'valid', 'test': HomepageRows}, the row-instruction lookup) of a dataset and its per-row
    records; with `max_rows`, a fixed random sample of each split's homepage rows (seed 0: the same
    rows for every bundle and run)."""
    ds, records = load_dataset(data), read_instructions(instructions)
    if records and all(r.get("open_needs") is None for r in records):
        raise SystemExit(f"{instructions}: no record says its open needs (written before the generator counted "
                         "them); write it again with python -m apps.instructions generate --per-row")
    generated = row_instructions(records, frozenset(["homepage"]))
    splits = {}
    for split in ("valid", "test"):
        rows = eval_split([r for r in ds.splits[split] if r.scenario == "homepage"], max_rows)
        splits[split] = HomepageRows(rows, deductive(rows), np.array([reason_of(r) for r in rows]),
                                     np.array([generated.gate(r) for r in rows], dtype=bool))
    return splits, instruction_lookup(None, generated)


def bundle_hits(bundle_dir: Path, splits: dict[str, HomepageRows], lookup: Any, weights: tuple[float, ...],
                levels: tuple[int, ...]) -> dict[str, dict[str, dict[float, np.ndarray]]]:
    """{split: {'plain': {w: hits}, 'gated': {w: hits guided on gated rows only}}} of one bundle."""
    bundle, out = Bundle.load(bundle_dir), {}
    for split, part in splits.items():
        hits = split_hits(bundle, part.rows, lookup, weights, levels)
        out[split] = {"plain": hits, "gated": {w: np.where(part.gate, h, hits[0.0]) for w, h in hits.items()}}
    return out


def one_bundle(splits: dict[str, HomepageRows], hits: dict, weights: tuple[float, ...]) -> dict:
    """One bundle's report: {'valid', 'test': HR tables and the gate's rows, 'chosen_w', 'paired', and
    the same with the gate: 'chosen_w_gated', 'paired_gated'}."""
    out: dict = {}
    for split, part in splits.items():
        ded, gate = part.ded, part.gate
        out[split] = {"rows": len(part.rows), "deductive_rows": int(ded.sum()), "hr": summary(hits[split]["plain"], ded),
                      "gate": {"rows_on": int(gate.sum()), "deductive_share_on": float(ded[gate].mean()),
                               "deductive_share_off": float(ded[~gate].mean())},
                      "hr_gated": summary(hits[split]["gated"], ded)}
    for suffix, lists in (("", "plain"), ("_gated", "gated")):
        out[f"chosen_w{suffix}"] = chosen(hits["valid"][lists])
        out[f"paired{suffix}"] = paired_vs_plain(hits["test"][lists], splits["test"].ded, weights)
    return out


def chosen(valid_hits: dict[float, np.ndarray]) -> float:
    """The weight with the best valid HR of all rows (ties: the smaller weight)."""
    return max(valid_hits, key=lambda w: (float(valid_hits[w].mean()), -w))


def run(data: Path, bundle_dir: Path, instructions: Path, weights: tuple[float, ...] = WEIGHTS,
        levels: tuple[int, ...] = (0, 1, 2), max_rows: int | None = None) -> dict:
    """The experiment on one bundle (module docstring) -> one_bundle's report with the settings."""
    splits, lookup = homepage_rows(data, instructions, max_rows)
    hits = bundle_hits(bundle_dir, splits, lookup, weights, levels)
    return {"weights": list(weights), "levels": list(levels), "k": K, "beam": BEAM, "max_rows": max_rows,
            **one_bundle(splits, hits, weights)}


def reason_parts(test: HomepageRows) -> dict[str, np.ndarray]:
    """{part: Bool[n]}: all rows, deductive, other, and one mask per hidden reason (evaluation only)."""
    return reason_masks(test.ded, test.reasons)


def across_seeds(test: HomepageRows, per_seed: list[dict], baseline: list[np.ndarray], w: float) -> dict:
    """Seeds pooled on the test rows: per arm (`default`: the baseline bundles with the default
    instruction; `generated`: the bundles with their instructions, unguided; `gated`: guided at `w`
    on gated rows) HR@K per hidden reason (mean and sd over seeds), the deductive ratio to the
    default, and paired bootstraps over rows of the seed-averaged hits (gated and generated against
    the default, gated against generated) per reason."""
    arms = {"default": baseline, "generated": [h["test"]["plain"][0.0] for h in per_seed],
            "gated": [h["test"]["gated"][w] for h in per_seed]}
    parts = reason_parts(test)
    hr = {arm: {part: mean_std([float(h[mask].mean()) for h in seeds]) for part, mask in parts.items()}
          for arm, seeds in arms.items()}
    mean = {arm: np.mean(seeds, axis=0) for arm, seeds in arms.items()}
    pairs = (("gated", "default"), ("generated", "default"), ("gated", "generated"))
    return {"w": w, "seeds": len(per_seed), "rows": {part: int(mask.sum()) for part, mask in parts.items()},
            "hr": {arm: {part: {"mean": m, "sd": sd} for part, (m, sd) in t.items()} for arm, t in hr.items()},
            "deductive_x_default": {arm: hr[arm]["deductive"][0] / max(hr["default"]["deductive"][0], 1e-12)
                                    for arm in arms},
            "paired": {f"{a}-{b}": {part: paired_bootstrap(mean[a][mask], mean[b][mask]) for part, mask in parts.items()}
                       for a, b in pairs}}


def frontier(test: HomepageRows, per_seed: list[dict], baseline: list[np.ndarray], weights: tuple[float, ...]) -> dict:
    """Every weight without the gate (w < 0 interpolates towards the model's own default-instruction
    answer) against the baselines, seeds pooled on the test rows: {w: {'hr': {part: mean HR},
    'deductive_x_default', 'paired_vs_default': {part: paired bootstrap}}}. A frontier to read,
    not a selection: the weight is chosen on valid (`chosen`)."""
    parts = reason_parts(test)
    base = np.mean(baseline, axis=0)
    out = {}
    for w in weights:
        hits = np.mean([h["test"]["plain"][w] for h in per_seed], axis=0)
        out[str(w)] = {"hr": {part: float(hits[mask].mean()) for part, mask in parts.items()},
                       "deductive_x_default": float(hits[test.ded].mean() / max(base[test.ded].mean(), 1e-12)),
                       "paired_vs_default": {part: paired_bootstrap(hits[mask], base[mask]) for part, mask in parts.items()}}
    return out


def run_seeds(data: Path, bundles: list[Path], baselines: list[Path], instructions: Path,
              weights: tuple[float, ...] = WEIGHTS, levels: tuple[int, ...] = (0, 1, 2),
              max_rows: int | None = None) -> dict:
    """Several seeds: each bundle's report, the gated weight chosen on valid HR of all rows with the
    seeds' hits averaged, and `across_seeds` at that weight against the baselines (one per seed,
    decoded with the default instruction)."""
    if len(baselines) != len(bundles):
        raise ValueError(f"--baseline needs one bundle per --bundle (one per seed): got {len(baselines)} "
                         f"baselines for {len(bundles)} bundles")
    splits, lookup = homepage_rows(data, instructions, max_rows)
    per_seed = [bundle_hits(b, splits, lookup, weights, levels) for b in bundles]
    base = [split_hits(Bundle.load(b), splits["test"].rows, None, (0.0,), levels)[0.0] for b in baselines]
    w = chosen({w: np.mean([h["valid"]["gated"][w] for h in per_seed], axis=0) for w in weights})
    return {"weights": list(weights), "levels": list(levels), "k": K, "beam": BEAM, "max_rows": max_rows,
            "bundles": [str(b) for b in bundles], "baselines": [str(b) for b in baselines],
            "per_seed": [one_bundle(splits, h, weights) for h in per_seed],
            "chosen_w_gated": w, "seeds": across_seeds(splits["test"], per_seed, base, w),
            "frontier": frontier(splits["test"], per_seed, base, weights)}


def paired_vs_plain(hits: dict[float, np.ndarray], ded: np.ndarray, weights: tuple[float, ...]) -> dict:
    """{w: {all, deductive, other: paired bootstrap of hits[w] - hits[0]}} for every w != 0."""
    parts = (("all", np.ones_like(ded)), ("deductive", ded), ("other", ~ded))
    return {str(w): {part: paired_bootstrap(hits[w][mask], hits[0.0][mask]) for part, mask in parts}
            for w in weights if w != 0.0}


def main(argv: list[str] | None = None) -> dict:
    """CLI: run (one bundle) or run_seeds (with --baseline), print the tables, write the JSON."""
    ap = argparse.ArgumentParser(prog="python -m bench.instruction_guidance", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--bundle", type=Path, nargs="+", required=True,
                    help="bundles trained with generated instructions (one per seed)")
    ap.add_argument("--baseline", type=Path, nargs="*", default=[],
                    help="paper-scheme bundles decoded with the default instruction, one per --bundle (seeds)")
    ap.add_argument("--instructions", type=Path, required=True, help="per-row records (apps.instructions generate --per-row)")
    ap.add_argument("--weights", default=",".join(map(str, WEIGHTS)))
    ap.add_argument("--levels", default="0,1,2", help="SID levels guided (0: the coarsest)")
    ap.add_argument("--max-rows", type=int, default=None,
                    help="a fixed random sample of each split's homepage rows (large worlds); default: all")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--save", action="store_true",
                    help="write each bundle's valid-chosen weight (and --levels) into its guidance.json")
    ap.add_argument("--gated", action="store_true",
                    help="with --save: the gated weight, marked gated (serving guides open-need requests only)")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    weights, levels = tuple(float(w) for w in a.weights.split(",")), tuple(int(x) for x in a.levels.split(","))
    if not levels or not set(levels) <= set(LEVELS):
        raise SystemExit(f"--levels must name SID levels among {','.join(map(str, LEVELS))} (got {a.levels})")
    if a.gated and not a.save:
        raise SystemExit("--gated chooses what --save writes; add --save")
    if a.baseline or len(a.bundle) > 1:
        out = run_seeds(a.data, a.bundle, a.baseline, a.instructions, weights, levels, a.max_rows)
        print_seeds(out["seeds"])
        print_frontier(out["frontier"])
    else:
        out = run(a.data, a.bundle[0], a.instructions, weights, levels, a.max_rows)
        print_one(out)
    if a.save:
        for bundle, report in zip(a.bundle, out.get("per_seed", [out])):
            save_weight(bundle, "homepage", report["chosen_w_gated" if a.gated else "chosen_w"], a.gated, levels)
    if a.out:
        write_report(a.out, out, indent=1)
    return out


def save_weight(bundle_dir: Path, scenario: str, w: float, gated: bool = False,
                levels: tuple[int, ...] = LEVELS) -> None:
    """Set `scenario`'s instruction-guidance weight (gated or not) and the levels guided in the
    bundle's guidance.json (w = 0: remove the scenario; no scenario left: remove the file)."""
    path = Path(bundle_dir) / "guidance.json"
    weights, gates, _ = read_guidance(path)
    weights = {k: v for k, v in {**weights, scenario: float(w)}.items() if v != 0.0}
    gates = (gates | {scenario} if gated else gates - {scenario}) & set(weights)
    if weights:
        path.write_text(json.dumps(guidance_json(weights, gates, levels)))
    elif path.exists():
        path.unlink()
    print(f"{bundle_dir}: guidance {weights or 'none'}, gated {sorted(gates)}, levels {list(levels)}")


def print_one(out: dict) -> None:
    """One bundle's HR tables and chosen weights."""
    for split in ("valid", "test"):
        for table in ("hr", "hr_gated"):
            for w, hr in out[split][table].items():
                print(f"{split} {table} w={w}: HR@{K} all {hr['all']:.4f} deductive {hr['deductive']:.4f} "
                      f"other {hr['other']:.4f}")
    print(f"chosen on valid: w={out['chosen_w']}, gated w={out['chosen_w_gated']}")


def print_seeds(seeds: dict) -> None:
    """The pooled test table: HR@K per arm and reason, the deductive ratio and the paired gaps."""
    print(f"{seeds['seeds']} seeds, gated w={seeds['w']} (chosen on valid)")
    for arm, table in seeds["hr"].items():
        cells = "  ".join(f"{part} {v['mean']:.4f}+-{v['sd']:.4f}" for part, v in table.items())
        print(f"{arm:9s} x{seeds['deductive_x_default'][arm]:.2f} deductive | {cells}")
    for pair, table in seeds["paired"].items():
        print(pair, "  ".join(f"{part} {v['diff']:+.4f} [{v['lo']:+.4f}, {v['hi']:+.4f}]" for part, v in table.items()))


def print_frontier(front: dict) -> None:
    """Each weight's test HR per reason and its paired gap to the default."""
    for w, t in front.items():
        cells = "  ".join(f"{part} {t['hr'][part]:.4f} ({v['diff']:+.4f} [{v['lo']:+.4f}, {v['hi']:+.4f}])"
                          for part, v in t["paired_vs_default"].items())
        print(f"w={w}: x{t['deductive_x_default']:.2f} deductive | {cells}")


if __name__ == "__main__":
    main()
