"""The training benchmark's pieces (bench.training) on a tiny world, in-process (no Ray): the analytic
FLOP count equals torch.utils.flop_counter's count of one forward + backward (SDPA on its math
backend) once the small MLP / IGR / Q2I terms (`extras_train`) are added, and the encoder-decoder
terms alone (what MFU uses) are within a few percent of it; a short loop run gives a complete
record and table row."""

from __future__ import annotations

import pytest
import torch

import bench.training as bt
from bench.peak import measure_peak
from bench.training import COMMON, SIZES, counted_flops, flops_per_sample, make_data, model_config, subset
from oxygen.config import ModelConfig
from oxygen.model import OxygenModel


@pytest.fixture(scope="module")
def prep(tmp_path_factory):
    return make_data({"items": 300, "users": 200, "days": 20, "seed": 2}, tmp_path_factory.mktemp("world"))


CASES = [("demo", {}), ("large", {}),
         ("demo", {"use_igr": False, "use_q2i": False, "instruction_placement": "two_tokens"}),
         ("demo", {"moe_experts": 4, "moe_active": 2, "use_reasoning": False})]


@pytest.mark.parametrize("size,switches", CASES, ids=["demo", "large", "no-igr-q2i-two-tokens", "moe"])
def test_analytic_flops_match_the_flop_counter(prep, size, switches):
    torch.manual_seed(0)
    cfg = ModelConfig(**{**model_config(prep, size).model_dump(), **switches})
    batch = subset(prep.batches["train"], 4)
    flops = flops_per_sample(cfg, batch)
    counted = counted_flops(OxygenModel(cfg), batch) / len(batch)
    assert flops["total_train"] == pytest.approx(counted, rel=1e-6)
    # the encoder / decoder / heads alone leave out only the small MLPs, IGR scoring and Q2I
    assert 0.95 * counted < flops["train"] < counted
    assert flops["train"] == 3 * flops["forward"]


def test_sequence_lengths(prep):
    batch = subset(prep.batches["train"], 4)
    cfg = model_config(prep, "demo")
    assert bt.sequence_lengths(cfg, batch) == (5 + 1 + 10 + 10, 2 + 3 - 1)  # profile, r, IGR k', short; P + L - 1
    no_igr = ModelConfig(**{**cfg.model_dump(), "use_igr": False, "instruction_placement": "two_tokens"})
    assert bt.sequence_lengths(no_igr, batch) == (16, 5)
    assert flops_per_sample(cfg, batch)["T"] == 26


def test_loop_run_gives_a_complete_record(prep):
    cfg = ModelConfig(**{**model_config(prep, "demo").model_dump(), "d_model": 32, "d_ff": 64})
    data = subset(prep.batches["train"], 400)
    run = bt.run_loop(cfg, data, epochs=2, batch_size=128, threads=1)
    assert len(run.epoch_seconds) == 2 and all(s > 0 for s in run.epoch_seconds)
    assert run.wall_seconds >= sum(run.epoch_seconds)
    flops = flops_per_sample(cfg, data)
    rec = bt.record("tiny", "loop", run, len(data), flops, peak=100.0, threads=1)
    assert rec["epoch_seconds"] == run.epoch_seconds[1] and rec["rows"] == 400
    assert rec["samples_per_s"] == pytest.approx(400 / run.epoch_seconds[1])
    assert rec["mfu"] == pytest.approx(rec["gflops_per_s"] / 100.0)
    assert rec["startup_seconds"] >= 0 and rec["threads_per_worker"] == 1
    assert "| tiny | loop | 1 x 1 | 400 |" in bt.table({"records": [rec]})


def test_peak_probe_and_sizes():
    assert measure_peak("cpu", torch.float32, n=256, reps=2) > 0.1
    assert SIZES["demo"]["d_model"] == 96 and SIZES["large"]["d_model"] % SIZES["large"]["n_heads"] == 0
    assert COMMON["use_item_id"] is False
