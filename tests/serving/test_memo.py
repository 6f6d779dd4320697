"""LruMemo: computes only missing keys, in one call, and forgets the least recently used."""

import pytest

from oxygen.serving.memo import LruMemo


def test_missing_keys_are_computed_once_together_and_the_least_recently_used_go():
    calls: list[list[str]] = []

    def fn(keys):
        calls.append(list(keys))
        return [k.upper() for k in keys]

    memo = LruMemo(fn, size=2)
    assert memo(["b", "a", "b"]) == ["B", "A", "B"] and calls == [["a", "b"]]
    assert memo.peek(["a", "b"]) == ["A", "B"] and memo.peek(["a", "z"]) is None and len(calls) == 1
    for q in ("a", "b", "a", "c"):  # at 2 remembered values, "c" pushes out the least recently used, "b"
        memo([q])
    n = len(calls)
    memo(["a", "c"])
    assert len(calls) == n
    memo(["b"])
    assert calls[-1] == ["b"]
    with pytest.raises(ValueError, match="size >= 1"):
        LruMemo(fn, size=0)
