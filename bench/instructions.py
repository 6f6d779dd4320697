"""Slow thinking measured: do generated reasoning instructions change what the model recommends?

    python -m bench.instructions --data runs/demo/world --out runs/bench/instructions.json [--sids runs/demo/sids] \\
        [--config configs/world/demo.yaml] [--seeds 0 1 2] [--coverage 0.8] [--lm runs/demo/instructor]

1. The knowledge teacher (at partial `--coverage`) writes one instruction per row of every split,
   from the user's state strictly before the row (`apps.instructions generate --per-row`).
2. Per seed, two models with the same config: `paper` (the paper's training scheme: search rows
   carry their query, the others the learnable default) and `generated` (the same with the
   generated instructions attached to the non-search training rows; `instructions.file`).
3. Test HR@10 (selection on valid; the test split is only reported):
   - deductive rows (hidden reason = a contextual need; the truth is read here, for evaluation
     only): `paper` with the default instruction vs `generated` with the teacher's instructions,
     with the small LM's instructions (`--lm`, served by vLLM) and with the oracle (the true
     need written as the instruction: the ceiling); per other reason and overall the same
     comparison with a paired bootstrap over rows (seed-averaged hits);
   - search rows: the raw query vs the query-rewrite branch's output;
4. query rewrite accuracy / false corrections on queries typed the way the world types them;
   usability (share of branch outputs that parse; share of deductive rows whose instruction states
   the true need); throughput (users/s) per backend with the STP cache hit rate.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from apps import cli
from oxygen.config import GenerativeConfig, load_config
from oxygen.data.io import load_dataset, write_jsonl
from oxygen.data.schema import Row
from oxygen.eval.instructions import deductive, need_stated, oracle_text, reason_of, rewrite_pairs, rewrite_scores
from oxygen.eval.seeds import mean_std, paired_bootstrap, reseed
from oxygen.instructions.backends import make_backend
from oxygen.instructions.backends.knowledge import KnowledgeBackend
from oxygen.instructions.generator import generate_instructions, rewrite_queries
from oxygen.instructions.pipeline import catalogue_vocabulary, instruction_vectors, query_log, row_states
from oxygen.instructions.weather import WeatherFeed
from oxygen.recommenders.generative import GenerativeRecommender
from oxygen.world.knowledge import Knowledge

K = 10


def per_row_instructions(ds, backend, rows: list[Row], work: Path, name: str) -> tuple[list[dict], dict]:
    """Instructions for `rows` from each user's state strictly before the row (`backend`), written
    to work/<name>.jsonl; (records, generation stats with users/s)."""
    all_rows = [r for s in ("train", "valid", "test") for r in ds.splits.get(s, [])]
    items = {it.item_id: it for it in ds.items}
    states = row_states(rows, items, query_log(all_rows), WeatherFeed.load(ds.root))
    instrs, stats = generate_instructions(states, backend, vocab=catalogue_vocabulary(ds.items))
    records = [i.to_dict() for i in instrs]
    write_jsonl(work / f"{name}.jsonl", records)
    out = stats.to_dict()
    out["users_per_s"] = len(states) / max(stats.seconds, 1e-9)
    return records, out


def fit(cfg: GenerativeConfig, ds, seed: int, instructions: Path | None, work: Path) -> GenerativeRecommender:
    """One model of the comparison (selected on valid); `cfg.instructions.scenarios` applies."""
    cfg = reseed(cfg, seed).model_copy(update={"instructions": cfg.instructions.model_copy(
        update={"file": str(instructions) if instructions else None, "train": True})})
    return GenerativeRecommender(cfg, run_dir=work).fit(ds.splits["train"], ds.splits["valid"], ds.items)


def hits(rec: GenerativeRecommender, rows: list[Row], generated: dict | None) -> np.ndarray:
    """Float[len(rows)]: 1 where the target is in the top K, with `generated` as the instructions."""
    rec.generated = rec.row_instructions(generated)
    top = rec.recommend(rows, K)
    return (top == np.array([r.target for r in rows])[:, None]).any(axis=1).astype(np.float64)


def vectors(records: list[dict]) -> dict:
    """{(user_id, at): vector} of instruction records."""
    vecs = instruction_vectors([r["text"] for r in records])
    return {(r["user_id"], r["at"]): vecs[i] for i, r in enumerate(records)}


def oracle(test: list[Row], base: dict, texts: dict) -> dict:
    """`base` with every deductive test row's instruction replaced by its true need (written in the
    form of the row's generated instruction, `texts`)."""
    rows = [r for r, d in zip(test, deductive(test)) if d]
    vecs = instruction_vectors([oracle_text(r.truth.need, texts.get((r.user_id, r.timestamp))) for r in rows])
    return {**base, **{(r.user_id, r.timestamp): vecs[i] for i, r in enumerate(rows)}}


