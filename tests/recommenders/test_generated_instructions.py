"""Generated instructions (GenerativeConfig.instructions) reach the rows they were written for:
valid/test rows always, training rows only with `instructions.train` (less the `dropout` share,
the same rows every time); search rows keep their query; the vector is the normalised mean of the
clause vectors; a records file without the needed fields is a DataError naming file and line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from apps import instructions as instructions_app
from oxygen.config import GenerativeConfig
from oxygen.data.io import DataError
from oxygen.instructions.pipeline import instruction_vectors, read_instructions
from oxygen.recommenders.generative import GenerativeRecommender
from oxygen.semantic_ids.text_encoder import encode_texts
from oxygen.training.prepare import dropped
from tests.worlds import tiny_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d, sids = tmp_path_factory.mktemp("world"), tmp_path_factory.mktemp("sids")
    ds = tiny_world(d, sids, users=80, seed=5)
    rows = d / "rows.jsonl"
    instructions_app.main(["generate", "--data", str(d), "--backend", "knowledge", "--per-row", "--out", str(rows)])
    return ds, sids, rows


def _fit(ds, sids, rows, train: bool, dropout: float = 0.0) -> GenerativeRecommender:
    cfg = GenerativeConfig.model_validate({
        "sid_dir": str(sids), "eval_beam": 10, "instructions": {"file": str(rows), "train": train, "dropout": dropout},
        "model": {"d_model": 32, "d_ff": 64, "enc_layers": 1, "dec_layers": 1},
        "train": {"epochs": 1, "max_valid_rows": 30, "threads": 1}, "rerank": {"weights": []}})
    return GenerativeRecommender(cfg).fit(ds.splits["train"], ds.splits["valid"], ds.items)


@pytest.mark.parametrize("train", [True, False])
def test_instructions_reach_their_rows(world, train):
    ds, sids, rows = world
    rec = _fit(ds, sids, rows, train)
    keys = {(r["user_id"], r["at"]) for r in read_instructions(rows)}
    for split in ("train", "valid"):
        batch, split_rows = rec.prep.batches[split], rec.prep.rows[split]
        want = [bool(r.query) or (split != "train" or train) and (r.user_id, r.timestamp) in keys for r in split_rows]
        assert batch.instr_mask.tolist() == want, split
    r = next(i for i, row in enumerate(ds.splits["valid"]) if not row.query and row.user_id and
             (row.user_id, row.timestamp) in keys)
    want = rec.generated.get(ds.splits["valid"][r])
    assert np.allclose(rec.prep.batches["valid"].instr_emb[r].numpy(), want, atol=1e-6)


def test_instruction_vector_is_the_normalised_clause_mean():
    texts = ["Winter in Harbin for young parents: baby sleepwear", "complements for the new phone: case"]
    got = instruction_vectors(["; ".join(texts)], progress=False)[0]
    parts = encode_texts(texts, progress=False).mean(0)
    assert np.allclose(got, parts / np.linalg.norm(parts), atol=1e-5)


def test_a_records_file_without_times_is_a_data_error(tmp_path):
    (tmp_path / "r.jsonl").write_text(json.dumps({"user_id": "u1", "text": "winter"}) + "\n")
    with pytest.raises(DataError) as err:
        read_instructions(tmp_path / "r.jsonl")
    assert err.value.line == 1 and err.value.field == "at"


def test_instructions_only_on_the_chosen_scenarios(world):
    ds, sids, rows = world
    cfg = GenerativeConfig.model_validate({
        "sid_dir": str(sids), "eval_beam": 10, "model": {"d_model": 32, "d_ff": 64, "enc_layers": 1, "dec_layers": 1},
        "instructions": {"file": str(rows), "scenarios": ["homepage"], "guidance": 0.5, "guidance_levels": [0]},
        "train": {"epochs": 1, "max_valid_rows": 30, "threads": 1}, "rerank": {"weights": []}})
    rec = GenerativeRecommender(cfg).fit(ds.splits["train"], ds.splits["valid"], ds.items)
    batch, split_rows = rec.prep.batches["train"], rec.prep.rows["train"]
    assert any(r.scenario == "homepage" and m for r, m in zip(split_rows, batch.instr_mask.tolist()))
    assert all(not m for r, m in zip(split_rows, batch.instr_mask.tolist()) if r.scenario in ("cart", "channel", "checkout"))
    b = rec.to_bundle()  # the configured guidance goes to the scenarios that read instructions, gated
    assert (b.guidance, b.guidance_gated, b.guidance_levels) == ({"homepage": 0.5}, frozenset({"homepage"}), (0,))
    rec.cfg = cfg.model_copy(update={"instructions": cfg.instructions.model_copy(update={"guidance_gated": False})})
    assert rec.to_bundle().guidance_gated == frozenset()
    rec.generated = None  # a model of the paper's scheme reads no stored instruction: nothing to guide
    assert rec.to_bundle().guidance == {}
    rec.cfg = cfg.model_copy(update={"instructions": cfg.instructions.model_copy(update={"need_slots": {"homepage": 2}})})
    cats = {it.item_id: it.categories[-1] for it in ds.items}
    slotted = rec.to_bundle(categories=cats)  # need slots serve any model, the paper's scheme too
    assert slotted.need_slots == {"homepage": 2} and slotted.categories == cats


def test_dropout_leaves_a_fixed_share_of_training_rows_with_the_default(world):
    ds, sids, rows = world
    rec = _fit(ds, sids, rows, train=True, dropout=0.5)
    keys = {(r["user_id"], r["at"]) for r in read_instructions(rows)}
    batch, split_rows = rec.prep.batches["train"], rec.prep.rows["train"]
    covered = [r for r in split_rows if not r.query and (r.user_id, r.timestamp) in keys]
    kept = [bool(r.query) or (r.user_id, r.timestamp) in keys and not dropped(r, 0.5, 0) for r in split_rows]
    assert batch.instr_mask.tolist() == kept
    share = sum(dropped(r, 0.5, 0) for r in covered) / len(covered)
    assert 0.35 < share < 0.65, share  # about half of the covered rows, picked by the hash
    valid, valid_rows = rec.prep.batches["valid"], rec.prep.rows["valid"]  # valid rows always read theirs
    assert valid.instr_mask.tolist() == [bool(r.query) or (r.user_id, r.timestamp) in keys for r in valid_rows]
    assert [dropped(r, 0.5, 1) for r in covered] != [dropped(r, 0.5, 0) for r in covered]  # the seed picks


def test_dropout_must_be_below_one():
    with pytest.raises(ValueError, match="dropout"):
        GenerativeConfig.model_validate({"instructions": {"dropout": 1.0}})
