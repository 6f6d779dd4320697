"""Merge the usable branch outputs of one user into the final instruction record (Appendix B shape):
a short natural instruction text, the reasons behind it, and which branches contributed.

    rec = combine(state, stp=StpOut(...), rewrite=None, intent=IntentOut(...), unusable=["rewrite"])
    rec.text      # "Winter in Harbin for young parents: warm baby sleepwear, dehumidifier; complements ..."
    rec.reasons   # ["baby sleepwear: winter in a cold city for young parents", ...]

With a `NeedVocabulary` (the catalogue's words), the record also says which of the stated needs are
still open, i.e. name a category the user's history does not hold (`open_categories`, strongest
first, and their number `open_needs`; None when there is nothing to judge): serving guides only
those requests when the bundle's guidance is gated, and fills a bundle's need slots from them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from oxygen.instructions.branches import IntentOut, RewriteOut, StpOut
from oxygen.instructions.needs import NeedVocabulary, open_categories
from oxygen.instructions.state import UserState

CLAUSE_SEP = "; "  # joins an instruction's parts (the embedding averages them: instructions.pipeline)
MAX_NEEDS_IN_TEXT = 3
MAX_INTENTS_IN_TEXT = 3


@dataclass
class Instruction:
    """One user's generated instruction (before embedding; `oxygen.store.instructions.InstructionRecord`
    is what is stored): text, reasons, contributing and unusable branches."""

    user_id: str
    text: str
    reasons: list[str]
    branches: list[str]  # contributing branches, of "stp", "rewrite", "intent"
    unusable: list[str] = field(default_factory=list)  # branches whose output did not parse
    truncated: bool = False  # the behaviour prompt was cut oldest-first to fit the budget
    at: int | None = None  # the state time t the instruction was generated for
    query: str | None = None  # the rewritten query, when the rewrite branch contributed
    backend: str = ""
    version: str = ""
    open_needs: int | None = None  # stated needs whose category is not in the history (None: not judged)
    open_categories: list[str] | None = None  # those categories, strongest need first (need slots decode in them)

    def to_dict(self) -> dict:
        """A JSON-ready dict of every field."""
        return asdict(self)


def _stp_header(state: UserState) -> str:
    """"Winter in Harbin for young parents" from the state's situation, place and persona."""
    when = (state.holidays[0] if state.holidays else state.season or "now").replace("_", " ")
    head = when[:1].upper() + when[1:]
    if state.city:
        head += f" in {state.city}"
    who = state.persona or state.family_stage
    return head + (f" for {who.replace('_', ' ')}" if who else "")


def combine(state: UserState, stp: StpOut | None, rewrite: RewriteOut | None, intent: IntentOut | None,
            unusable: list[str] | None = None, truncated: bool = False,
            vocab: NeedVocabulary | None = None) -> Instruction | None:
    """The record of `state`'s user from the branch outputs that parsed (None = unusable or skipped);
    None when no branch has anything to say. `vocab`: judge which STP needs are open."""
    parts, reasons, branches = [], [], []
    if stp is not None and stp.needs:
        parts.append(f"{_stp_header(state)}: " + ", ".join(n.need for n in stp.needs[:MAX_NEEDS_IN_TEXT]))
        reasons += [f"{n.need}: {n.reason}" for n in stp.needs]
        branches.append("stp")
    if intent is not None and intent.intents:
        parts += [i.instruction for i in intent.intents[:MAX_INTENTS_IN_TEXT]]
        reasons += [f"{i.kind}: {i.reason}" for i in intent.intents]
        branches.append("intent")
    query = None
    if rewrite is not None:
        query = rewrite.query
        parts.append(f"searching for {query}")
        reasons.append(f"search: recently searched for {query}")
        branches.append("rewrite")
    if not parts:
        return None
    needs = [n.need for n in stp.needs] if stp is not None else []
    cats = open_categories(state, needs, vocab) if vocab is not None and needs else None
    return Instruction(user_id=state.user_id, text=CLAUSE_SEP.join(parts), reasons=reasons, branches=branches,
                       unusable=list(unusable or []), truncated=truncated, at=state.at, query=query,
                       open_needs=None if cats is None else len(cats), open_categories=cats)
