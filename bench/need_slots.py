"""Need slots, slow thinking's answer to the trade of sections G-G5 (issue 10): how many of a
homepage list's ten slots should the open needs a generated instruction states take?

Guidance and training with instructions move the whole list towards the stated needs, and on the
default world they give back interest hits at about the rate they win deductive hits
(docs/benchmarks.d/instructions.md, G-G5). A need slot (oxygen.decoding.need_slots) is narrower:
the model's best item inside each of the first m open needs' categories takes one slot, pushing out
the model's lowest-ranked items in categories the user never touched. This bench decodes the
homepage rows of valid and test through THE offline decode path (`BundleRecommender`, the bundle's
decoder with `needs` from each row's record, as serving reads them from Redis) for each m:

    python -m bench.need_slots --data runs/WD --instructions runs/WD_instr/hp_rows.jsonl \\
        --bundle runs/WD_sft/bundle runs/WD_sft_s1/bundle runs/WD_sft_s2/bundle --slots 0,1,2,3 \\
        --max-rows 3000 --out runs/bench/need_slots_WD.json

Per m: valid HR@10 of all rows (seeds pooled), and on test, per hidden reason (evaluation only),
HR@10 (mean and sd over seeds), the deductive ratio to m = 0 (the same bundles with no slots), and
paired bootstraps over rows of the seed-averaged hits against m = 0; and how often the first m
open categories hold the deductive row's true need (`test_need_in_first_m`). `--oracle` gives
the ceiling: every deductive test row's record states only its true need. By default the bundles decode
with their learnable default instruction (the paper scheme: the need slots are the only use of the
instruction); `--vectors` feeds the instruction vectors too (bundles trained with instructions; a
bundle's own guidance.json applies as served, gated by the records' open needs).
`chosen_on_valid` is the m with the best valid HR@10 of all rows, for reference: the slots trade
reasons, and how many to give is a product setting. `--save M` writes need_slots.json (homepage: M)
and categories.json into each bundle, which serving then applies.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch

from apps.cli import write_report
from oxygen.data.io import Dataset, load_dataset
from oxygen.eval.instructions import deductive, reason_masks, reason_of
from oxygen.eval.ranking import eval_split
from oxygen.eval.seeds import mean_std, paired_bootstrap
from oxygen.instructions.pipeline import read_instructions, row_gates, row_needs, row_vectors
from oxygen.model.bundle import Bundle, save_need_slots
from oxygen.recommenders.bundled import BundleRecommender
from oxygen.training.prepare import RowInstructions

K, SCENARIO = 10, "homepage"
SLOTS = (0, 1, 2, 3)


def split_rows(ds: Dataset, max_rows: int | None) -> dict[str, list]:
    """{'valid', 'test': the homepage rows (a fixed random sample of `max_rows` when given)}."""
    return {s: eval_split([r for r in ds.splits[s] if r.scenario == SCENARIO], max_rows) for s in ("valid", "test")}


def slot_hits(bundle_dir: Path, rows: dict[str, list], generated: RowInstructions, categories: dict[int, str],
              slots: tuple[int, ...]) -> dict[str, dict[int, np.ndarray]]:
    """{split: {m: Float[n] 1 where the target is in the top K}} of one bundle with m need slots."""
    bundle = Bundle.load(bundle_dir)
    bundle.categories = bundle.categories or categories
    bundle.need_slots = {SCENARIO: max(slots)} if max(slots) > 0 else {}
    rec = BundleRecommender(bundle, generated=generated, progress=False)
    out: dict[str, dict[int, np.ndarray]] = {}
    for split, part in rows.items():
        targets = np.array([r.target for r in part])
        out[split] = {}
        for m in slots:
            rec.decoder.need_slots = {SCENARIO: m} if m > 0 else {}
            top = rec.recommend(part, K)
            out[split][m] = (top == targets[:, None]).any(axis=1).astype(np.float64)
            print(f"{bundle_dir} {split} m={m}: HR@{K} {out[split][m].mean():.4f}", flush=True)
    return out


def report(rows: dict[str, list], per_seed: list[dict], slots: tuple[int, ...]) -> dict:
    """Valid HR of all rows per m (seeds pooled) and, on test, per m: HR per part (mean, sd over
    seeds), the deductive ratio to m = 0 and paired bootstraps of seed-averaged hits against m = 0."""
    masks = reason_masks(deductive(rows["test"]), np.array([reason_of(r) for r in rows["test"]]))
    base = np.mean([h["test"][0] for h in per_seed], axis=0)
    valid = {m: float(np.mean([h["valid"][m] for h in per_seed], axis=0).mean()) for m in slots}
    test = {}
    for m in slots:
        hits = np.mean([h["test"][m] for h in per_seed], axis=0)
        hr = {p: mean_std([float(h["test"][m][mask].mean()) for h in per_seed]) for p, mask in masks.items()}
        test[str(m)] = {"hr": {p: {"mean": mu, "sd": sd} for p, (mu, sd) in hr.items()},
                        "deductive_x_default": float(hits[masks["deductive"]].mean()
                                                     / max(base[masks["deductive"]].mean(), 1e-12)),
                        "paired_vs_default": {p: paired_bootstrap(hits[mask], base[mask]) for p, mask in masks.items()}}
    return {"valid_hr_all": {str(m): v for m, v in valid.items()},
            "chosen_on_valid": max(slots, key=lambda m: (valid[m], -m)),
            "rows": {p: int(mask.sum()) for p, mask in masks.items()}, "test": test}


def need_in_first(rows: list, generated: RowInstructions, slots: tuple[int, ...]) -> dict[str, float | None]:
    """{m: the share of the deductive `rows` whose true need (hidden truth, evaluation only) is
    among the first m open categories their record states}: how often a slot is spent on the
    visit's need. None when no row is deductive."""
    ded = [r for r, d in zip(rows, deductive(rows)) if d]
    return {str(m): float(np.mean([r.truth.need in generated.needs_of(r)[:m] for r in ded])) if ded else None
            for m in slots if m > 0}


