"""Quality runs repeated over seeds, and a summary that says which gaps are real.

`run` trains one model per seed (the `quality` protocol of apps.bench: fit on train, select on
valid, optionally refit on train + valid, test once) and writes one JSON per seed with the per-row
test ranks. When the run selected a transition-channel re-rank, the mixture is written
under `<label>+rerank` and the model alone (same weights, re-rank off) under `<label>`. Finished seeds are skipped, so several
`run` commands (one per core) can share a folder and be resumed.

`post-train` files an `apps.post_train` run's metrics.json the same way: its post-trained model
under `--label`, and with `--before LABEL` the bundle it started from, so `summary` compares
post-training objectives over seeds against the SFT model, row by row.

`bundle` files a bundle trained elsewhere (apps.train with its seed) the same way: test ranks and
valid metrics, with per-row generated instructions (`--instructions`) on the scenarios the bundle
reads them on.

`summary` reads a folder: per label, test HR@10 / NDCG@10 mean ± std over seeds, and the paired
bootstrap (rows resampled, seed-averaged per-row hits) of the HR@10 gap to each reference label.

    python -m bench.seeds run --data data/amazon18-office --model oxygen \\
        --config configs/office/oxygen.yaml --refit --seeds 0 1 2 --dir runs/bench/seeds_office
    python -m bench.seeds summary --dir runs/bench/seeds_office --reference markov tiger sasrec --out runs/bench/seeds_office.json \\
        --plot docs/img/seeds_office.png --published TIGER=0.1408 MiniOneRec=0.1634
    python -m bench.seeds post-train --metrics runs/post/sa_s0/metrics.json --label sa_gcpo --seed 0 \\
        --before sft --dir runs/bench/seeds_post
    python -m bench.seeds bundle --bundle runs/demo/train/bundle --data runs/demo/world --label generated --seed 0 \\
        --instructions runs/demo/instructions/rows.jsonl --dir runs/bench/seeds_instr
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from apps import cli
from apps.cli import write_report
from oxygen.data.io import load_dataset
from oxygen.eval.ranking import evaluate_rows, quality_run
from oxygen.eval.seeds import mean_std, paired_bootstrap, rank_scores, reseed
from oxygen.recommenders.registry import MODELS, build


def _record(label: str, seed: int, result: dict, report: dict, pure: bool = False) -> dict:
    """One seed's JSON: test metrics and per-row ranks, the valid metrics of the same model (for a
    pure run: valid HR@10 at re-rank weight 0 from the selection table, when it was tried)."""
    info = {k: v for k, v in result["fit_info"].items() if k != "history"}
    valid = (result.get("valid") or {}).get("overall")
    if pure:
        table = info.get("rerank", {}).get("valid_hr@10", {})
        valid = {"hr@10": table[0.0]} if 0.0 in table else None
    return {"label": label, "seed": seed, "model": result["model"], "refit": result["refit"],
            "test": report["overall"], "ranks": report["ranks"], "rows": report["rows"],
            "valid": valid, "train_seconds": result["train_seconds"], "fit_info": info}


def run(args: argparse.Namespace) -> None:
    """Fit/select/test `--model` once per seed; one JSON per seed (and per pure variant) in --dir."""
    ds = load_dataset(args.data)
    label = args.label or args.model
    args.dir.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        path = args.dir / f"{label}_seed{seed}.json"
        if path.exists():
            print(f"{path} exists; skipped")
            continue
        rec = build(args.model, args.config, sets=args.set)
        if getattr(rec, "cfg", None) is not None:
            rec.cfg = reseed(rec.cfg, seed)
        result = quality_run(rec, ds, k=10, refit=args.refit, keep_ranks=True)
        records = [_record(label, seed, result, result["test"])]
        if getattr(rec, "rerank_weight", 0.0) > 0:  # `label` is the model alone, `label+rerank` the mixture
            weight, rec.rerank_weight = rec.rerank_weight, 0.0
            records = [_record(f"{label}+rerank", seed, result, result["test"]),
                       _record(label, seed, result, evaluate_rows(rec, ds.splits["test"], 10, True), True)]
            rec.rerank_weight = weight
        for rcd in records:
            out = args.dir / f"{rcd['label']}_seed{seed}.json"
            out.write_text(json.dumps(rcd))
            print(f"{rcd['label']} seed {seed}: test hr@10 {rcd['test']['hr@10']:.4f} "
                  f"ndcg@10 {rcd['test']['ndcg@10']:.4f} -> {out}")


def post_train_records(metrics: dict, label: str, seed: int, before: str | None) -> list[dict]:
    """Records of one apps.post_train metrics.json: the post-trained model as `label` and, with
    `before`, the model it started from; test metrics and per-row ranks, valid metrics."""
    out = [(label, metrics["after"])] + ([(before, metrics["before"])] if before else [])
    for name, m in out:
        if "ranks" not in m["test"]:
            raise ValueError(f"{name}: the metrics have no per-row ranks; rerun apps.post_train (it keeps them now)")
    return [{"label": name, "seed": seed, "model": name, "refit": False, "test": m["test"]["overall"],
             "ranks": m["test"]["ranks"], "rows": m["test"]["rows"], "valid": m["valid"]["overall"],
             "train_seconds": metrics.get("seconds"), "fit_info": {"config": metrics.get("config")}}
            for name, m in out]


def file_post_train(args: argparse.Namespace) -> None:
    """Write the records of `--metrics` into `--dir` (`post_train_records`)."""
    args.dir.mkdir(parents=True, exist_ok=True)
    for rcd in post_train_records(json.loads(args.metrics.read_text()), args.label, args.seed, args.before):
        out = args.dir / f"{rcd['label']}_seed{args.seed}.json"
        out.write_text(json.dumps(rcd))
        print(f"{rcd['label']} seed {args.seed}: test hr@10 {rcd['test']['hr@10']:.4f} -> {out}")


def bundle_record(bundle_dir: Path, ds, label: str, seed: int, instructions: Path | None, valid: bool = True) -> dict:
    """A seed's record of a trained bundle: valid (unless `valid` is False: None) and test metrics,
    the test rows' ranks; with `instructions` (per-row records) each row of a scenario the bundle
    reads instructions on gets its own (and its gate, for a bundle with gated guidance)."""
    from oxygen.instructions.pipeline import read_instructions, row_instructions
    from oxygen.model.bundle import Bundle
    from oxygen.recommenders.bundled import BundleRecommender

    bundle = Bundle.load(bundle_dir)
    generated = None
    if instructions is not None:
        generated = row_instructions(read_instructions(instructions), bundle.instruction_scenarios)
    rec = BundleRecommender(bundle, generated=generated)
    test = evaluate_rows(rec, ds.splits["test"], 10, keep_ranks=True)
    valid_overall = evaluate_rows(rec, ds.splits["valid"], 10)["overall"] if valid else None
    return {"label": label, "seed": seed, "model": "bundle", "refit": False, "test": test["overall"],
            "ranks": test["ranks"], "rows": test["rows"], "valid": valid_overall, "train_seconds": None,
            "fit_info": {"bundle": str(bundle_dir), "instructions": str(instructions) if instructions else None}}


def file_bundle(args: argparse.Namespace) -> None:
    """Write `bundle_record` of `--bundle` into `--dir` as `--label`, seed `--seed`."""
    args.dir.mkdir(parents=True, exist_ok=True)
    rcd = bundle_record(args.bundle, load_dataset(args.data), args.label, args.seed, args.instructions)
    out = args.dir / f"{args.label}_seed{args.seed}.json"
    out.write_text(json.dumps(rcd))
    print(f"{args.label} seed {args.seed}: valid hr@10 {rcd['valid']['hr@10']:.4f} test hr@10 "
          f"{rcd['test']['hr@10']:.4f} -> {out}")


def load_records(folder: Path) -> dict[str, list[dict]]:
    """{label: [record per seed, by seed]} of every run JSON in `folder`."""
    by: dict[str, list[dict]] = defaultdict(list)
    for path in sorted(folder.glob("*_seed*.json")):
        rcd = json.loads(path.read_text())
        by[rcd["label"]].append(rcd)
    if not by:
        raise FileNotFoundError(f"{folder}: no *_seed*.json runs; run `python -m bench.seeds run` first")
    return {k: sorted(v, key=lambda r: r["seed"]) for k, v in sorted(by.items())}


def seed_mean_hits(records: list[dict], k: int = 10) -> np.ndarray:
    """Float[n]: each test row's HR@k averaged over the seeds of one label."""
    return np.mean([rank_scores(r["ranks"], k)["hr"] for r in records], axis=0)


