"""Output schemas of the three branches and one tolerant parser.

    STP      {"needs": [{"need": str, "reason": str}]}
    rewrite  {"query": str}
    intent   {"intents": [{"instruction": str, "reason": str, "kind": complement|interest_fusion|
                           repurchase|context|search|other}]}

`parse(branch, text)` finds the first JSON object in `text` (inside a ```json fence or surrounded
by prose) that validates against the branch's schema (pydantic, extra="forbid") and returns it; any
other text returns None, never raises. Pass a `Counter` to count ("stp", "ok") / ("stp", "unusable").

    out = parse("rewrite", 'Sure! {"query": "gaming mouse"}')   # RewriteOut(query="gaming mouse")
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

BRANCHES: tuple[str, ...] = ("stp", "rewrite", "intent")
Kind = Literal["complement", "interest_fusion", "repurchase", "context", "search", "other"]
Text = Field(min_length=1, max_length=300)


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Need(_Out):
    """One contextual need: a product phrase and why."""

    need: str = Text
    reason: str = Text


class StpOut(_Out):
    """Spatiotemporal + profile branch output."""

    needs: list[Need] = Field(max_length=20)


class RewriteOut(_Out):
    """Query-rewrite branch output."""

    query: str = Field(min_length=1, max_length=200)


class Intent(_Out):
    """One behaviour-derived intent: what to recommend, why, and its kind."""

    instruction: str = Text
    reason: str = Text
    kind: Kind


class IntentOut(_Out):
    """User-intent branch output."""

    intents: list[Intent] = Field(max_length=20)


SCHEMAS: dict[str, type[_Out]] = {"stp": StpOut, "rewrite": RewriteOut, "intent": IntentOut}
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def _objects(text: str) -> Iterator[object]:
    """Every JSON value that starts at a '{' of `text` (fenced blocks first), in order."""
    dec = json.JSONDecoder()
    for chunk in [m.group(1) for m in _FENCE.finditer(text)] + [text]:
        start = chunk.find("{")
        while start >= 0:
            try:
                yield dec.raw_decode(chunk, start)[0]
            except ValueError:
                pass
            start = chunk.find("{", start + 1)


def parse(branch: str, text: object, counts: Counter | None = None) -> _Out | None:
    """The first object in `text` valid for `branch` ("stp", "rewrite", "intent"), else None.

    Never raises on bad output (an unknown branch name is a programming error: KeyError)."""
    schema = SCHEMAS[branch]
    found = None
    if isinstance(text, str) and len(text) <= 100_000:
        for obj in _objects(text):
            if not isinstance(obj, dict):
                continue
            try:
                found = schema.model_validate(obj)
                break
            except ValidationError:
                continue
    if counts is not None:
        counts[(branch, "ok" if found is not None else "unusable")] += 1
    return found
