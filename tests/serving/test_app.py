"""The per-process settings a replica takes from its AppArgs (oxygen.serving.app.make_core), checked
in a fresh process as a replica's (this test process's torch threads depend on the tests before)."""

import json
import subprocess
import sys

from oxygen.serving.app import AppArgs

SCRIPT = """
import json, sys, torch
from oxygen.serving.app import AppArgs, make_core
make_core(AppArgs(bundle=sys.argv[1], redis_url=sys.argv[2], encode_queries=False, torch_threads=1,
                  gil_switch_interval_ms=2.5))
print(json.dumps({"switch": sys.getswitchinterval(), "threads": torch.get_num_threads()}))
"""


def test_a_replica_process_takes_its_torch_threads_and_gil_switch_interval(bundle_dir, redis_server):
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(bundle_dir), redis_server.url],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert abs(got["switch"] - 0.0025) < 1e-9 and got["threads"] == 1
    assert AppArgs(bundle="b").gil_switch_interval_ms < 5  # shorter than Python's default
