"""Post-training sweeps, for issue 13's Figure 7 (HR@10 against the synthetic-data ratio) and
Table 11 (the SA-GCPO temperatures) in kind: `apps.post_train` over one setting's values x
objectives x seeds, then HR@10 per point with the spread over seeds, the paired gap to the SFT
bundle, and a plot.

    python -m bench.post_train_sweep --bundle runs/WD_sft/bundle --data runs/WD \\
        --ranker runs/ranker_ms/seeds/seed0/ranker.pt --key synthetic_ratio --values 0 0.33 0.5 0.67 \\
        --algos grpo sa_gcpo --seeds 0 1 2 --dir runs/post/fig7 --out runs/bench/post_fig7.json \\
        --plot docs/img/post_synthetic_ratio.png --set threads=1 --set eval_rows=3000 --set iterations=100 --set lr=3e-5
    python -m bench.post_train_sweep ... --key objective.tau_neg --values 1.05 1.0 0.95 --algos sa_gcpo ...

Each run is `python -m apps.post_train ... --algo A --set KEY=VALUE --set seed=S` writing
DIR/<algo>_<key>=<value>_seed<S>/, seed by seed (every point's seed 0 first); a run whose
metrics.json exists is read, not rerun, so a sweep resumes and two sweeps can share runs, and
`--no-run` summarises what has finished. HR is what apps.post_train measures (with `eval_rows`, the
same fixed rows in every run); the paired gap resamples those test rows with each row's hit averaged
over the seeds, against the SFT bundle's hits on the same rows. With `--all-rows`, test HR and the
gaps are measured on every test row instead: each run's bundle (and the SFT bundle) is filed as a
`bench.seeds` bundle record, cached beside it (RUN/test_all.json, DIR/sft_test_all.json).
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

from apps import post_train as post_train_app
from apps.cli import write_report
from bench.seeds import bundle_record, post_train_records
from bench.seeds import summarise as seeds_summarise
from oxygen.data.io import load_dataset
from oxygen.eval.seeds import mean_std


def run_dir(folder: Path, algo: str, key: str, value: str, seed: int) -> Path:
    """Where one run of the sweep writes (and is found again)."""
    return folder / f"{algo}_{key}={value}_seed{seed}"


def run_point(a: argparse.Namespace, algo: str, value: str, seed: int) -> dict:
    """One run's metrics.json: read when it exists, else apps.post_train runs it."""
    out = run_dir(a.dir, algo, a.key, value, seed)
    if (out / "metrics.json").exists():
        return json.loads((out / "metrics.json").read_text())
    argv = ["--bundle", str(a.bundle), "--data", str(a.data), "--out", str(out), "--algo", algo,
            *(["--ranker", str(a.ranker)] if a.ranker else []), *(["--config", str(a.config)] if a.config else []),
            *[x for s in a.set for x in ("--set", s)], "--set", f"{a.key}={value}", "--set", f"seed={seed}"]
    print(f"post-train {algo} {a.key}={value} seed {seed} -> {out}", flush=True)
    (out / "test_all.json").unlink(missing_ok=True)  # an --all-rows record of an earlier bundle there is stale
    return post_train_app.main(argv)


_dataset = functools.cache(load_dataset)  # one load per sweep, however many bundles it measures


def all_rows_record(bundle: Path, cache: Path, label: str, seed: int, data: Path) -> dict:
    """`bench.seeds.bundle_record` of `bundle` on every test row (no valid pass), read from `cache`
    when it is there, else measured and written to it."""
    if cache.exists():
        rcd = json.loads(cache.read_text())
    else:
        print(f"test HR of {bundle} on every test row -> {cache}", flush=True)
        rcd = bundle_record(bundle, _dataset(data), label, seed, None, valid=False)
        cache.write_text(json.dumps(rcd))
    return {**rcd, "label": label, "seed": seed}


def eval_rows_records(runs: dict[tuple[str, str], list[dict]]) -> dict[str, list[dict]]:
    """bench.seeds records of the runs' own test measurement (their eval_rows), one label per point
    ('ALGO@VALUE') and the SFT bundle as 'sft'; every run must have been measured on the same rows."""
    first = next(iter(runs.values()))[0]
    n_rows = len(first["before"]["test"]["ranks"])
    by: dict[str, list[dict]] = {}
    for (algo, value), ms in runs.items():
        if any(len(m["before"]["test"]["ranks"]) != n_rows for m in ms):
            raise ValueError(f"{algo} {value}: runs measured on different rows; use one eval_rows for the sweep")
        by[f"{algo}@{value}"] = [post_train_records(m, f"{algo}@{value}", s, None)[0] for s, m in enumerate(ms)]
    by["sft"] = post_train_records(first, "unused", 0, "sft")[1:]
    return by


