"""The shop world (docs/WORLD.md): a deterministic multi-scenario e-commerce simulator.

Parts, lowest first: `knowledge` (the YAML knowledge base in kb/), `calendar` (seasons, holidays,
weather, contextual needs), `text` (titles, descriptions, noisy queries), `catalogue`, `users`,
`feedback` (the simulated user: click/cart/purchase probabilities), `sessions` (events over time),
`world` (all parts from one config; `World.load(dir)` rebuilds a generated folder's world) and
`output` (rows in the shared schema). Generate a folder with `python -m apps.world --out DIR`.
"""
