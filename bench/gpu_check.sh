#!/usr/bin/env bash
# GPU check (issue 15): environment, decoding vs HF generate, training MFU and one serving request per
# scenario on one GPU, in under 10 minutes; flags pass through to `python -m bench.gpu_check` (its
# docstring lists them). Exit status: 0 pass, 1 a part failed, 2 no CUDA GPU visible.
#
#   bash bench/gpu_check.sh --out runs/gpu_check              # on a GPU machine
#   bash bench/gpu_check.sh --dry-run --out /tmp/gpu_check    # the same code path on the CPU, tiny sizes
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export HF_HUB_OFFLINE=1
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
if [ -x "$ROOT/.venv/bin/python" ]; then
  PY="$ROOT/.venv/bin/python"
else
  PY=python
fi
exec "$PY" -m bench.gpu_check "$@"