def with_oracle(generated: RowInstructions, rows: list) -> RowInstructions:
    """`generated` with each deductive row of `rows` stating only its true need (hidden truth, read
    for the ceiling only): the slot is spent on the visit's need whenever the model can find it."""
    needs = {**generated.needs, **{(r.user_id, r.timestamp): (r.truth.need,)
                                   for r, d in zip(rows, deductive(rows)) if d}}
    return dataclasses.replace(generated, needs=needs)


def run(data: Path, bundles: list[Path], instructions: Path, slots: tuple[int, ...] = SLOTS,
        max_rows: int | None = None, vectors: bool = False, oracle: bool = False) -> dict:
    """The bench (module docstring) -> its report."""
    records = read_instructions(instructions)
    if records and all(r.get("open_categories") is None for r in records):
        raise SystemExit(f"{instructions}: no record names its open need categories (written before the generator "
                         "listed them); write it again with python -m apps.instructions generate --per-row")
    generated = RowInstructions(row_vectors(records) if vectors else {}, frozenset([SCENARIO]),
                                gates=row_gates(records), needs=row_needs(records))
    ds = load_dataset(data, splits=("valid", "test"))
    rows, categories = split_rows(ds, max_rows), ds.leaf_categories()
    if oracle:
        generated = with_oracle(generated, rows["test"])
    per_seed = [slot_hits(b, rows, generated, categories, slots) for b in bundles]
    return {"slots": list(slots), "k": K, "max_rows": max_rows, "vectors": vectors, "oracle": oracle,
            "bundles": [str(b) for b in bundles], **report(rows, per_seed, slots),
            "test_need_in_first_m": need_in_first(rows["test"], generated, slots)}


def save_slots(bundle_dir: Path, m: int, categories: dict[int, str]) -> None:
    """Write need_slots.json (homepage: m; none for 0) and categories.json into a bundle folder."""
    save_need_slots(Path(bundle_dir), {SCENARIO: m}, categories if m > 0 else {})
    print(f"{bundle_dir}: need slots {({SCENARIO: m} if m > 0 else 'none')}")


def print_report(out: dict) -> None:
    """Valid HR per m, then each m's test HR per part with its paired gap to m = 0."""
    print("valid HR@10 (all rows, seeds pooled):", out["valid_hr_all"], "-> best", out["chosen_on_valid"])
    print("test deductive rows whose true need is among the first m open categories:", out["test_need_in_first_m"])
    for m, t in out["test"].items():
        cells = "  ".join(f"{p} {t['hr'][p]['mean']:.4f} ({v['diff']:+.4f} [{v['lo']:+.4f}, {v['hi']:+.4f}])"
                          for p, v in t["paired_vs_default"].items())
        print(f"m={m}: x{t['deductive_x_default']:.2f} deductive | {cells}")


def main(argv: list[str] | None = None) -> dict:
    """CLI: run the bench, print it, write the JSON (and --save)."""
    ap = argparse.ArgumentParser(prog="python -m bench.need_slots", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--bundle", type=Path, nargs="+", required=True, help="bundles, one per seed")
    ap.add_argument("--instructions", type=Path, required=True, help="per-row records (apps.instructions generate --per-row)")
    ap.add_argument("--slots", default=",".join(map(str, SLOTS)), help="need slots to measure (0 is always added)")
    ap.add_argument("--max-rows", type=int, default=None, help="a fixed random sample of each split's homepage rows")
    ap.add_argument("--vectors", action="store_true", help="feed the instruction vectors too (bundles trained with them)")
    ap.add_argument("--oracle", action="store_true",
                    help="the ceiling: each deductive test row states only its true need (hidden truth)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--save", type=int, default=None, metavar="M", help="write need_slots.json (homepage: M) into each bundle")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    try:
        slots = tuple(sorted({0, *(int(x) for x in a.slots.split(","))}))
    except ValueError:
        raise SystemExit(f"--slots must be comma-separated integers, e.g. 0,1,2 (got {a.slots!r})") from None
    if min(slots) < 0 or max(slots) > K:
        raise SystemExit(f"--slots must lie in 0..{K} (got {a.slots})")
    out = run(a.data, a.bundle, a.instructions, slots, a.max_rows, a.vectors, a.oracle)
    print_report(out)
    if a.save is not None:
        categories = load_dataset(a.data, splits=()).leaf_categories()
        for b in a.bundle:
            save_slots(b, a.save, categories)
    if a.out:
        write_report(a.out, out, indent=1)
    return out


if __name__ == "__main__":
    main()
