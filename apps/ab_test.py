"""The simulated online A/B test: every arm answers the same sampled test requests of a shop world,
the world's feedback model is the user (common random numbers across arms), and each arm's UCTR,
UCVR, orders and GMV per scenario are compared with the control's (paired bootstrap over users).

    python -m apps.ab_test --data runs/W --arms pop,markov,sasrec,oracle --out runs/ab/ab.json
        [--control sasrec] [--config ab.yaml] [--set k=10 --set requests=3000 --set 'scenarios=[cart]']
        [--set split=valid]     # the valid period's requests: to choose between arms (test only reports)

Arms (comma-separated; each may be named `name=spec`, e.g. `a=pop,b=pop` or `sft=bundle:runs/x/bundle`):
  pop | markov | sasrec | oxygen | tiger   a registry model fitted on train (valid rows select), with
                                           `MODEL:YAML` for its config (e.g. sasrec:configs/office/sasrec.yaml)
  bundle:PATH                              a trained bundle folder (apps.train), each request in its scenario's pool
  oracle[:gmv|purchase|click]              a ceiling: the catalogue ranked by the simulated user's true
                                           expected value (GMV by default); it reads the world, no other arm does
Writes FILE.json (config, arms with parameters and seconds, request and user counts per scope, per
arm and scope the metrics with 95% intervals, expected values and lifts over the control) and
FILE.png beside it (lifts per scope, one panel per metric); prints the table. Each arm's lists are
kept in FILE.arms/NAME.json and reused by a later run with the same data, arm and request sample
(`--fresh` redoes them), so a slow arm can run apart and one run with every arm then merges them.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from apps.cli import add_common, run
from apps.kept import fingerprint, keep, load_kept
from oxygen.config import ABTestConfig, load_config
from oxygen.data.io import Dataset, load_dataset
from oxygen.eval.ab import ORACLE_BY, Requests, ab_report, oracle_lists, sample_requests, scopes, show
from oxygen.eval.ab_plot import markdown_table, save_lift_plot
from oxygen.eval.ranking import recommend_checked
from oxygen.recommenders.bundled import BundleRecommender
from oxygen.recommenders.registry import MODELS, build
from oxygen.world.world import World

NEEDS_WORLD = "this A/B test needs a shop-world folder written by python -m apps.world"
NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


@dataclass(frozen=True)
class Arm:
    """One arm: its name, kind (a registry model, `bundle` or `oracle`) and argument (the model's
    YAML config, the bundle folder or the oracle's objective; None when absent)."""

    name: str
    kind: str
    arg: str | None
    spec: str


def parse_arm(text: str) -> Arm:
    """`[name=]kind[:arg]` -> Arm; a clear error for an unknown kind, a missing path or a bad name."""
    name, _, spec = text.partition("=") if "=" in text.split(":", 1)[0] else ("", "", text)
    kind, _, arg = spec.partition(":")
    kinds = f"{', '.join(MODELS)}, bundle:PATH or oracle[:{'|'.join(ORACLE_BY)}]"
    if kind not in (*MODELS, "bundle", "oracle"):
        raise ValueError(f"unknown arm {text!r}; use one of {kinds} (optionally named: name=spec)")
    if kind == "bundle" and not arg:
        raise ValueError(f"arm {text!r}: a bundle arm needs its folder, e.g. bundle:runs/demo/train/bundle")
    if kind == "oracle" and arg and arg not in ORACLE_BY:
        raise ValueError(f"arm {text!r}: the oracle ranks by one of {ORACLE_BY}")
    if arg and kind != "oracle" and not Path(arg).exists():
        raise FileNotFoundError(f"arm {text!r}: {arg} not found")
    name = name or kind
    if not NAME.match(name):
        raise ValueError(f"arm name {name!r}: use letters, digits, '_', '-' or '.'")
    return Arm(name, kind, arg or None, text)


def parse_arms(text: str) -> list[Arm]:
    """The comma-separated arm specs of --arms; distinct names required."""
    arms = [parse_arm(t.strip()) for t in text.split(",") if t.strip()]
    if not arms:
        raise ValueError("--arms is empty; give e.g. --arms pop,markov,sasrec")
    names = [a.name for a in arms]
    if dup := sorted({n for n in names if names.count(n) > 1}):
        raise ValueError(f"arm names {dup} repeat; name them apart, e.g. a={dup[0]},b={dup[0]}")
    return arms


def arm_lists(arm: Arm, ds: Dataset, world: World, reqs: Requests, k: int) -> tuple[np.ndarray, dict]:
    """Int64[n, k] lists of one arm for the requests, and what to report about it (parameters,
    seconds to fit and to recommend)."""
    t0 = time.perf_counter()
    if arm.kind == "oracle":
        lists = oracle_lists(world.feedback, reqs, k, arm.arg or ORACLE_BY[0])
        return lists, {"params": 0, "seconds": {"fit": 0.0, "recommend": round(time.perf_counter() - t0, 2)}}
    if arm.kind == "bundle":
        rec = BundleRecommender(arm.arg)
    else:
        rec = build(arm.kind, arm.arg).fit(ds.splits["train"], ds.splits.get("valid", []), ds.items)
    t1 = time.perf_counter()
    lists = recommend_checked(rec, reqs.rows, k)
    seconds = {"fit": round(t1 - t0, 2), "recommend": round(time.perf_counter() - t1, 2)}
    return lists, {"params": int(rec.num_params()), "seconds": seconds}


def arm_key(arm: Arm, data: Path, cfg: ABTestConfig) -> dict:
    """What kept lists of `arm` must match to be reused: the world (folder and world.json), the
    arm (kind, argument and its files) and the request sample (config bar control and bootstrap)."""
    arg = Path(arm.arg) if arm.arg and arm.kind != "oracle" else None
    return {"data": str(data.resolve()), "world": fingerprint(data / "world.json"), "kind": arm.kind,
            "arg": str(arg.resolve()) if arg else arm.arg, "arg_files": fingerprint(arg) if arg else None,
            "config": cfg.model_dump(exclude={"control", "bootstrap"})}


def kept_arm_lists(arm: Arm, data: Path, ds: Dataset, world: World, reqs: Requests, cfg: ABTestConfig, path: Path,
                   fresh: bool) -> tuple[np.ndarray, dict]:
    """`arm_lists`, kept at `path` (JSON) and reused from there by a later run under the same
    `arm_key` unless `fresh`: arms can run apart (e.g. a slow baseline while a bundle trains) and merge."""
    key = arm_key(arm, data, cfg)
    if not fresh and (kept := load_kept(path, key, f"arm {arm.name}")) is not None:
        return np.asarray(kept["lists"], dtype=np.int64).reshape(-1, cfg.k), kept["info"]
    lists, info = arm_lists(arm, ds, world, reqs, cfg.k)
    keep(path, key, {"lists": lists.tolist(), "info": info})
    return lists, info


def load_world(data: Path) -> tuple[World, Dataset]:
    """The shop world of `data` and its dataset; a clear error for any other folder."""
    if not (data / "world.json").exists():
        raise ValueError(f"{data}: no world.json; {NEEDS_WORLD}")
    ds = load_dataset(data)
    if not ds.splits.get("test") or "train" not in ds.splits:
        raise ValueError(f"{data}: the A/B test needs train.jsonl (to fit arms) and test.jsonl (the requests; "
                         "or valid.jsonl with --set split=valid)")
    return World.load(data), ds


def arms_dir(out: Path) -> Path:
    """Where each arm's lists are kept: FILE.arms/ beside the report FILE.json."""
    return out.with_suffix(".arms")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    ap = argparse.ArgumentParser(prog="python -m apps.ab_test", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, type=Path, help="shop-world dataset folder (python -m apps.world)")
    ap.add_argument("--arms", required=True, help="comma-separated arm specs (see above)")
    ap.add_argument("--out", required=True, type=Path, help="report JSON path; the plot goes beside it (.png)")
    ap.add_argument("--control", default=None, help="arm the lifts are measured against (default: config control, sasrec)")
    ap.add_argument("--fresh", action="store_true", help="redo arms whose lists an earlier run kept beside --out")
    add_common(ap, config="optional YAML ABTestConfig")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """Parse, fit and run every arm on the sampled requests, simulate the user, write JSON + PNG."""
    a = parse_args(argv)
    cfg = load_config(a.config, ABTestConfig, sets=a.set, control=a.control)
    arms = parse_arms(a.arms)
    if cfg.control not in [x.name for x in arms]:
        raise ValueError(f"control arm '{cfg.control}' is not among the arms {[x.name for x in arms]}; "
                         "pass --control NAME or add it to --arms")
    t0 = time.perf_counter()
    world, ds = load_world(a.data)
    if not ds.splits.get(cfg.split):
        raise ValueError(f"{a.data}: no {cfg.split} rows to sample requests from")
    reqs = sample_requests(ds.splits[cfg.split], world.calendar, cfg)
    lists, info = {}, {}
    for arm in tqdm(arms, desc="arms", unit="arm"):
        path = arms_dir(a.out) / f"{arm.name}.json"
        lists[arm.name], info[arm.name] = kept_arm_lists(arm, a.data, ds, world, reqs, cfg, path, a.fresh)
        info[arm.name] = {"spec": arm.spec, "kind": arm.kind, "arg": arm.arg, **info[arm.name]}
        tqdm.write(f"arm {arm.name}: {json.dumps(info[arm.name]['seconds'])}")
    t1 = time.perf_counter()
    report = ab_report(reqs, show(world.feedback, reqs, lists, cfg.seed), world.catalogue.price, cfg)
    sc = scopes(reqs)
    out = {"data": str(a.data), "config": cfg.model_dump(), "control": cfg.control, "arms": info,
           "requests": {s: int(len(v.requests)) for s, v in sc.items()},
           "users": {s: int(len(v.users)) for s, v in sc.items()}, "metrics": report,
           "seconds": {"arms": round(t1 - t0, 1), "simulate": round(time.perf_counter() - t1, 1),
                       "total": round(time.perf_counter() - t0, 1)}}
    out["plot"] = str(save_lift_plot(report, cfg.control, a.out.with_suffix(".png")))
    a.out.write_text(json.dumps(out, indent=1))
    print(markdown_table(report, cfg.control))
    return out


if __name__ == "__main__":
    run(main)
