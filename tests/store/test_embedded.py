"""The embedded redis-server: it answers on 127.0.0.1 only, on its own port, stops (and cleans up)
on context exit, persists only when asked, refuses to start on a port another server holds; and
`redis_url()` prefers $REDIS_URL, else one process-wide live server that dies with the process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from oxygen.store import embedded
from oxygen.store.embedded import EmbeddedRedis, redis_url

ROOT = Path(__file__).resolve().parents[2]


def accepts(host: str, port: int) -> bool:
    """Whether a TCP connection to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def test_serves_on_loopback_only():
    with EmbeddedRedis() as s:
        assert s.running and s.url == f"redis://127.0.0.1:{s.port}/0"
        client = redis.Redis.from_url(s.url)
        assert client.ping()
        assert client.info("server")["process_id"] == s.proc.pid     # our child, not some other server
        assert client.config_get("bind") == {"bind": "127.0.0.1"}
        assert accepts("127.0.0.1", s.port) and not accepts("127.0.0.2", s.port)


def test_stops_on_context_exit():
    with EmbeddedRedis() as s:
        port, data_dir = s.port, s.dir
        assert accepts("127.0.0.1", port) and os.path.isdir(data_dir)
    assert not s.running and s.proc is None
    assert not accepts("127.0.0.1", port) and not os.path.exists(data_dir)
    s.stop()                                             # idempotent


def test_stops_when_the_body_raises():
    with pytest.raises(KeyError):
        with EmbeddedRedis() as s:
            raise KeyError("boom")
    assert not s.running and not accepts("127.0.0.1", s.port)


def test_two_servers_are_separate():
    with EmbeddedRedis() as a, EmbeddedRedis() as b:
        assert a.port != b.port and a.dir != b.dir
        redis.Redis.from_url(a.url).set("k", "a")
        assert redis.Redis.from_url(b.url).get("k") is None
        assert redis.Redis.from_url(a.url).get("k") == b"a"


def test_port_held_by_another_server_is_an_error():
    with EmbeddedRedis() as a:
        redis.Redis.from_url(a.url).set("k", "a")
        with pytest.raises(RuntimeError, match=f"port {a.port}"):
            EmbeddedRedis(port=a.port).start(timeout_s=5)
        assert redis.Redis.from_url(a.url).get("k") == b"a"   # the first server is untouched


def test_restart_after_stop():
    s = EmbeddedRedis().start()
    s.stop()
    try:
        assert redis.Redis.from_url(s.start(timeout_s=5).url).ping()
    finally:
        s.stop()


def shut_down(s: EmbeddedRedis) -> Path:
    """SIGTERM the server as a crash or deploy would, keeping its data directory; return it."""
    s.proc.terminate()
    s.proc.wait(timeout=5)
    return Path(s.dir)


@pytest.mark.parametrize("persist", [False, True])
def test_persist_writes_a_snapshot_at_shutdown(persist):
    s = EmbeddedRedis(persist=persist).start()
    try:
        client = redis.Redis.from_url(s.url)
        assert (client.config_get("save")["save"] != "") == persist
        assert client.config_get("appendonly") == {"appendonly": "no"}
        client.set("k", "v")
        assert (shut_down(s) / "dump.rdb").exists() == persist
    finally:
        s.stop()
    assert not os.path.exists(s.dir)


def test_redis_url_prefers_the_environment(monkeypatch):
    monkeypatch.setattr(embedded, "_DEFAULT", None)
    monkeypatch.setenv("REDIS_URL", "redis://cache.example:6380/2")
    assert redis_url() == "redis://cache.example:6380/2"
    assert embedded._DEFAULT is None                     # no embedded server was started


def test_redis_url_starts_one_live_server(monkeypatch):
    monkeypatch.setattr(embedded, "_DEFAULT", None)      # a default of our own, to stop at the end
    monkeypatch.setenv("REDIS_URL", "")                  # empty counts as unset
    url = redis_url()
    try:
        assert url.startswith("redis://127.0.0.1:") and redis.Redis.from_url(url).ping()
        assert redis_url() == url and redis_url() == url
        first = embedded._DEFAULT
        first.stop()                                     # a dead default is replaced by a live one
        again = redis_url()
        assert embedded._DEFAULT is not first and redis.Redis.from_url(again).ping()
    finally:
        if embedded._DEFAULT is not None:
            embedded._DEFAULT.stop()


def test_redis_url_server_stops_at_interpreter_exit():
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    code = "from oxygen.store.embedded import redis_url; print(redis_url())"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60, check=True).stdout
    port = int(out.strip().rsplit(":", 1)[1].split("/")[0])
    deadline = time.time() + 5
    while accepts("127.0.0.1", port) and time.time() < deadline:
        time.sleep(0.05)
    assert not accepts("127.0.0.1", port)


def test_a_client_without_the_password_is_refused():
    with EmbeddedRedis(password="s3cret-pw") as s:
        assert s.url.startswith("redis://:s3cret-pw@127.0.0.1:")
        assert redis.Redis.from_url(s.url).ping()
        with pytest.raises(redis.exceptions.AuthenticationError):
            redis.Redis(port=s.port).get("k")
        with pytest.raises(redis.exceptions.AuthenticationError):
            redis.Redis(port=s.port, password="wrong").get("k")


def test_aof_keeps_the_stream_and_its_group_across_a_restart(tmp_path):
    s = EmbeddedRedis(aof=True, data_dir=str(tmp_path / "redis")).start()
    try:
        client = redis.Redis.from_url(s.url)
        client.xgroup_create("ev", "g", id="0", mkstream=True)
        client.xadd("ev", {"event": "1"})
        client.xreadgroup("g", "w1", {"ev": ">"})             # pending under w1
        client.xadd("ev", {"event": "2"})
        time.sleep(1.2)                                       # appendfsync everysec
        s.stop()
        assert (tmp_path / "redis").is_dir()                  # a given data_dir is kept
        s.start()
        client = redis.Redis.from_url(s.url)
        assert client.xlen("ev") == 2 and client.xpending("ev", "g")["pending"] == 1
        assert len(client.xreadgroup("g", "w2", {"ev": ">"})[0][1]) == 1  # only the unread one
    finally:
        s.stop()
