"""apps.ab_test end to end on a tiny world (arms pop, markov and a second pop): the report's JSON
keys, identical arms at zero lift, the plot; bad arms, a missing control and a folder that is no
shop world refused in one line with exit status 2."""

from __future__ import annotations

import json

import pytest

from apps.ab_test import main, parse_arms
from apps.cli import run
from bench.tiny_bundle import catalogue_bundle
from oxygen.data.io import load_dataset
from oxygen.eval.ab import METRICS
from tests.worlds import tiny_world


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("abapp")
    tiny_world(root / "w", root / "s", users=200, seed=1, items=300, days=20)
    return root / "w"


def test_ab_test_writes_report_and_plot(world_dir, tmp_path):
    out = tmp_path / "ab" / "ab.json"
    main(["--data", str(world_dir), "--arms", "pop,markov,twin=pop", "--control", "pop", "--out", str(out),
          "--set", "bootstrap=200", "--set", "k=5"])
    rep = json.loads(out.read_text())
    assert {"config", "arms", "metrics", "requests", "users", "seconds", "control", "plot"} <= set(rep)
    assert rep["config"]["k"] == 5 and rep["control"] == "pop" and list(rep["arms"]) == ["pop", "markov", "twin"]
    assert all({"fit", "recommend"} <= set(a["seconds"]) and a["params"] > 0 for a in rep["arms"].values())
    assert rep["requests"]["all"] == sum(v for s, v in rep["requests"].items() if s != "all")
    for by_scope in rep["metrics"].values():
        assert set(by_scope) == set(rep["requests"])
        for scope, r in by_scope.items():
            assert r["users"] == rep["users"][scope]
            for m in METRICS:
                assert set(r[m]) == {"value", "ci95"} and len(r[m]["ci95"]) == 2
                assert set(r["lift_vs_control"][m]) == {"value", "ci95", "significant"}
            twin = rep["metrics"]["twin"][scope]["lift_vs_control"]
            assert all(not twin[m]["significant"] and twin[m]["value"] in (0.0, None) for m in METRICS)
    png = out.with_suffix(".png")
    assert png.exists() and png.stat().st_size > 1000 and rep["plot"] == str(png)


@pytest.mark.parametrize("argv, message", [
    (["--arms", "pop,bogus"], "unknown arm 'bogus'"),
    (["--arms", "pop,markov"], "control arm 'sasrec' is not among the arms"),
    (["--arms", "pop,pop", "--control", "pop"], "repeat"),
    (["--arms", "bundle", "--control", "bundle"], "needs its folder"),
])
def test_bad_arms_exit_2_with_one_line(world_dir, tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        run(main, ["--data", str(world_dir), "--out", str(tmp_path / "x.json"), *argv])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err


def test_a_folder_without_world_json_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        run(main, ["--data", str(tmp_path), "--arms", "pop", "--control", "pop", "--out", str(tmp_path / "x.json")])
    assert e.value.code == 2
    assert "needs a shop-world folder written by python -m apps.world" in capsys.readouterr().err


def test_arm_specs_take_names_configs_and_oracle_objectives(tmp_path):
    cfg = tmp_path / "sasrec.yaml"
    cfg.write_text("hidden: 16\n")
    arms = parse_arms(f"a=pop, b=pop, sasrec:{cfg}, oracle:click, best=oracle")
    assert [(a.name, a.kind, a.arg) for a in arms] == [
        ("a", "pop", None), ("b", "pop", None), ("sasrec", "sasrec", str(cfg)), ("oracle", "oracle", "click"),
        ("best", "oracle", None)]
    with pytest.raises(FileNotFoundError, match="not found"):
        parse_arms("sasrec:/nonexistent.yaml")


def test_a_bundle_arm_runs(world_dir, tmp_path):
    catalogue_bundle(tmp_path / "b", load_dataset(world_dir).items)
    out = main(["--data", str(world_dir), "--arms", f"pop,sft=bundle:{tmp_path / 'b'}", "--control", "pop",
                "--out", str(tmp_path / "ab.json"), "--set", "bootstrap=100", "--set", "requests=20"])
    assert out["arms"]["sft"]["kind"] == "bundle" and out["arms"]["sft"]["params"] > 0
    assert out["requests"]["all"] == 20 and set(out["metrics"]) == {"pop", "sft"}


def test_the_valid_period_can_be_the_requests(world_dir, tmp_path):
    out = tmp_path / "abv" / "ab.json"
    rep = main(["--data", str(world_dir), "--arms", "pop,markov", "--control", "pop", "--out", str(out),
                "--set", "bootstrap=200", "--set", "split=valid"])
    ds = load_dataset(world_dir)
    assert rep["config"]["split"] == "valid" and rep["requests"]["all"] == min(3000, len(ds.splits["valid"]))


def test_arms_run_apart_merge_like_one_run(world_dir, tmp_path, capsys):
    common = ["--data", str(world_dir), "--control", "pop", "--set", "bootstrap=200", "--set", "requests=200"]
    together = main([*common, "--arms", "pop,markov", "--out", str(tmp_path / "one.json")])
    main([*common, "--arms", "pop", "--out", str(tmp_path / "apart.json")])
    capsys.readouterr()
    merged = main([*common, "--arms", "pop,markov", "--out", str(tmp_path / "apart.json")])
    out = capsys.readouterr().out
    assert "reusing the finished arm pop" in out and "arm markov" not in out.split("reusing")[0]
    assert sorted(p.name for p in (tmp_path / "apart.arms").iterdir()) == ["markov.json", "pop.json"]
    assert merged["metrics"] == together["metrics"]
    other = main([*common, "--set", "k=5", "--arms", "pop", "--out", str(tmp_path / "apart.json")])
    assert "kept under other settings" in capsys.readouterr().out and other["config"]["k"] == 5
    main([*common, "--arms", "pop", "--fresh", "--out", str(tmp_path / "apart.json")])
    assert "reusing" not in capsys.readouterr().out
