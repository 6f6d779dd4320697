"""Oxygen: instruction-following generative recommendation (OxygenREC) on Ray.

The package is layered (see docs/ARCHITECTURE.md, enforced by tests/test_layers.py):
`types`/`config`/`eval.metrics` < `world`/`semantic_ids`/`store`/`instructions` <
`data`/`model`/`decoding` < `training`/`recommenders`/`rl`/`eval` < `serving`.
Read the code in the order docs/ARCHITECTURE.md gives.
"""

__version__ = "0.1.0"
