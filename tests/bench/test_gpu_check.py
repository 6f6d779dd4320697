"""The GPU check (bench/gpu_check.sh -> bench.gpu_check) on this CPU: its --dry-run runs the same code
path as on a GPU with tiny sizes, in-process and through the shell script, and writes a complete
JSON (every decode legal, a positive training MFU, k legal items for every scenario) and the
markdown tables; without --dry-run and without a GPU it refuses with one line naming cuda, exit 2."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch

from bench.gpu_check import PARTS, main

ROOT = Path(__file__).resolve().parents[2]
KEYS = {"environment", "decoding", "training", "serving", "dry_run"}


def _check_report(out: Path) -> dict:
    report = json.loads((out / "gpu_check.json").read_text())
    assert KEYS <= set(report) and report["dry_run"] is True and report["failed"] == []
    env = report["environment"]
    assert env["torch"] == torch.__version__ and env["cpu_count"] == os.cpu_count() and env["device"] == "cpu"
    cases = report["decoding"]["cases"]
    assert [(c["items"], c["beam"]) for c in cases] == [(2000, 8), (2000, 16)]
    for case in cases:
        for engine in ("oxygen", "hf"):
            assert case[engine]["legality"] == 1.0, f"{engine} returned an illegal item at beam {case['beam']}"
        assert case["oxygen"]["uniqueness"] == 1.0
    (record,) = report["training"]["records"]
    assert record["mode"] == "loop" and record["mfu"] > 0 and record["samples_per_s"] > 0
    answers = report["serving"]["answers"]
    assert sorted(a["scenario"] for a in answers) == ["cart", "channel", "checkout", "homepage", "search"]
    for a in answers:
        assert a["ok"] and len(a["items"]) == a["k"] and a["latency_ms"] > 0, a
    assert report["checks"] == {"decoding_legal": True, "training_mfu": True, "serving_answers": True}
    md = (out / "gpu_check.md").read_text()
    assert "### Decoding" in md and "### Training" in md and "| homepage | 5 | 5 | yes |" in md
    return report


def test_dry_run_in_process(tmp_path):
    threads = torch.get_num_threads()
    try:
        assert main(["--dry-run", "--out", str(tmp_path), "--threads", "1"]) == 0
    finally:
        torch.set_num_threads(threads)
    report = _check_report(tmp_path)
    assert set(PARTS) <= set(report) and report["plan"]["sizes"] == [2000]


def test_dry_run_through_the_shell_script(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    done = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), "--dry-run", "--out", str(tmp_path / "gc"),
                           "--threads", "1"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    _check_report(tmp_path / "gc")
    assert "all checks pass" in done.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the check would run")
def test_without_a_gpu_it_refuses_unless_dry_run(tmp_path, capsys):
    assert main(["--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error: ") and "cuda" in err.lower() and "--dry-run" in err
    assert not (tmp_path / "gpu_check.json").exists()


def test_the_device_must_be_a_gpu(tmp_path):
    with pytest.raises(SystemExit) as stop:
        main(["--out", str(tmp_path), "--device", "cpu"])
    assert stop.value.code == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the check would run")
def test_the_shell_script_passes_the_exit_status(tmp_path):
    done = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "cuda" in done.stderr.lower(), (done.returncode, done.stderr[-2000:])
