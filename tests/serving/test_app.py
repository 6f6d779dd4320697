"""The per-process settings a replica takes from its AppArgs (oxygen.serving.app.make_core)."""

import sys

import torch

from oxygen.serving.app import AppArgs, make_core


def test_a_replica_process_takes_its_torch_threads_and_gil_switch_interval(bundle_dir, redis_server):
    before = sys.getswitchinterval(), torch.get_num_threads()
    try:
        make_core(AppArgs(bundle=str(bundle_dir), redis_url=redis_server.url, encode_queries=False,
                          torch_threads=1, gil_switch_interval_ms=2.5))
        assert abs(sys.getswitchinterval() - 0.0025) < 1e-9
        assert torch.get_num_threads() == 1
        assert AppArgs(bundle="b").gil_switch_interval_ms < 5  # shorter than Python's default
    finally:
        sys.setswitchinterval(before[0])
        torch.set_num_threads(before[1])
