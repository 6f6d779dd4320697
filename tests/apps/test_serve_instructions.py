"""`apps.serve --instructions FILE` stores every user's generated instruction (text, vector,
reasons) in Redis, where serving reads it."""

from __future__ import annotations

import json

import numpy as np

from apps.serve import load_instructions
from oxygen.store.embedded import EmbeddedRedis
from oxygen.store.instructions import InstructionStore


def test_instruction_records_are_embedded_and_stored(tmp_path):
    recs = [{"user_id": "u1", "at": 100, "text": "Winter in Harbin for young parents: baby sleepwear",
             "reasons": ["baby sleepwear: cold-humid winter"], "branches": ["stp"], "backend": "knowledge", "version": "v"},
            {"user_id": "u2", "at": 200, "text": "complements for the new phone: case", "reasons": [], "branches": ["intent"]}]
    path = tmp_path / "users.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    with EmbeddedRedis() as server:
        assert load_instructions(server.url, path) == 2
        u1, u2, u3 = InstructionStore.connect(server.url).get_many(["u1", "u2", "u3"])
    assert u3 is None and u1.text == recs[0]["text"] and u1.reasons == recs[0]["reasons"] and u1.source == "knowledge"
    assert u1.embedding.shape == (384,) and np.isclose(np.linalg.norm(u1.embedding), 1.0, atol=1e-5)
    assert u2.branches == ["intent"] and u2.created_at == 200.0
