"""`python -m apps.train_instructor`: pairs JSONL in, a loadable HF folder out; a bad pairs file or
--set is one `error:` line and exit status 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from apps import train_instructor
from oxygen.data.io import DataError
from tests.instructions.tiny_lm import toy_pairs

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--set", "lm.vocab_size=300", "--set", "lm.hidden=64", "--set", "lm.heads=2", "--set", "lm.layers=1",
        "--set", "lm.intermediate=64", "--set", "lm.ctx=96", "--set", "lm.epochs=2"]


def write_pairs(path: Path, pairs) -> Path:
    path.write_text("".join(json.dumps({"prompt": p, "completion": c, "branch": "toy"}) + "\n" for p, c in pairs))
    return path


def test_trains_from_a_pairs_file_and_splits_valid(tmp_path):
    pairs = write_pairs(tmp_path / "pairs.jsonl", toy_pairs(60, 0))
    meta = train_instructor.main(["--pairs", str(pairs), "--out", str(tmp_path / "lm"), *TINY,
                                  "--set", "valid_frac=0.1"])
    assert (meta["train_pairs"], meta["valid_pairs"]) == (54, 6)
    assert meta["config"]["hidden"] == 64 and len(meta["history"]) == 2
    assert json.loads((tmp_path / "lm" / "oxygen.json").read_text())["version"] == meta["version"]


def test_a_bad_pairs_line_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": "only"}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2"):
        train_instructor.read_pairs(bad)
    with pytest.raises(ValueError, match="at least 2"):
        train_instructor.split([("a", "b")], 0.1, 0)


def test_command_line_errors_are_one_line_and_exit_2(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    pairs = write_pairs(tmp_path / "pairs.jsonl", toy_pairs(4, 0))
    for args, needle in ((["--pairs", str(tmp_path / "missing.jsonl")], "file not found"),
                         (["--pairs", str(pairs), "--set", "lm.heads=3"], "32 or 64"),
                         (["--data", str(tmp_path), "--stp-ahead", "-1"], "--stp-ahead must be 0 or more")):
        r = subprocess.run([sys.executable, "-m", "apps.train_instructor", *args, "--out", str(tmp_path / "o")],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert lines[-1].startswith("error: ") and needle in lines[-1] and "Traceback" not in r.stderr


def test_data_pairs_add_calendar_stp_prompts_once_each(tmp_path):
    from apps import world as world_app
    from oxygen.instructions.pipeline import branch_of
    world_app.main(["--out", str(tmp_path / "w"), "--items", "300", "--users", "40", "--days", "14", "--seed", "2", "--quiet"])
    common = ["--data", str(tmp_path / "w"), "--rows", "60", "--out", str(tmp_path / "o")]
    rows_only = train_instructor.pair_source(train_instructor.parse_args([*common, "--stp-contexts", "0"]), 3000)
    pairs = train_instructor.pair_source(train_instructor.parse_args([*common, "--stp-contexts", "150"]), 3000)
    stp = [p for p, _ in pairs if branch_of(p) == "stp"]
    assert pairs[:len(rows_only)] == rows_only and len(stp) == len(set(stp))
    assert len(stp) > sum(branch_of(p) == "stp" for p, _ in rows_only)
    assert len(train_instructor.read_pairs(tmp_path / "o" / "pairs.jsonl")) == len(pairs)
