"""End to end: `apps.build_sids` on tiny datasets (text, fused, ID-only), determinism, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from apps.build_sids import catalogue_input, main
from oxygen.config import SIDConfig
from oxygen.semantic_ids.build import build_codebook
from oxygen.semantic_ids.codebook import Codebook
from oxygen.semantic_ids.embeddings import resolve_source

ROOT = Path(__file__).resolve().parents[2]
KINDS = {"Paper > Notebooks": ["spiral notebook {}", "ruled notepad {}", "composition book {}"],
         "Ink > Cartridges": ["black ink cartridge {}", "colour toner cartridge {}", "inkjet refill {}"],
         "Desk > Staplers": ["desktop stapler {}", "heavy duty stapler {}", "staple remover {}"]}


def _dataset(root: Path, with_text: bool, n_per_kind: int = 8, seed: int = 0) -> Path:
    g = np.random.default_rng(seed)
    items, by_kind = [], {}
    for k, (cat, names) in enumerate(KINDS.items()):
        for j in range(n_per_kind):
            iid = len(items)
            item = {"item_id": iid}
            if with_text:
                item |= {"title": names[j % 3].format(j), "categories": cat}
            items.append(item)
            by_kind.setdefault(k, []).append(iid)
    rows = []
    for u in range(60):
        seq = [int(i) for i in g.choice(by_kind[u % 3], size=4, replace=False)]
        rows += [{"user_id": f"u{u}", "history": seq[:t], "target": seq[t]} for t in range(1, 4)]
    root.mkdir(parents=True, exist_ok=True)
    (root / "items.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def _config(tmp: Path) -> Path:
    p = tmp / "sids.yaml"
    p.write_text(f"cache_dir: {tmp / 'cache'}\nbehaviour_epochs: 3\nbehaviour_batch_size: 32\n")
    return p


def _unique(codes: np.ndarray) -> bool:
    return len({tuple(r) for r in codes.tolist()}) == len(codes)


@pytest.mark.parametrize("source", ["text", "fused"])
def test_cli_end_to_end_with_text(tmp_path: Path, source: str):
    data = _dataset(tmp_path / "data", with_text=True)
    out = tmp_path / "out"
    m = main(["--data", str(data), "--out", str(out), "--source", source, "--width", "4",
              "--config", str(_config(tmp_path))])
    cb = Codebook.load(out)
    assert cb.codes.shape == (24, 3) and _unique(cb.codes) and cb.meta["source"] == source
    assert "MiniLM" in cb.meta["encoder"] or "model" in cb.meta["encoder"]
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["n_items"] == 24 and saved["coverage_n@3"] == 1.0
    # three product kinds, four level-1 clusters: the top category is well separated
    assert m["purity_l1_top"] >= 0.8


def test_id_only_dataset_gets_unique_codes(tmp_path: Path):
    data = _dataset(tmp_path / "data", with_text=False)
    out = tmp_path / "out"
    m = main(["--data", str(data), "--out", str(out), "--config", str(_config(tmp_path))])
    cb = Codebook.load(out)
    assert cb.meta["source"] == "behaviour" and cb.widths == [256, 256, 256]
    assert _unique(cb.codes) and sorted(cb.item_ids.tolist()) == list(range(24))
    assert m["coverage_n@3"] == 1.0 and "purity_l1_top" not in m
    with pytest.raises(ValueError, match="needs item text"):
        main(["--data", str(data), "--out", str(out), "--source", "text"])


def test_build_is_deterministic_with_seed(tmp_path: Path):
    cat = catalogue_input(str(_dataset(tmp_path / "data", with_text=False)))
    cfg = SIDConfig(source="behaviour", width=4, seed=3, behaviour_epochs=2)
    a, _ = build_codebook(cfg, cat)
    b, _ = build_codebook(cfg, cat)
    assert np.array_equal(a.codes, b.codes) and np.array_equal(a.raw_codes, b.raw_codes)


def test_behaviour_codes_group_co_bought_items(tmp_path: Path):
    cat = catalogue_input(str(_dataset(tmp_path / "data", with_text=False, n_per_kind=10)))
    cb, _ = build_codebook(SIDConfig(source="behaviour", width=3, levels=4, behaviour_epochs=20,
                                     behaviour_batch_size=32), cat)
    kind = np.arange(30) // 10
    top = cb.codes[:, 0]
    # items bought together (same kind) share their level-1 code far more than chance (1/3)
    same = np.equal.outer(kind, kind) & ~np.eye(30, dtype=bool)
    assert np.equal.outer(top, top)[same].mean() > 0.7


def test_resolve_source_rules():
    assert resolve_source("auto", True) == "fused" and resolve_source("auto", False) == "behaviour"
    with pytest.raises(ValueError, match="unknown source"):
        resolve_source("image", True)


def test_help_runs():
    r = subprocess.run([sys.executable, "-m", "apps.build_sids", "--help"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "--source" in r.stdout
