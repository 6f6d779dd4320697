"""The orchestrator: one backend call per branch per batch, STP cached by key, failures counted."""

from __future__ import annotations

from oxygen.instructions.backends.base import BackendError
from oxygen.instructions.backends.knowledge import KnowledgeBackend
from oxygen.instructions.generator import STPCache, generate_instructions
from oxygen.instructions.prompts import TASK_STP, Budget
from tests.instructions.helpers import HOUR, T, state


class Recording:
    """Wraps a backend; records every generate call's prompts; may fail or answer garbage."""

    name, version = "recording", "1"

    def __init__(self, inner=None, fail_on=(), garbage=False, drop_one=False):
        self.inner, self.fail_on, self.garbage, self.drop_one = inner, set(fail_on), garbage, drop_one
        self.calls: list[list[str]] = []

    def generate(self, prompts, max_new_tokens=256):
        self.calls.append(list(prompts))
        if len(self.calls) in self.fail_on:
            raise BackendError("boom: the model server timed out")
        if self.garbage:
            return ["I think the user wants {stuff"] * len(prompts)
        out = self.inner.generate(prompts, max_new_tokens)
        return out[:-1] if self.drop_one else out


def _states():
    return [state([(T - HOUR, "cart", 1, "search")], user="a"), state([(T - 2 * HOUR, "click", 4, "homepage")], user="b"),
            state([(T - HOUR, "purchase", 1, "search")], user="c", city="Harbin"),
            state([], queries=[(T - HOUR, "gaming mou")], user="d")]


def test_stp_generated_once_per_key_with_hit_counts():
    backend, cache = Recording(KnowledgeBackend(coverage=1.0)), STPCache()
    records, stats = generate_instructions(_states(), backend, cache, batch_size=8)
    stp_calls = [c for c in backend.calls if c and c[0].startswith(TASK_STP)]
    assert len(stp_calls) == 1 and len(stp_calls[0]) == 2  # Shanghai/young_parents once, Harbin once
    assert (stats.cache_hits, stats.cache_misses) == (2, 2) and (cache.hits, cache.misses) == (2, 2)
    assert len(backend.calls) == 3  # one call per branch for the batch
    assert stats.parsed[("stp", "ok")] == 2 and stats.records == 4 and stats.failed == 0
    # a second run with the same cache generates no STP at all
    backend2 = Recording(KnowledgeBackend(coverage=1.0))
    _, stats2 = generate_instructions(_states(), backend2, cache)
    assert not any(c and c[0].startswith(TASK_STP) for c in backend2.calls) and stats2.cache_hits == 4
    d = next(r for r in records if r.user_id == "d")
    assert d.query == "gaming mouse" and "rewrite" in d.branches and d.backend == "recording"


def test_failing_backend_counts_users_failed_without_crashing():
    backend = Recording(KnowledgeBackend(), fail_on={1})  # the first batch's STP call raises
    records, stats = generate_instructions(_states(), backend, STPCache(), batch_size=2)
    assert stats.failed == 2 and {r.user_id for r in records} == {"c", "d"}
    assert "BackendError: boom" in stats.errors[0]
    records, stats = generate_instructions(_states(), Recording(KnowledgeBackend(), drop_one=True), batch_size=4)
    assert records == [] and stats.failed == 4 and "returned" in stats.errors[0]


def test_garbage_outputs_are_unusable_not_fatal():
    records, stats = generate_instructions(_states(), Recording(garbage=True), STPCache())
    assert records == [] and stats.failed == 0 and stats.empty == 4
    assert stats.parsed[("intent", "unusable")] == 4 and stats.parsed[("stp", "unusable")] == 2
    assert stats.parsed[("rewrite", "unusable")] == 1 and stats.skipped["rewrite"] == 3
    assert stats.to_dict()["parsed"]["intent"] == {"ok": 0, "unusable": 4}


def test_truncation_is_counted_and_recorded():
    events = [(T - (50 - i) * HOUR, "click", 1 + i % 4, "homepage") for i in range(50)]
    records, stats = generate_instructions([state(events)], KnowledgeBackend(), budget=Budget(max_chars=1500))
    assert stats.truncated == 1 and records[0].truncated
