"""Dataset rows -> user states -> generated instructions -> embedded records (the offline job).

Layer 4 (it reads schema rows): the states come from `oxygen.data.adapters.user_state`, so only
what happened strictly before each state's time goes in. Two ways to pick that time:

- `row_states`: one state per row, at the row's own timestamp (training rows, evaluation rows);
- `end_states`: one state per user at the end of their log (after their last event), which is
  what the daily refresh writes to the store.

A user's recent search queries come from their own earlier search rows (`query_log`). `embed`
turns instruction texts into the vectors the model's reasoning adapter reads (the item text
encoder, each distinct text once) and makes the Redis records.

    queries = query_log(all_rows)
    states = end_states(all_rows, items, queries, WeatherFeed.load(root))
    instrs, stats = generate_instructions(states, KnowledgeBackend(coverage=0.8), vocab=catalogue_vocabulary(items))
    records = embed(instrs)                           # list[store.InstructionRecord]
    pairs, stats = teacher_pairs(row_states(train_rows, items, queries), KnowledgeBackend())  # LM data
    pairs += stp_pairs(calendar_states(states, 4000, ahead_days=90), KnowledgeBackend())    # STP over the calendar
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from oxygen.data.adapters import user_state
from oxygen.data.io import DataError
from oxygen.data.schema import PER_HISTORY_FIELDS, Item, Row
from oxygen.instructions.backends.base import Backend
from oxygen.instructions.branches import parse
from oxygen.instructions.combine import CLAUSE_SEP, Instruction
from oxygen.instructions.generator import generate_instructions
from oxygen.instructions.needs import NeedVocabulary
from oxygen.instructions.prompts import TASK_INTENT, TASK_REWRITE, TASK_STP, Budget, stp_prompt
from oxygen.instructions.state import UserState, on_day
from oxygen.instructions.weather import WeatherFeed
from oxygen.semantic_ids.text_encoder import encode_texts
from oxygen.store.instructions import InstructionRecord
from oxygen.training.prepare import RowInstructions

QueryLog = dict[str, list[tuple[int | None, str]]]
CHARS_PER_TOKEN = 3  # a conservative BPE rate on these prompts: LM prompts get ctx * 3 / 2 characters
BRANCH_OF_TASK = {TASK_STP: "stp", TASK_REWRITE: "rewrite", TASK_INTENT: "intent"}


def query_log(rows: Iterable[Row]) -> QueryLog:
    """Every user's search queries as (timestamp or None, text), in row order."""
    log: QueryLog = defaultdict(list)
    for r in rows:
        if r.query:
            log[r.user_id].append((r.timestamp, r.query))
    return dict(log)


def catalogue_vocabulary(items: Iterable[Item]) -> NeedVocabulary:
    """The need vocabulary of a catalogue: each item's title and description under its leaf category."""
    return NeedVocabulary.from_items((f"{it.title or ''}. {it.description or ''}", it.categories) for it in items)


def row_states(rows: Sequence[Row], items: dict[int, Item], queries: QueryLog,
               feed: WeatherFeed | None = None) -> list[UserState]:
    """The state of each row's user at the row's time (nothing at or after it)."""
    return [user_state(r, items, queries.get(r.user_id, []), feed) for r in rows]


def after(row: Row) -> Row:
    """`row` with its own event appended to the history, timed one second after it: the user's
    state right after this row (what a refresh at the end of the log sees). Per-history lists the
    row lacks stay absent."""
    own = {"history_behaviours": row.behaviour or "click", "history_scenarios": row.scenario or "homepage",
           "history_timestamps": row.timestamp}
    update: dict = {"history": [*row.history, row.target],
                    "timestamp": None if row.timestamp is None else row.timestamp + 1}
    for f in PER_HISTORY_FIELDS:
        if getattr(row, f) is not None and own[f] is not None:
            update[f] = [*getattr(row, f), own[f]]
        elif getattr(row, f) is not None:
            update[f] = None  # cannot extend it consistently: drop it rather than misalign it
    return row.model_copy(update=update)


def end_states(rows: Iterable[Row], items: dict[int, Item], queries: QueryLog,
               feed: WeatherFeed | None = None) -> list[UserState]:
    """One state per user, right after their last row (rows in time order per user)."""
    last: dict[str, Row] = {}
    for r in rows:
        if r.user_id not in last or (r.timestamp or 0) >= (last[r.user_id].timestamp or 0):
            last[r.user_id] = r
    return [user_state(after(r), items, queries.get(u, []), feed) for u, r in last.items()]


def instruction_vectors(texts: Sequence[str], encoder: str | None = None, progress: bool = False) -> np.ndarray:
    """Float32[len(texts), E]: each instruction's vector, the L2-normalised mean of its clauses'
    text-encoder vectors (clauses = the "; "-separated parts the combiner writes). Each distinct
    clause is encoded once (and cached on disk by the encoder), which is what makes a vector per
    training row affordable on a CPU: rows share their situation, complement and query clauses."""
    clauses = [[c for c in t.split(CLAUSE_SEP) if c.strip()] or [t] for t in texts]
    distinct = sorted({c for cs in clauses for c in cs})
    if not distinct:
        return np.zeros((len(texts), 0), np.float32)
    emb = encode_texts(distinct, encoder, progress=progress)
    index = {c: i for i, c in enumerate(distinct)}
    out = np.stack([emb[[index[c] for c in cs]].mean(0) for cs in clauses]).astype(np.float32)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def read_instructions(path: Path | str) -> list[dict]:
    """The records of an instructions JSONL file (apps.instructions generate), each with user_id,
    at and text; DataError (file, line) when one lacks them."""
    records = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        rec = json.loads(line)
        missing = [k for k in ("user_id", "at", "text") if k not in rec]
        if missing:
            raise DataError(path, n, missing[0], "is missing; write the file with `python -m apps.instructions "
                            "generate --per-row`")
        records.append(rec)
    return records