def arms_of_seed(cfg, ds, seed: int, teacher_file: Path, gen: dict[str, dict], coverage: float, work: Path) -> dict:
    """Per-row test hits of every arm for one seed."""
    test = ds.splits["test"]
    paper = fit(cfg, ds, seed, None, work)
    trained = fit(cfg, ds, seed, teacher_file, work)
    arms = {"default": hits(paper, test, None), "paper+teacher": hits(paper, test, gen["teacher"]),
            "generated": hits(trained, test, gen["teacher"]), "generated+default": hits(trained, test, None),
            "oracle": hits(trained, test, oracle(test, gen["teacher"], gen["texts"]))}
    if "lm" in gen:
        arms["generated+lm"] = hits(trained, test, gen["lm"])
    search = [i for i, r in enumerate(test) if r.query]
    rows = [test[i] for i in search]
    rewritten = rewrite_queries([r.query for r in rows], KnowledgeBackend(coverage=coverage))
    rw_rows = [r.model_copy(update={"query": q}) for r, q in zip(rows, rewritten)]
    arms["search_raw"], arms["search_rewritten"] = hits(trained, rows, None), hits(trained, rw_rows, None)
    return arms


def seed_arms(folder: Path, seed: int, compute) -> dict:
    """The per-row hits of every arm for `seed`: loaded from folder/arms_seed<seed>.npz, else
    computed (training the seed's models) and saved there."""
    path = folder / f"arms_seed{seed}.npz"
    if path.exists():
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    arms = compute()
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arms)
    return arms


def summarise(per_seed: list[dict], test: list[Row]) -> dict:
    """Means over seeds per arm on deductive / other-reason / all rows, and paired bootstraps."""
    arms = sorted({a for s in per_seed for a in s})  # an arm only some seeds ran (the LM's) averages over those
    mean = {a: np.mean([s[a] for s in per_seed if a in s], axis=0) for a in arms}
    ded = deductive(test)
    reasons = np.array([reason_of(r) for r in test])
    out: dict = {"deductive": {"rows": int(ded.sum())}, "by_reason": {}, "overall": {}}
    for arm in ("default", "paper+teacher", "generated", "generated+default", "oracle", "generated+lm"):
        if arm in mean:
            vals = [float(s[arm][ded].mean()) for s in per_seed if arm in s]
            out["deductive"][arm] = {"hr10": float(np.mean(vals)), "std": mean_std(vals)[1]}
            out["overall"][arm] = float(mean[arm].mean())
    d = out["deductive"]
    d.update(hr10_default=d["default"]["hr10"], hr10_generated=d["generated"]["hr10"],
             hr10_oracle=d["oracle"]["hr10"], gap=paired_bootstrap(mean["generated"][ded], mean["default"][ded]))
    if "generated+lm" in d:
        d["hr10_generated_lm"] = d["generated+lm"]["hr10"]
        with_lm = [s for s in per_seed if "generated+lm" in s]  # paired with the default of the same seeds
        d["generated+lm"].update(seeds=len(with_lm), gap=paired_bootstrap(
            np.mean([s["generated+lm"] for s in with_lm], axis=0)[ded], np.mean([s["default"] for s in with_lm], axis=0)[ded]))
    for reason in sorted(set(reasons) - {""}):
        m = reasons == reason
        out["by_reason"][reason] = {"rows": int(m.sum()), "default": float(mean["default"][m].mean()),
                                    "generated": float(mean["generated"][m].mean()),
                                    "gap": paired_bootstrap(mean["generated"][m], mean["default"][m])}
    out["overall"]["gap"] = paired_bootstrap(mean["generated"], mean["default"])
    out["search"] = {"rows": int(len(mean["search_raw"])), "hr10_raw": float(mean["search_raw"].mean()),
                     "hr10_rewritten": float(mean["search_rewritten"].mean()),
                     "gap": paired_bootstrap(mean["search_rewritten"], mean["search_raw"])}
    return out


def usability(records: list[dict], stats: dict, test: list[Row], kb: Knowledge) -> dict:
    """Share of branch outputs that parse; share of deductive test rows whose instruction states the need."""
    ok = sum(v["ok"] for v in stats["parsed"].values())
    tried = ok + sum(v["unusable"] for v in stats["parsed"].values())
    text = {(r["user_id"], r["at"]): r["text"] for r in records}
    rows = [r for r, d in zip(test, deductive(test)) if d]
    matched = [need_stated(text.get((r.user_id, r.timestamp), ""), r.truth.need, kb) for r in rows]
    return {"parse_rate": ok / max(tried, 1), "match_rate": float(np.mean(matched)) if matched else float("nan"),
            "deductive_rows": len(rows)}


