"""Finished pieces of a long job kept on disk, reused by a later run under the same settings.

    key = {"data": str(data.resolve()), "config": cfg.model_dump(exclude={"threads"})}
    if (payload := load_kept(path, key, "seed 1")) is None:
        payload = expensive()
        keep(path, key, payload)

A kept file is JSON `{"key": ..., "payload": ...}`. A file kept under another key is not reused
(the run says so and redoes that piece); `--fresh` on the job skips the lookup. This is what lets
`apps.train_ranker` seeds and `apps.ab_test` arms run as separate processes or sessions and one
later run merge them.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def load_kept(path: Path, key: dict, what: str) -> dict | None:
    """The payload kept at `path` when it was written under `key`, else None (`what` names the
    piece in the message, e.g. "seed 1" or "arm sasrec")."""
    if not path.exists():
        return None
    try:
        kept = json.loads(path.read_text())
    except json.JSONDecodeError:
        print(f"{path}: not a readable kept {what} (an interrupted write?); redoing it")
        return None
    if kept.get("key") != key:
        print(f"{path}: {what} was kept under other settings; redoing it")
        return None
    print(f"{path}: reusing the finished {what} (--fresh redoes it)")
    return kept["payload"]


def keep(path: Path, key: dict, payload: dict) -> Path:
    """Write `payload` under `key` to `path` (atomically: a crash mid-write leaves no half file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"key": key, "payload": payload}))
    os.replace(tmp, path)
    return path


def fingerprint(path: Path) -> str:
    """A short digest of a file's bytes, or of a folder's file names, sizes and modification times
    (a retrained bundle in the same folder gets a new one)."""
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        st = f.stat()
        h.update(f"{f.relative_to(path)}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]