def summarise(runs: dict[tuple[str, str], list[dict]], all_rows: dict[str, list[dict]] | None = None) -> dict:
    """{'sft': HR@10 valid/test, 'points': [{algo, value, seeds, valid/test HR@10 mean and sd,
    'vs_sft': paired gap on test}]}: the test side compared as bench.seeds records, those of the
    runs' eval_rows (`eval_rows_records`) or `all_rows` ({'ALGO@VALUE': [record per seed], 'sft':
    [record]}, `all_rows_record`); valid HR always from the runs' own measurement."""
    first = next(iter(runs.values()))[0]
    by = all_rows if all_rows is not None else eval_rows_records(runs)
    table = seeds_summarise(by, ["sft"])
    points = []
    for (algo, value), ms in runs.items():
        entry = table[f"{algo}@{value}"]
        valid = mean_std([m["after"]["valid"]["overall"]["hr@10"] for m in ms])
        points.append({"algo": algo, "value": value, "seeds": len(ms),
                       "valid": {"hr@10": valid[0], "sd": valid[1]},
                       "test": {"hr@10": entry["hr@10"]["mean"], "sd": entry["hr@10"]["std"]},
                       "vs_sft": entry["vs"]["sft"]})
    sft = {"valid": float(first["before"]["valid"]["overall"]["hr@10"]), "test": table["sft"]["hr@10"]["mean"],
           "test_rows": by["sft"][0]["rows"]}
    return {"sft": sft, "points": points}


def plot(summary: dict, key: str, png: Path) -> Path:
    """Test HR@10 (mean, sd over seeds as bars) against the swept value per objective, SFT dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for algo in dict.fromkeys(p["algo"] for p in summary["points"]):
        pts = [p for p in summary["points"] if p["algo"] == algo]
        x = [float(p["value"]) for p in pts]
        ax.errorbar(x, [p["test"]["hr@10"] for p in pts], yerr=[p["test"]["sd"] for p in pts], marker="o",
                    capsize=3, label=algo)
    ax.axhline(summary["sft"]["test"], color="grey", linestyle="--", label="SFT")
    ax.set_xlabel(key)
    ax.set_ylabel("test HR@10")
    ax.legend()
    ax.grid(alpha=0.3)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return png


def main(argv: list[str] | None = None) -> dict:
    """CLI: run (or read) every point, print the table, write the JSON and the plot."""
    ap = argparse.ArgumentParser(prog="python -m bench.post_train_sweep", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", required=True, type=Path)
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--ranker", type=Path, default=None)
    ap.add_argument("--config", type=Path, default=None, help="YAML PostTrainConfig every run starts from")
    ap.add_argument("--key", required=True, help="the PostTrainConfig field swept, e.g. synthetic_ratio")
    ap.add_argument("--values", nargs="+", required=True)
    ap.add_argument("--algos", nargs="+", choices=("sa_gcpo", "gspo", "grpo"), default=["sa_gcpo"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="for every run")
    ap.add_argument("--dir", required=True, type=Path, help="folder of the runs")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--plot", type=Path, default=None)
    ap.add_argument("--no-run", action="store_true", help="summarise the finished runs only (each point's seeds so far)")
    ap.add_argument("--all-rows", action="store_true",
                    help="test HR on every test row (each bundle measured once, cached) instead of the runs' eval_rows")
    a = ap.parse_args(argv)
    got = {}
    for seed in a.seeds:  # seed-major: a sweep stopped early has every point's first seeds
        for algo in a.algos:
            for v in a.values:
                done = (run_dir(a.dir, algo, a.key, v, seed) / "metrics.json").exists()
                if done or not a.no_run:
                    got[algo, v, seed] = run_point(a, algo, v, seed)
    seeds = {(algo, v): ss for algo in a.algos for v in a.values if (ss := [s for s in a.seeds if (algo, v, s) in got])}
    if not seeds:
        raise FileNotFoundError(f"{a.dir}: no finished runs to summarise; run the sweep without --no-run")
    runs = {point: [got[(*point, s)] for s in ss] for point, ss in seeds.items()}
    all_rows = None
    if a.all_rows:
        dirs = {(algo, v, s): run_dir(a.dir, algo, a.key, v, s) for (algo, v), ss in seeds.items() for s in ss}
        all_rows = {f"{algo}@{v}": [all_rows_record(dirs[algo, v, s] / "bundle", dirs[algo, v, s] / "test_all.json",
                                                    f"{algo}@{v}", s, a.data) for s in ss]
                    for (algo, v), ss in seeds.items()}
        all_rows["sft"] = [all_rows_record(a.bundle, a.dir / "sft_test_all.json", "sft", 0, a.data)]
    out = {"key": a.key, "seeds": a.seeds, "all_rows": a.all_rows, **summarise(runs, all_rows)}
    print(f"SFT: valid HR@10 {out['sft']['valid']:.4f} test {out['sft']['test']:.4f} ({out['sft']['test_rows']} test rows)")
    for p in out["points"]:
        g = p["vs_sft"]
        print(f"{p['algo']:8s} {a.key}={p['value']}: valid {p['valid']['hr@10']:.4f} test {p['test']['hr@10']:.4f} "
              f"± {p['test']['sd']:.4f}  vs SFT {g['diff']:+.4f} [{g['lo']:+.4f}, {g['hi']:+.4f}]")
    if a.out:
        write_report(a.out, out, indent=1)
    if a.plot:
        print(f"wrote {plot(out, a.key, a.plot)}")
    return out


if __name__ == "__main__":
    main()