def stored_records(records: Sequence[dict], encoder: str | None = None, progress: bool = False
                   ) -> list[InstructionRecord]:
    """Store records (text, its vector, reasons, branches, backend, version, time `at`, open needs)
    of instruction records (`read_instructions`, `Instruction.to_dict`)."""
    vecs = instruction_vectors([r["text"] for r in records], encoder, progress)
    return [InstructionRecord(r["user_id"], r["text"], vecs[i], r.get("backend") or "unknown",
                              float(r["at"]) if r.get("at") is not None else time.time(), list(r.get("reasons", [])),
                              list(r.get("branches", [])), r.get("version", ""), bool(r.get("truncated", False)),
                              open_needs=r.get("open_needs"), open_categories=r.get("open_categories"))
            for i, r in enumerate(records)]


def row_vectors(records: Sequence[dict], encoder: str | None = None) -> dict[tuple[str, int | None], np.ndarray]:
    """{(user_id, at): instruction vector} of per-row records (what collate attaches to a row)."""
    vecs = instruction_vectors([r["text"] for r in records], encoder, progress=True)
    return {(r["user_id"], r["at"]): vecs[i] for i, r in enumerate(records)}


def row_gates(records: Sequence[dict]) -> dict[tuple[str, int | None], bool]:
    """{(user_id, at): the record states an open need} of per-row records (gated guidance)."""
    return {(r["user_id"], r["at"]): bool(r.get("open_needs")) for r in records}


def row_needs(records: Sequence[dict]) -> dict[tuple[str, int | None], tuple[str, ...]]:
    """{(user_id, at): the record's open need categories, strongest first} (need slots)."""
    return {(r["user_id"], r["at"]): tuple(r.get("open_categories") or ()) for r in records}


def row_instructions(records: Sequence[dict], scenarios: frozenset[str] | None,
                     encoder: str | None = None) -> RowInstructions:
    """Per-row records as the rows of `scenarios` (None: all) read them: vectors, gates and needs."""
    return RowInstructions(row_vectors(records, encoder), scenarios, gates=row_gates(records), needs=row_needs(records))


def embed(instrs: Sequence[Instruction], encoder: str | None = None, progress: bool = False) -> list[InstructionRecord]:
    """The store records of `instrs` generated now: text, its embedding, reasons, branches, backend, version."""
    now = time.time()
    return stored_records([{**i.to_dict(), "at": now} for i in instrs], encoder, progress)


class Recorder:
    """A backend that passes prompts to `backend` and keeps every (prompt, text) it returned."""

    def __init__(self, backend: Backend) -> None:
        self.backend, self.name, self.version = backend, backend.name, backend.version
        self.pairs: list[tuple[str, str]] = []

    def generate(self, prompts: list[str], max_new_tokens: int = 256) -> list[str]:
        """The wrapped backend's texts (recorded)."""
        texts = self.backend.generate(prompts, max_new_tokens=max_new_tokens)
        self.pairs += zip(prompts, texts)
        return texts


def branch_of(prompt: str) -> str:
    """The branch a prompt belongs to, from its `TASK:` first line."""
    return BRANCH_OF_TASK[prompt.split("\n", 1)[0]]


def calendar_states(states: Sequence[UserState], n: int, ahead_days: int, seed: int = 0) -> list[UserState]:
    """`n` behaviour-free contexts to distil the STP branch over the calendar, not only over the
    days the sampled rows fall on: each a random state's place and profile, on a day drawn
    uniformly from the states' first date to `ahead_days` after their last (an instructor trained
    today will write for the coming weeks), with the weather tags of a random state in the same
    city (the weather that city saw, not the weather of that day). [] when no state has a date."""
    dated = [s for s in states if s.date]
    if n <= 0 or not dated:
        return []
    rng = np.random.default_rng(seed)
    first = dt.date.fromisoformat(min(s.date for s in dated))
    span = (dt.date.fromisoformat(max(s.date for s in dated)) - first).days + 1 + ahead_days
    by_city: dict[str | None, list[UserState]] = defaultdict(list)
    for s in dated:
        by_city[s.city].append(s)
    out = []
    for _ in range(n):
        base = dated[rng.integers(len(dated))]
        same = by_city[base.city]
        day = (first + dt.timedelta(days=int(rng.integers(span)))).isoformat()
        out.append(on_day(base, day, same[rng.integers(len(same))].weather))
    return out


def stp_pairs(states: Sequence[UserState], teacher: Backend) -> list[tuple[str, str]]:
    """(STP prompt, the teacher's answer) for each distinct STP prompt of `states`, kept where the
    answer parses."""
    prompts = list(dict.fromkeys(p for p in map(stp_prompt, states) if p is not None))
    return [(p, t) for p, t in zip(prompts, teacher.generate(prompts)) if parse("stp", t) is not None]


def teacher_pairs(states: Sequence[UserState], teacher: Backend, budget: Budget | None = None
                  ) -> tuple[list[tuple[str, str]], dict]:
    """(prompt, completion) pairs for training the instruction LM: every branch prompt of `states`
    with the teacher's answer, kept only where the answer parses (each STP prompt once); and the
    generation stats."""
    rec = Recorder(teacher)
    _, stats = generate_instructions(states, rec, budget=budget)
    pairs = [(p, t) for p, t in rec.pairs if parse(branch_of(p), t) is not None]
    return pairs, stats.to_dict()
