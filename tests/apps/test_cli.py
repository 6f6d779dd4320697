"""Jobs fail like command-line tools: a user error is one `error: ...` line on stderr and exit
status 2 (`--debug` keeps the traceback), a bug keeps its traceback, and `--set key.path=value`
reaches the config of every job that has one. Fast: the pop model on a few-line dataset."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from apps import bench as bench_app
from apps import build_sids, cli, demo, serve, train, world
from bench import ablations as bench_ablations
from bench import seeds as bench_seeds
from oxygen.data.io import DataError

ROOT = Path(__file__).resolve().parents[2]
GOOD = {"user_id": "u", "history": [0], "target": 1}


def dataset(root: Path, bad_train_line: dict | None = None) -> Path:
    """Two items, one row per split; `bad_train_line` (if given) becomes train.jsonl line 2."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "items.jsonl").write_text('{"item_id": 0}\n{"item_id": 1}\n')
    for split in ("train", "valid", "test"):
        rows = [GOOD] + ([bad_train_line] if split == "train" and bad_train_line else [])
        (root / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def job(*args: str) -> subprocess.CompletedProcess:
    """`python -m <args>` from the repository root, offline."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def run_job(main, argv: list[str], capsys) -> tuple[int, str]:
    """`cli.run(main, argv)` as `python -m` would: (exit status, stderr)."""
    with pytest.raises(SystemExit) as e:
        cli.run(main, argv)
    return e.value.code, capsys.readouterr().err


def test_missing_data_folder_is_one_line_and_status_2(tmp_path: Path):
    p = job("apps.bench", "quality", "--data", "/nonexistent", "--model", "pop", "--out", str(tmp_path / "x.json"))
    assert p.returncode == 2
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert p.stderr.startswith("error: ") and "/nonexistent" in p.stderr


def test_debug_keeps_the_traceback(tmp_path: Path):
    p = job("apps.bench", "quality", "--data", "/nonexistent", "--model", "pop", "--out", str(tmp_path / "x.json"),
            "--debug")
    assert p.returncode != 0 and "Traceback" in p.stderr and "/nonexistent" in p.stderr


def test_bad_line_names_file_and_line(tmp_path: Path, capsys):
    data = dataset(tmp_path / "d", bad_train_line={"user_id": "u", "history": [0], "target": 7})
    code, err = run_job(bench_app.main, ["quality", "--data", str(data), "--model", "pop",
                                         "--out", str(tmp_path / "x.json")], capsys)
    assert code == 2 and err.startswith("error: ") and f"{data / 'train.jsonl'}:2:" in err
    assert "target" in err and "Traceback" not in err


@pytest.mark.parametrize("main, argv", [
    (bench_app.main, ["quality", "--data", "{data}", "--model", "pop", "--out", "{tmp}/x.json"]),
    (bench_app.main, ["quality", "--data", "{data}", "--model", "oxygen", "--out", "{tmp}/x.json"]),
    (train.main, ["--data", "{data}", "--out", "{tmp}/train"]),
    (world.main, ["--out", "{tmp}/world"]),
    (build_sids.main, ["--data", "{data}", "--out", "{tmp}/sids"]),
    (bench_seeds.main, ["run", "--data", "{data}", "--model", "pop", "--dir", "{tmp}/seeds"]),
    (bench_ablations.main, ["--data", "{data}", "--kind", "query", "--out", "{tmp}/a.json"]),
], ids=["bench-pop", "bench-oxygen", "train", "world", "build_sids", "seeds", "ablations"])
def test_bad_set_names_the_key(tmp_path: Path, capsys, main, argv):
    data = dataset(tmp_path / "d")
    argv = [a.format(data=data, tmp=tmp_path) for a in argv] + ["--set", "nosuchkey=1"]
    code, err = run_job(main, argv, capsys)
    assert code == 2 and err.startswith("error: ") and "nosuchkey" in err and "not a known field" in err


def test_config_extending_a_missing_file(tmp_path: Path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("extends: nowhere.yaml\n")
    code, err = run_job(bench_app.main, ["quality", "--data", str(dataset(tmp_path / "d")), "--model", "pop",
                                         "--config", str(cfg), "--out", str(tmp_path / "x.json")], capsys)
    assert code == 2 and "nowhere.yaml" in err and "extends" in err


def test_set_reaches_the_model_config(tmp_path: Path):
    result = bench_app.main(["quality", "--data", str(dataset(tmp_path / "d")), "--model", "pop",
                             "--set", "exclude_history=true", "--out", str(tmp_path / "x.json")])
    assert result["config"] == {"exclude_history": True}


def test_main_still_raises_and_bugs_keep_their_traceback(tmp_path: Path):
    data = dataset(tmp_path / "d", bad_train_line={"user_id": "u"})
    with pytest.raises(DataError):
        bench_app.main(["quality", "--data", str(data), "--model", "pop", "--out", str(tmp_path / "x.json")])

    def buggy(argv: list[str]) -> None:
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        cli.run(buggy, [])
    with pytest.raises(ValueError):
        cli.run(lambda argv: int("x"), ["--deb"])      # an abbreviation argparse accepts


def test_messages_are_one_line():
    assert cli.message(FileNotFoundError(2, "No such file or directory", "/x/y")) == "/x/y: No such file or directory"
    assert cli.message(ValueError("first\n  second\n")) == "first second"


@pytest.mark.parametrize("module, help_argv", [
    (world, ["--help"]), (build_sids, ["--help"]), (train, ["--help"]), (bench_app, ["quality", "--help"]),
    (serve, ["--help"]), (demo, ["--help"])], ids=["world", "build_sids", "train", "bench", "serve", "demo"])
def test_every_job_runs_through_cli_run_and_has_debug(module, help_argv: list[str], capsys):
    name = module.__name__.removeprefix("apps.")
    tree = ast.parse(Path(module.__file__).read_text())
    guard = [n for n in tree.body if isinstance(n, ast.If) and "__main__" in ast.unparse(n.test)]
    assert guard and ast.unparse(guard[0].body[0]) == "run(main)", f"apps/{name}.py: end with `run(main)`"
    with pytest.raises(SystemExit) as e:
        module.main(help_argv)
    shown = capsys.readouterr().out
    assert e.value.code == 0 and "--debug" in shown
    assert ("--set" in shown) == (name not in ("serve", "demo")), f"apps.{name}: --set where the job has a config"


def test_errors_of_loaded_modules_count_as_user_errors():
    from oxygen.store.instructions import StoreUnavailable

    assert StoreUnavailable in cli.user_errors()


def test_write_report_makes_its_folder_and_converts_with_default(tmp_path: Path):
    path = cli.write_report(tmp_path / "a" / "b.json", {"x": 1})
    assert json.loads(path.read_text()) == {"x": 1}
    with pytest.raises(TypeError):
        cli.write_report(tmp_path / "c.json", {"p": tmp_path})
    cli.write_report(tmp_path / "c.json", {"p": tmp_path}, indent=1, default=str)
    assert json.loads((tmp_path / "c.json").read_text()) == {"p": str(tmp_path)}