def summarise(by: dict[str, list[dict]], references: list[str]) -> dict[str, dict]:
    """Per label: seeds, mean/std of test HR@10, NDCG@10, HR@5 and the paired HR@10 gap to each
    reference label (entry['vs'][reference])."""
    missing = [r for r in references if r not in by]
    if missing:
        raise ValueError(f"reference label(s) {missing} have no runs; labels: {sorted(by)}")
    rows = {r["rows"] for recs in by.values() for r in recs}
    if len(rows) != 1:
        raise ValueError(f"the runs disagree on the number of test rows {sorted(rows)}; one folder per dataset")
    refs = {name: seed_mean_hits(by[name]) for name in references}
    out: dict[str, dict] = {}
    for label, recs in by.items():
        entry = {"seeds": [r["seed"] for r in recs], "per_seed_hr@10": [r["test"]["hr@10"] for r in recs]}
        for metric in ("hr@10", "ndcg@10", "hr@5"):
            entry[metric] = dict(zip(("mean", "std"), mean_std([r["test"][metric] for r in recs])))
        hits = seed_mean_hits(recs)
        entry["vs"] = {name: paired_bootstrap(hits, ref) for name, ref in refs.items() if name != label}
        out[label] = entry
    return out


def to_markdown(summary: dict[str, dict], references: list[str]) -> str:
    """One line per label: seeds, HR@10 / NDCG@10 mean ± std, HR@5, the gap to each reference."""
    head = ["model", "seeds", "HR@10 mean ± std", "NDCG@10 mean ± std", "HR@5 mean"]
    head += [f"HR@10 - {r} [95% CI], P(gap <= 0)" for r in references]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for label, e in summary.items():
        cells = [label, str(len(e["seeds"])), f"{e['hr@10']['mean']:.4f} ± {e['hr@10']['std']:.4f}",
                 f"{e['ndcg@10']['mean']:.4f} ± {e['ndcg@10']['std']:.4f}", f"{e['hr@5']['mean']:.4f}"]
        for r in references:
            g = e["vs"].get(r)
            cells.append(f"{g['diff']:+.4f} [{g['lo']:+.4f}, {g['hi']:+.4f}], {g['p_le_0']:.3f}" if g else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_scenario(by: dict[str, list[dict]], scenarios: list[str | None], k: int = 10) -> dict[str, dict]:
    """{label: {scenario: [mean, std] of HR@k over seeds}} from the per-row ranks and each test
    row's scenario (rows without one only count in 'overall')."""
    names = sorted({s for s in scenarios if s}) + ["overall"]
    groups = np.array(["" if s is None else s for s in scenarios], dtype=object)
    out: dict[str, dict] = {}
    for label, recs in by.items():
        if len(recs[0]["ranks"]) != len(scenarios):
            raise ValueError(f"label '{label}': {len(recs[0]['ranks'])} ranks for {len(scenarios)} test rows; "
                             "give --data the dataset these runs were tested on")
        hits = [rank_scores(r["ranks"], k)["hr"] for r in recs]
        out[label] = {g: list(mean_std([h[groups == g].mean() if g != "overall" else h.mean() for h in hits]))
                      for g in names}
    return out


def scenario_markdown(table: dict[str, dict], k: int = 10) -> str:
    """Labels x scenarios, HR@k mean ± std over seeds."""
    cols = list(next(iter(table.values())))
    lines = [f"| model (HR@{k}) | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for label, by in table.items():
        lines.append(f"| {label} | " + " | ".join(f"{by[c][0]:.4f} ± {by[c][1]:.4f}" for c in cols) + " |")
    return "\n".join(lines)


def plot(summary: dict[str, dict], png: Path, published: dict[str, float], title: str) -> Path:
    """Bar chart of test HR@10 mean ± std per label (each seed a dot), published figures as lines."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = sorted(summary, key=lambda lb: summary[lb]["hr@10"]["mean"])
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(labels) + 1.6))
    means = [summary[lb]["hr@10"]["mean"] for lb in labels]
    ax.barh(labels, means, xerr=[summary[lb]["hr@10"]["std"] for lb in labels], color="#7aa6c2", capsize=3)
    for y, lb in enumerate(labels):
        ax.plot(summary[lb]["per_seed_hr@10"], [y] * len(summary[lb]["per_seed_hr@10"]), "k.", ms=4)
    for name, value in published.items():
        ax.axvline(value, ls="--", lw=1, color="#c0504d")
        ax.text(value, len(labels) - 0.4, f" {name} {value:.4f}", fontsize=7, color="#c0504d", rotation=90, va="top")
    ax.set(xlabel="test HR@10 (mean ± std over seeds; dots: seeds)", title=title)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


def summary(args: argparse.Namespace) -> dict:
    """Print the markdown tables of a folder of runs; write the summary JSON (--out: {label: entry},
    plus 'by_scenario' in each entry with --data) and the plot (--plot)."""
    by = load_records(args.dir)
    result = summarise(by, args.reference)
    print(to_markdown(result, args.reference))
    if args.data:
        scen = per_scenario(by, [r.scenario for r in load_dataset(args.data).splits["test"]])
        print("\n" + scenario_markdown(scen))
        for label, table in scen.items():
            result[label]["by_scenario"] = table
    if args.out:
        write_report(args.out, result)
    if args.plot:
        published = dict(_published(x) for x in args.published)
        print(f"wrote {plot(result, args.plot, published, args.title or str(args.dir))}")
    return result


def _published(text: str) -> tuple[str, float]:
    name, sep, value = text.rpartition("=")
    try:
        return name, float(value)
    except ValueError:
        raise ValueError(f"--published {text!r}: write NAME=VALUE, e.g. TIGER=0.1408") from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """`run --data DIR --model NAME [--config F] [--set K=V] [--refit] --seeds S.. --dir D`,
    `post-train --metrics F --label L --seed N [--before L] --dir D`, `bundle --bundle B --data DIR
    --label L --seed N [--instructions F] --dir D` or `summary --dir D`."""
    p = argparse.ArgumentParser(prog="python -m bench.seeds", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train and test one model per seed")
    r.add_argument("--data", required=True, type=Path)
    r.add_argument("--model", required=True, choices=MODELS)
    cli.add_common(r, config="YAML config of the model (defaults if omitted)")
    r.add_argument("--label", default=None, help="name of the runs (default: the model name)")
    r.add_argument("--refit", action="store_true", help="retrain on train+valid after selection")
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    r.add_argument("--dir", required=True, type=Path, help="folder of the per-seed JSON files")
    t = sub.add_parser("post-train", help="file an apps.post_train metrics.json as a seed's run")
    t.add_argument("--metrics", required=True, type=Path, help="OUT/metrics.json of apps.post_train")
    t.add_argument("--label", required=True, help="name of the post-trained runs, e.g. sa_gcpo")
    t.add_argument("--seed", required=True, type=int)
    t.add_argument("--before", default=None, help="also file the starting bundle under this label, e.g. sft")
    t.add_argument("--dir", required=True, type=Path)
    b = sub.add_parser("bundle", help="file a trained bundle (apps.train) as a seed's run")
    b.add_argument("--bundle", required=True, type=Path)
    b.add_argument("--data", required=True, type=Path)
    b.add_argument("--label", required=True)
    b.add_argument("--seed", required=True, type=int)
    b.add_argument("--instructions", type=Path, default=None, help="per-row instruction records (apps.instructions --per-row)")
    b.add_argument("--dir", required=True, type=Path)
    s = sub.add_parser("summary", help="mean ± std over seeds and paired gaps to a reference")
    s.add_argument("--dir", required=True, type=Path)
    s.add_argument("--reference", nargs="*", default=[], help="labels to compare every other label with")
    s.add_argument("--out", type=Path, default=None)
    s.add_argument("--plot", type=Path, default=None, help="PNG bar chart of HR@10 over seeds")
    s.add_argument("--data", type=Path, default=None, help="the runs' dataset: adds HR@10 per scenario")
    s.add_argument("--published", nargs="*", default=[], help="NAME=VALUE lines on the plot")
    s.add_argument("--title", default=None)
    cli.add_common(s)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Entry point (`run`, `post-train`, `bundle` or `summary`)."""
    args = parse_args(argv)
    {"run": run, "post-train": file_post_train, "bundle": file_bundle, "summary": summary}[args.cmd](args)


if __name__ == "__main__":
    cli.run(main)