def lm_part(ds, lm: Path, work: Path, n_other: int, seed: int) -> tuple[dict, dict]:
    """The small LM's instructions (vLLM) for the deductive test rows and `n_other` others, its
    usability, and the hf / vllm throughput on 64 users: ({(user, at): vector}, report)."""
    test = ds.splits["test"]
    ded = deductive(test)
    others = np.random.default_rng(seed).permutation(np.flatnonzero(~ded))[:n_other]
    rows = [test[i] for i in sorted([*np.flatnonzero(ded), *others])]
    report: dict = {"throughput_users_per_s": {}}
    for name in ("hf", "vllm"):
        t0 = time.perf_counter()
        backend = make_backend(name, lm)
        load = time.perf_counter() - t0
        sample = rows if name == "vllm" else rows[:64]
        records, stats = per_row_instructions(ds, backend, sample, work, f"lm_{name}")
        report["throughput_users_per_s"][name] = stats["users_per_s"]
        report[name] = {"load_s": load, "users": len(sample), "stats": stats}
        if name == "vllm":
            gen = vectors(records)
            report["usability"] = usability(records, stats, test, Knowledge.load())
        del backend
    return gen, report


def rewrite_part(kb: Knowledge, backend, seed: int, n: int = 2000) -> dict:
    """Rewrite accuracy / false corrections on n queries typed the world's way, and the latency
    per query in one batch and one query at a time (50 calls)."""
    pairs = rewrite_pairs(kb, n, seed=seed)
    typed = [t for t, _ in pairs]
    rewrite_queries(typed[:8], backend)  # warm-up
    t0 = time.perf_counter()
    got = rewrite_queries(typed, backend)
    batch_ms = 1000 * (time.perf_counter() - t0) / n
    t1 = time.perf_counter()
    for q in typed[:50]:
        rewrite_queries([q], backend)
    return {**rewrite_scores(pairs, got), "batch_ms_per_query": batch_ms,
            "single_query_ms": 1000 * (time.perf_counter() - t1) / 50}


def main(argv: list[str] | None = None) -> dict:
    """Run the comparison; write and return the JSON."""
    p = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--sids", type=Path, default=None,
                   help="codebook folder from apps.build_sids (else every fit builds the SIDs from the data)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--coverage", type=float, default=0.8)
    p.add_argument("--lm", type=Path, default=None, help="instruction LM folder (apps.train_instructor)")
    p.add_argument("--arms", type=Path, default=None,
                   help="folder of per-seed test hits (arms_seed<S>.npz): a seed found there is not retrained, "
                        "so seeds run as parallel processes can be summarised by one more run over all of them")
    p.add_argument("--lm-other-rows", type=int, default=200, help="non-deductive test rows the LM also writes for")
    cli.add_common(p, config="YAML GenerativeConfig (default configs/world/demo.yaml)")
    args = p.parse_args(argv)
    args.config = args.config or "configs/world/demo.yaml"
    ds, kb = load_dataset(args.data), Knowledge.load()
    cfg = load_config(args.config, GenerativeConfig, sets=args.set, sid_dir=str(args.sids) if args.sids else None)
    work = args.out.with_suffix("")
    work.mkdir(parents=True, exist_ok=True)
    rows = [r for s in ("train", "valid", "test") for r in ds.splits[s]]
    records, stats = per_row_instructions(ds, KnowledgeBackend(coverage=args.coverage), rows, work, "teacher")
    gen = {"teacher": vectors(records),  # + the texts whose first clause is the situation (the oracle's form)
           "texts": {(r["user_id"], r["at"]): r["text"] for r in records if r["branches"][:1] == ["stp"]}}
    out: dict = {"data": str(args.data), "config": args.config, "sets": args.set, "seeds": args.seeds,
                 "coverage": args.coverage,
                 "teacher": stats, "usability": usability(records, stats, ds.splits["test"], kb),
                 "throughput_users_per_s": {"knowledge": stats["users_per_s"]},
                 "stp_cache_hit_rate": stats["stp_cache"]["hit_rate"]}
    if args.lm is not None:
        gen["lm"], out["lm"] = lm_part(ds, args.lm, work, args.lm_other_rows, args.seeds[0])
        out["throughput_users_per_s"].update(out["lm"]["throughput_users_per_s"])
    out["query_rewrite"] = rewrite_part(kb, KnowledgeBackend(coverage=args.coverage), args.seeds[0])
    if args.lm is not None:
        out["lm"]["query_rewrite"] = rewrite_part(kb, make_backend("vllm", args.lm), args.seeds[0])
    per_seed = [seed_arms(args.arms or work, s, lambda s=s: arms_of_seed(cfg, ds, s, work / "teacher.jsonl", gen,
                                                                         args.coverage, work)) for s in args.seeds]
    out.update(summarise(per_seed, ds.splits["test"]))
    args.out.write_text(json.dumps(out, indent=1, default=float))
    print(json.dumps({k: out[k] for k in ("deductive", "search", "query_rewrite", "usability")}, indent=1, default=float))
    return out


if __name__ == "__main__":
    cli.run(main)
