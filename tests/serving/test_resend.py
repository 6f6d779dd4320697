"""The split layout's front sends a read-only call again when its back replica dies under it
(oxygen.serving.app.call_back), and never sends `ingest` twice."""

from __future__ import annotations

import asyncio

import pytest
from ray.exceptions import ActorDiedError, RayTaskError

from oxygen.serving.app import READ_ONLY, call_back


class Method:
    """A handle method whose calls play `outcomes` in turn (an exception is raised when awaited)."""

    def __init__(self, outcomes: list) -> None:
        self.outcomes, self.calls = outcomes, 0

    def remote(self, *args):
        outcome = self.outcomes[self.calls]
        self.calls += 1

        async def answer():
            if isinstance(outcome, Exception):
                raise outcome
            return (outcome, args)
        return answer()


class Back:
    """A DeploymentHandle stand-in with one Method per model-side call."""

    def __init__(self, **methods: list) -> None:
        for name, outcomes in methods.items():
            setattr(self, name, Method(outcomes))


def run(back: Back, method: str, resends: list) -> object:
    return asyncio.run(call_back(back, method, ("req",), lambda: resends.append(method)))


@pytest.mark.parametrize("method", sorted(READ_ONLY))
def test_a_read_only_call_is_sent_again_after_its_replica_died(method):
    back, resends = Back(**{method: [ActorDiedError(), "answer"]}), []
    assert run(back, method, resends) == ("answer", ("req",))
    assert getattr(back, method).calls == 2 and resends == [method]


def test_a_call_that_succeeds_is_sent_once():
    back, resends = Back(recommend=["answer", "second"]), []
    assert run(back, "recommend", resends) == ("answer", ("req",))
    assert back.recommend.calls == 1 and resends == []


def test_ingest_is_not_sent_twice():
    back, resends = Back(ingest=[ActorDiedError(), "answer"]), []
    with pytest.raises(ActorDiedError):
        run(back, "ingest", resends)
    assert back.ingest.calls == 1 and resends == []


def test_a_second_death_propagates_and_other_errors_are_not_resent():
    back = Back(recommend=[ActorDiedError(), ActorDiedError()])
    with pytest.raises(ActorDiedError):
        run(back, "recommend", [])
    assert back.recommend.calls == 2
    back = Back(recommend=[RayTaskError("recommend", "traceback", ValueError("bad")), "answer"])
    with pytest.raises(RayTaskError):
        run(back, "recommend", [])
    assert back.recommend.calls == 1
