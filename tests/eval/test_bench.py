"""`python -m apps.bench quality` end to end on a tiny dataset written to tmp, and the registry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from apps.bench import main, parse_args
from oxygen.data.io import write_jsonl
from oxygen.data.schema import Item, Row
from oxygen.eval.ranking import evaluate_rows
from oxygen.recommenders.pop import PopRecommender

KEYS = ("hr@1", "hr@3", "hr@5", "hr@10", "ndcg@3", "ndcg@5", "ndcg@10", "recall@10", "params",
        "train_seconds")


def tiny_dataset(root: Path, scenarios: bool) -> Path:
    """12 ID-only items; users walk i -> i+1 (mod 12); splits chain like train/valid/test.jsonl."""
    rng = np.random.default_rng(0)
    write_jsonl(root / "items.jsonl", [Item(item_id=i) for i in range(12)])
    splits: dict[str, list[Row]] = {"train": [], "valid": [], "test": []}
    for u in range(30):
        start = int(rng.integers(0, 12))
        seq = [(start + j) % 12 for j in range(6)]
        scen = ("search", "cart")[u % 2] if scenarios else None
        for j in range(1, 6):
            split = "train" if j < 4 else ("valid" if j == 4 else "test")
            splits[split].append(Row(user_id=f"u{u}", history=seq[:j], target=seq[j], scenario=scen))
    for name, rows in splits.items():
        write_jsonl(root / f"{name}.jsonl", rows)
    return root


def test_quality_cli_writes_the_json_keys(tmp_path: Path, capsys):
    data = tiny_dataset(tmp_path / "data", scenarios=True)
    out = tmp_path / "res" / "markov.json"
    main(["quality", "--data", str(data), "--model", "markov", "--out", str(out)])
    result = json.loads(out.read_text())
    for key in KEYS:
        assert key in result, key
    assert result["hr@1"] == 1.0                          # the walk is fully predictable
    assert set(result["test"]["by_scenario"]) == {"search", "cart"}
    assert result["test"]["by_scenario"]["cart"]["rows"] == 15
    assert result["valid"]["overall"]["hr@10"] == 1.0
    printed = capsys.readouterr().out
    assert "overall" in printed and "search" in printed


def test_quality_cli_with_config_and_no_scenarios(tmp_path: Path):
    data = tiny_dataset(tmp_path / "data", scenarios=False)
    cfg = tmp_path / "pop.yaml"
    cfg.write_text("exclude_history: true\n")
    out = tmp_path / "pop.json"
    result = main(["quality", "--data", str(data), "--model", "pop", "--config", str(cfg),
                   "--out", str(out)])
    assert result["test"]["by_scenario"] == {} and result["config"] == {"exclude_history": True}
    bad = tmp_path / "bad.yaml"
    bad.write_text("exclude_hisotry: true\n")
    with pytest.raises(ValueError, match="exclude_hisotry"):
        main(["quality", "--data", str(data), "--model", "pop", "--config", str(bad), "--out", str(out)])


def test_help_and_model_choices():
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    with pytest.raises(SystemExit):
        parse_args(["quality", "--data", "d", "--model", "nope", "--out", "o.json"])


def test_evaluate_rows_rejects_a_malformed_recommender():
    class Broken(PopRecommender):
        def recommend(self, rows, k):
            return np.zeros((len(rows), k - 1), dtype=np.int64)

    rows = [Row(user_id="u", history=[0], target=1)]
    rec = Broken().fit(rows, [], [Item(item_id=0), Item(item_id=1)])
    with pytest.raises(ValueError, match="must return"):
        evaluate_rows(rec, rows, 10)


def test_refit_selects_on_valid_then_counts_valid_rows(tmp_path: Path):
    """--refit: the valid report comes from the train-only model, the test one from train+valid."""
    root = tmp_path / "data"
    write_jsonl(root / "items.jsonl", [Item(item_id=i) for i in range(6)])
    # 1 -> 2 is seen only in valid; test asks what follows 1.
    write_jsonl(root / "train.jsonl", [Row(user_id=f"a{u}", history=[0], target=1) for u in range(3)]
                + [Row(user_id=f"b{u}", history=[1], target=3) for u in range(1)])
    write_jsonl(root / "valid.jsonl", [Row(user_id=f"c{u}", history=[1], target=2) for u in range(4)])
    write_jsonl(root / "test.jsonl", [Row(user_id="d", history=[5, 1], target=2)])
    plain = main(["quality", "--data", str(root), "--model", "markov", "--k", "1", "--out", str(tmp_path / "p.json")])
    refit = main(["quality", "--data", str(root), "--model", "markov", "--k", "1", "--refit",
                  "--out", str(tmp_path / "r.json")])
    assert plain["hr@1"] == 0.0 and refit["hr@1"] == 1.0 and refit["refit"] and not plain["refit"]
    assert refit["valid"] == plain["valid"]  # selection figures come from the train-only fit
    (root / "valid.jsonl").write_text("")
    with pytest.raises(ValueError, match="refit needs valid"):
        main(["quality", "--data", str(root), "--model", "markov", "--refit", "--out", str(tmp_path / "x.json")])
