"""`python -m apps.train --workers 2` trains through Ray Train (DDP over gloo) and, killed mid-run
(SIGKILL to its whole process group, Ray included), resumes from its last checkpoint when the same
command is started again: the finished history has every epoch once, and the resumed epochs
continue the killed run (the same train loss as an uninterrupted run)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from apps import world as world_app
from oxygen.data.io import load_dataset
from oxygen.semantic_ids.codebook import Codebook

ROOT = Path(__file__).resolve().parents[2]
EPOCHS = 6


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A tiny shop world and random unique 3-level SIDs for its catalogue (no text encoder)."""
    d = tmp_path_factory.mktemp("world")
    world_app.main(["--out", str(d), "--items", "300", "--users", "200", "--days", "20", "--seed", "2", "--quiet"])
    ids = np.array(sorted(it.item_id for it in load_dataset(d, splits=("train",)).items))
    rng = np.random.default_rng(0)
    grid = np.array(np.meshgrid(*[np.arange(8)] * 3, indexing="ij")).reshape(3, -1).T
    sids = tmp_path_factory.mktemp("sids")
    Codebook(item_ids=ids, codes=grid[rng.choice(len(grid), len(ids), replace=False)], widths=[8, 8, 8]).save(sids)
    return d, sids


def _command(data: Path, sids: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "apps.train", "--data", str(data), "--sids", str(sids), "--out", str(out),
            "--workers", "2", "--set", "model.d_model=32", "--set", "model.d_ff=64", "--set", "eval_beam=10",
            "--set", f"train.epochs={EPOCHS}", "--set", "train.patience=50", "--set", "train.threads=2",
            "--set", "train.max_valid_rows=40", "--set", "use_queries=false"]


def _env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(ROOT)}


def _checkpoints(out: Path) -> int:
    return len(list((out / "ray_train").glob("fit-*/checkpoint_*")))


def _registered(out: Path) -> int:
    """Checkpoints Ray Train has registered in its run snapshot: what a restarted run can resume
    from. A checkpoint folder appears before the controller registers it, so a kill timed on the
    folders alone may leave nothing to resume from."""
    count = 0
    for path in (out / "ray_train").glob("fit-*/checkpoint_manager_snapshot.json"):
        try:
            count = max(count, len(json.loads(path.read_text())["checkpoint_results"]))
        except (ValueError, KeyError, OSError):  # being written
            pass
    return count


def test_killed_run_resumes_from_its_last_checkpoint(dataset, tmp_path):
    data, sids = dataset
    out = tmp_path / "train"
    log = open(tmp_path / "first.log", "w")
    first = subprocess.Popen(_command(data, sids, out), cwd=ROOT, env=_env(), stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
    deadline = time.time() + 300
    while _registered(out) < 2 and first.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    killed_at = _checkpoints(out)
    assert 2 <= killed_at < EPOCHS, (killed_at, (tmp_path / "first.log").read_text()[-3000:])
    time.sleep(3)  # let the killed run's Ray processes notice and exit
    second = subprocess.run(_command(data, sids, out), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    logs = second.stdout + second.stderr
    resumed = [int(line.rsplit(" ", 1)[1]) for line in logs.splitlines() if "resuming from the checkpoint after epoch" in line]
    assert resumed and 1 <= resumed[0] <= killed_at, logs[-3000:]  # a reported checkpoint, not a fresh start
    history = json.loads((out / "result.json").read_text())["fit_info"]["history"]
    assert [h["epoch"] for h in history] == list(range(1, EPOCHS + 1))
    assert (out / "bundle" / "model").exists() and (out / "curve.png").exists()
