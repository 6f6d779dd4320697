"""The three branch prompts (the paper's Fig. 3), their character/token budget and the STP cache key.

Every prompt is plain text: a `TASK:` first line naming the branch, one sentence of instruction,
`label: value` lines, then the exact JSON schema of the answer. Behaviour is one line per event,
oldest first (long-term window, then short-term):

    2025-12-20 14:05 cart Voltra smartphone 128GB [Electronics > Phones & Accessories > Smartphones] in search

(`undated` instead of the time for undated behaviour; brackets in titles become parentheses). The
knowledge teacher (`backends/knowledge.py`) parses exactly these lines.

    prompt, truncated = intent_prompt(state, Budget(max_chars=4000))
    stp_key(state)   # ("2025-W51|winter|christmas|cold_snap", "Harbin|cold", "young_parents|parents_of_infant")
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from oxygen.instructions.state import Event, UserState

TASK_STP = "TASK: spatiotemporal-profile needs"
TASK_REWRITE = "TASK: query rewrite"
TASK_INTENT = "TASK: user-intent reasoning"
SCHEMA_STP = '{"needs": [{"need": "<a product people need now>", "reason": "<why, a few words>"}]}'
SCHEMA_REWRITE = '{"query": "<the normalised query>"}'
SCHEMA_INTENT = ('{"intents": [{"instruction": "<what to recommend>", "reason": "<why, a few words>", '
                 '"kind": "complement|interest_fusion|repurchase|context|search|other"}]}')
ANSWER = "Answer with JSON only, in exactly this schema:"
LONG_HEADER = "long-term behaviour (oldest first):"
SHORT_HEADER = "short-term behaviour, last 24 hours (oldest first):"
QUERIES_HEADER = "recent queries (oldest first):"
OMITTED = "earlier behaviour omitted:"
MAX_QUERIES = 5


@dataclass(frozen=True)
class Budget:
    """Prompt length limit: `max_chars` characters, or `max_tokens` tokens by `count_tokens`."""

    max_chars: int = 8000
    count_tokens: Callable[[str], int] | None = None
    max_tokens: int | None = None

    def fits(self, text: str) -> bool:
        """True when `text` is within the budget."""
        if self.count_tokens is not None and self.max_tokens is not None:
            return self.count_tokens(text) <= self.max_tokens
        return len(text) <= self.max_chars


def when(ts: int | None) -> str:
    """"YYYY-MM-DD HH:MM" (UTC) of a unix time, "undated" for None."""
    if ts is None:
        return "undated"
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M")


def _one_line(text: str) -> str:
    """`text` with line breaks turned into spaces (one prompt line per value)."""
    return " ".join(text.splitlines())


def event_line(ev: Event) -> str:
    """"<when> <action> <title> [<category path>] in <scenario>" (scenario part only when known)."""
    title = _one_line(ev.title or f"item {ev.item_id}").replace("[", "(").replace("]", ")")
    line = f"{when(ev.ts)} {ev.action or 'interacted'} {title} [{' > '.join(ev.category_path)}]"
    return f"{line} in {ev.scenario}" if ev.scenario else line


def _profile_lines(state: UserState) -> list[str]:
    """`label: value` lines of the profile fields the state has."""
    fields = (("age band", state.age_band), ("family stage", state.family_stage),
              ("spending power", state.spending_power),
              ("hobbies", ", ".join(state.hobbies) if state.hobbies else None), ("persona", state.persona))
    return [f"{k}: {v}" for k, v in fields if v]


def _week(state: UserState) -> str:
    """ISO week of the state's date ("2025-W51"), "unknown" without a date."""
    if state.date is None:
        return "unknown"
    y, w, _ = dt.date.fromisoformat(state.date).isocalendar()
    return f"{y}-W{w:02d}"


