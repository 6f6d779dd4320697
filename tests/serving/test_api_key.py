"""The events API key: a service that listens beyond loopback refuses to start without one."""

from __future__ import annotations

import pytest

from oxygen.serving.app import AppArgs, events_api_key


def test_require_api_key_without_the_key_refuses_to_start(monkeypatch):
    monkeypatch.delenv("OXYGEN_API_KEY", raising=False)
    assert events_api_key(AppArgs(bundle="b")) is None  # loopback: the key is optional
    with pytest.raises(RuntimeError, match="set OXYGEN_API_KEY"):
        events_api_key(AppArgs(bundle="b", require_api_key=True))
    monkeypatch.setenv("OXYGEN_API_KEY", "k")
    assert events_api_key(AppArgs(bundle="b", require_api_key=True)) == "k"
