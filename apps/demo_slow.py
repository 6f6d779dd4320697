"""The slow-thinking part of `make demo`: instructions written before each request, and what they
change in the answers of the service's own core.

For a few test requests the instruction the pipeline wrote from the user's state strictly before
the request (the per-row file of `apps.instructions generate --per-row`) is embedded and stored in
an embedded Redis; each homepage list is shown with it and without it (the learnable default), and
a noisy search query with the online query rewrite and without. Items that fill one of the
bundle's need slots (the instruction's open needs) say which need they stand for.

    show_slow_thinking(Path("runs/demo/train"), Path("runs/demo/world"), Path("runs/demo/instructions/rows.jsonl"))
"""

from __future__ import annotations

import json
from pathlib import Path

from apps.demo import answer_examples


def instruction_records(rows: list, per_row: Path) -> list:
    """The stored-instruction record of each row (None where the pipeline wrote none)."""
    from oxygen.instructions.pipeline import read_instructions, stored_records

    by_key = {(r["user_id"], r["at"]): r for r in read_instructions(per_row)}
    found = [by_key.get((r.user_id, r.timestamp)) for r in rows]
    stored = iter(stored_records([f for f in found if f]))
    return [next(stored) if f else None for f in found]


def _lists(bundle, row, with_: object, without: object) -> None:
    """Two lists side by side (titles; the actual next item marked; a need-slot item's need named)."""
    for rank, (a, b) in enumerate(zip(with_.items, without.items), 1):
        need = f"[{a.need}] " if a.need else ""
        ta = need + (bundle.titles.get(a.item_id) or str(a.item_id)) + (" <-" if a.item_id == row.target else "")
        tb = (bundle.titles.get(b.item_id) or str(b.item_id)) + (" <-" if b.item_id == row.target else "")
        print(f"    {rank}. {ta[:46]:<48} | {tb[:46]}")


def show_homepage(bundle, rows: list, per_row: Path, n: int = 3) -> None:
    """Homepage requests whose instruction has a spatiotemporal part: with it vs the default."""
    recs = instruction_records(rows, per_row)
    picked = [(r, rec) for r, rec in zip(rows, recs) if r.scenario == "homepage" and rec and "stp" in rec.branches]
    seen, chosen = set(), []
    for r, rec in picked:
        if r.user_id not in seen and len(chosen) < n:
            seen.add(r.user_id)
            chosen.append((r, rec))
    if not chosen:
        print("(no homepage test request with a spatiotemporal instruction)")
        return
    rs, records = [r for r, _ in chosen], [rec for _, rec in chosen]
    k = 10 if bundle.need_slots else 5  # need slots take the last places of a list
    with_, without = answer_examples(bundle, rs, k=k, instructions=records), answer_examples(bundle, rs, k=k)
    for r, rec, a, b in zip(rs, records, with_, without):
        print(f"- [homepage] user {r.user_id} on {r.context.date if r.context else '?'}; then clicked: "
              f"{bundle.titles.get(r.target)!r}")
        weight = f", guidance weight {a.instruction_weight:g}" if bundle.guidance else ""
        weight += f", {bundle.need_slots[r.scenario]} need slots" if r.scenario in bundle.need_slots else ""
        print(f"    instruction ({a.reasoning_instruction}{weight}): {rec.text}")
        for reason in rec.reasons[:3]:
            print(f"      because {reason}")
        print(f"    {'with the instruction':<51} | without (default)")
        _lists(bundle, r, a, b)


def show_search(bundle, rows: list) -> None:
    """The first noisy search request: the rewritten query's list vs the raw query's."""
    from oxygen.instructions.backends.knowledge import KnowledgeBackend
    from oxygen.instructions.generator import rewrite_queries

    search = [r for r in rows if r.query][:400]
    fixed = rewrite_queries([r.query for r in search], KnowledgeBackend())
    pick = next(((r, q) for r, q in zip(search, fixed) if q != r.query), None)
    if pick is None:
        print("(no noisy search query among the first test searches)")
        return
    r, q = pick
    a, = answer_examples(bundle, [r], rewrite=True)
    b, = answer_examples(bundle, [r])
    print(f"- [search] user {r.user_id} typed {r.query!r}; rewritten to {a.query_used!r}; then clicked: "
          f"{bundle.titles.get(r.target)!r}")
    print(f"    {'rewritten query':<51} | raw query")
    _lists(bundle, r, a, b)


def show_slow_thinking(train: Path, world: Path, per_row: Path) -> None:
    """Print the homepage and search comparisons for a few test requests."""
    from oxygen.data.io import load_dataset
    from oxygen.model.bundle import Bundle

    bundle = Bundle.load(train / "bundle")
    rows = load_dataset(world, splits=("test",)).splits["test"]
    show_homepage(bundle, rows, per_row)
    show_search(bundle, rows)
    if bundle.guidance or bundle.need_slots:
        show_guidance(bundle, [r for r in rows if r.scenario in bundle.guidance or r.scenario in bundle.need_slots],
                      per_row)


def show_guidance(bundle, rows: list, per_row: Path) -> None:
    """Test HR@10 of the guided (or need-slot) scenarios' rows as served (the bundle's guidance,
    gated by each stored instruction's open needs, and its need slots) and as trained (neither)."""
    from dataclasses import replace

    import numpy as np

    from oxygen.eval.metrics import hit_rate
    from oxygen.instructions.pipeline import read_instructions, row_instructions
    from oxygen.recommenders.bundled import BundleRecommender

    keys = {(r.user_id, r.timestamp) for r in rows}
    records = [rec for rec in read_instructions(per_row) if (rec["user_id"], rec["at"]) in keys]
    generated = row_instructions(records, bundle.instruction_scenarios)
    targets = np.array([r.target for r in rows])
    hr = {}
    trained = replace(bundle, guidance={}, guidance_gated=frozenset(), need_slots={})
    for name, b in (("as served", bundle), ("as trained", trained)):
        hr[name] = hit_rate(BundleRecommender(b, generated=generated, progress=False).recommend(rows, 10), targets, 10)
    gated = sum(generated.gate(r) for r in rows)
    scenarios = sorted(set(bundle.guidance) | set(bundle.need_slots))
    print(f"\n{scenarios} test rows ({len(rows)}; {gated} whose instruction states an open need): "
          f"HR@10 {hr['as served']:.4f} with guidance {bundle.guidance} at levels {list(bundle.guidance_levels)}"
          f"{' (gated)' if bundle.guidance_gated else ''} and need slots {bundle.need_slots}, "
          f"{hr['as trained']:.4f} without")


def show_users(users_file: Path, n: int = 2) -> None:
    """A few users' current instructions (end of their log) with reasons."""
    lines = users_file.read_text(encoding="utf-8").splitlines()
    recs = [json.loads(x) for x in lines]
    for rec in [r for r in recs if "stp" in r["branches"] and "intent" in r["branches"]][:n]:
        print(f"- user {rec['user_id']}: {rec['text']}")
        for reason in rec["reasons"][:4]:
            print(f"    because {reason}")