def stp_key(state: UserState) -> tuple[str, str, str]:
    """(time bucket, place, persona): users with the same key share one STP generation.

    The time bucket is the ISO week with the day's season, holidays and weather tags."""
    bucket = "|".join([_week(state), state.season or "", ",".join(state.holidays), ",".join(state.weather)])
    return bucket, f"{state.city or ''}|{state.climate or ''}", f"{state.persona or ''}|{state.family_stage or ''}"


def stp_prompt(state: UserState) -> str | None:
    """The spatiotemporal + profile prompt: time bucket, place and persona only (the stp_key fields);
    None when the state has none of them."""
    if not (state.date or state.city or state.persona or state.family_stage):
        return None
    lines = [TASK_STP, "From the time of year, the place and the kind of shopper below, say which products "
             "such shoppers need now and why.", f"week: {_week(state)}"]
    fields = (("season", state.season), ("holidays", ", ".join(state.holidays)),
              ("weather", ", ".join(state.weather)), ("city", state.city), ("climate", state.climate),
              ("persona", state.persona), ("family stage", state.family_stage))
    lines += [f"{k}: {v}" for k, v in fields if v]
    return "\n".join(lines + [ANSWER, SCHEMA_STP])


def rewrite_target(state: UserState) -> tuple[str | None, list[tuple[int | None, str]]]:
    """(the query to rewrite: the live one, else the latest past one; the earlier queries)."""
    if state.query:
        return state.query, state.queries[-MAX_QUERIES:]
    if not state.queries:
        return None, []
    return state.queries[-1][1], state.queries[-MAX_QUERIES - 1:-1]


def rewrite_prompt(state: UserState) -> str | None:
    """The query-rewrite prompt (raw query + earlier queries); None when there is no query."""
    query, earlier = rewrite_target(state)
    if query is None:
        return None
    lines = [TASK_REWRITE, "Rewrite the shopper's search query as the clean product phrase they meant: fix "
             "typos and unfinished words; a query that is already clean stays exactly as it is.",
             f"query: {_one_line(query)}"]
    if earlier:
        lines += [QUERIES_HEADER] + [f"{when(ts)} {_one_line(q)}" for ts, q in earlier]
    return "\n".join(lines + [ANSWER, SCHEMA_REWRITE])


def _intent_text(state: UserState, first: int) -> str:
    """The intent prompt with the events before index `first` left out."""
    lines = [TASK_INTENT, "Read the shopper's behaviour and profile and say what they are likely to want "
             "next (complements of what they just bought, fused interests, repurchases), each with a reason."]
    if state.at is not None:
        lines.append(f"now: {when(state.at)}")
    lines += _profile_lines(state)
    split = len(state.events) - state.n_short
    if first:
        lines.append(f"{OMITTED} {first} events")
    long_ev = state.events[first:split]
    short_ev = state.events[max(first, split):]
    if long_ev:
        lines += [LONG_HEADER] + [event_line(e) for e in long_ev]
    if short_ev:
        lines += [SHORT_HEADER] + [event_line(e) for e in short_ev]
    if state.queries:
        lines += [QUERIES_HEADER] + [f"{when(ts)} {_one_line(q)}" for ts, q in state.queries[-MAX_QUERIES:]]
    return "\n".join(lines + [ANSWER, SCHEMA_INTENT])


def intent_prompt(state: UserState, budget: Budget | None = None) -> tuple[str, bool]:
    """(prompt, truncated): the user-intent prompt, cut oldest-events-first to fit `budget`.

    If even no events fit, the shortest prompt is returned with truncated True."""
    budget = budget or Budget()
    text = _intent_text(state, 0)
    if budget.fits(text) or not state.events:
        return text, False
    lo, hi = 1, len(state.events)  # smallest number of dropped events that fits (length shrinks with it)
    while lo < hi:
        mid = (lo + hi) // 2
        if budget.fits(_intent_text(state, mid)):
            hi = mid
        else:
            lo = mid + 1
    return _intent_text(state, lo), True
