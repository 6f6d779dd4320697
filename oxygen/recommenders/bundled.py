"""A trained bundle folder as a `Recommender`: what the simulated A/B test runs for a generative arm.

The bundle was trained and selected by `apps.train`, so `fit` does nothing. `recommend` collates
the rows in the bundle's feature space (search queries embedded with the item text encoder, as in
training: `query_lookup` / `instruction_lookup`; other rows read the model's default instruction,
or per-row generated instructions when given) and decodes every row in its scenario's item pool
through the bundle's decode path (`Bundle.decoder().decode`); rows of a scenario the bundle has no
pool for (or none) decode over the whole catalogue. Not in the registry (it needs a path): the
A/B app builds it for the arm spec `bundle:PATH`.

    rec = BundleRecommender("runs/demo/train/bundle")
    ranked = rec.fit(train, valid, items).recommend(test_rows, k=10)      # Int64[n, 10]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from oxygen.data.batching import collate
from oxygen.data.schema import Item, Row
from oxygen.decoding.decode import Decoded
from oxygen.model.bundle import CATALOGUE_POOL, Bundle
from oxygen.recommenders.base import Recommender, check_k
from oxygen.training.prepare import RowInstructions, instruction_lookup, query_lookup

CHUNK = 256  # rows collated and decoded per step of the progress bar


class BundleRecommender(Recommender):
    """recommend(rows, k) with a trained bundle: each row decoded in its scenario's pool."""

    name = "bundle"

    def __init__(self, path: Path | str | Bundle, beam: int | None = None, queries: bool | None = None,
                 generated: RowInstructions | None = None, progress: bool = True) -> None:
        """`path`: a bundle folder (or a loaded Bundle); `beam`: the beam width (None: max(k, 30));
        `queries`: embed search queries as the instruction (None: when the model reads one);
        `generated`: per-row instruction vectors for non-search rows, their gates for a bundle
        with gated guidance and their open needs for a bundle with need slots (None: the default
        instruction)."""
        super().__init__()
        self.bundle = path if isinstance(path, Bundle) else Bundle.load(path)
        if beam is not None and beam < 1:
            raise ValueError(f"beam must be >= 1; got {beam}")
        self.beam, self.queries, self.generated, self.progress = beam, queries, generated, progress
        self.decoder = self.bundle.decoder(CATALOGUE_POOL)
        self.fit_info = {"version": self.bundle.version, "scenarios": sorted(self.bundle.scenarios)}

    def fit(self, train_rows: Sequence[Row], valid_rows: Sequence[Row], items: Sequence[Item]) -> BundleRecommender:
        """Nothing to learn: the bundle was trained and selected on valid by apps.train. Returns self."""
        return self

    def refit(self, rows: Sequence[Row], items: Sequence[Item]) -> BundleRecommender:
        """Nothing to refit (the bundle is fixed). Returns self."""
        return self

    @property
    def reads_queries(self) -> bool:
        """Whether search queries are embedded: as asked, else when the model reads a reasoning
        instruction."""
        if self.queries is not None:
            return self.queries
        cfg = self.bundle.model.cfg
        return bool(cfg.use_reasoning) and cfg.instruction_placement != "none"

    def pools(self, rows: Sequence[Row]) -> list[str]:
        """Each row's decoder pool: its scenario's, else the whole catalogue's."""
        return self.bundle.pools_for([r.scenario for r in rows])

    def recommend(self, rows: Sequence[Row], k: int) -> np.ndarray:
        """Int64[len(rows), k]: each row's top-k items in its pool, best first, -1 padded (the
        bundle's re-rank mixture applied when it has one)."""
        return self.decode(rows, k).items

    def decode(self, rows: Sequence[Row], k: int, mixture: bool = True) -> Decoded:
        """Each row's top-k items in its pool with their scores: items Int64[len(rows), k] best
        first (-1 padded) and scores Float[len(rows), k] (-inf padded): the bundle's decode path
        (its re-rank mixture's probabilities when it has one, else sequence log-probs); with
        `mixture` False, the model alone (`Decoder.beam`: always sequence log-probs)."""
        check_k(k)
        rows = list(rows)
        out = Decoded(np.full((len(rows), k), -1, dtype=np.int64), np.full((len(rows), k), -np.inf))
        if not rows:
            return out
        beam = max(k, self.beam if self.beam is not None else 30)
        queries = query_lookup(rows) if self.reads_queries else None
        lookup = instruction_lookup(queries, self.generated)
        pools = self.pools(rows)
        steps = range(0, len(rows), CHUNK)
        for s in tqdm(steps, desc=f"decode {self.bundle.version}", unit="chunk", leave=False, disable=not self.progress):
            part = rows[s:s + CHUNK]
            batch = collate(part, self.bundle.space, self.bundle.collate_cfg, lookup, with_targets=False)
            gates = [self.generated.gate(r) for r in part] if self.generated is not None else None
            needs = [self.generated.needs_of(r) for r in part] if self.generated is not None else None
            if mixture:
                got = self.decoder.decode(batch, [r.history for r in part], beam, k, pools[s:s + CHUNK], gates=gates,
                                          needs=needs)
            else:
                got = Decoded(*self.decoder.beam(batch, beam, k, pools[s:s + CHUNK], gates=gates))
            width = min(k, got.items.shape[1])
            out.items[s:s + len(part), :width] = got.items[:, :width]
            out.scores[s:s + len(part), :width] = got.scores[:, :width]
        return out

    def num_params(self) -> int:
        """Trainable parameters of the bundle's model."""
        return int(self.bundle.model.num_parameters)
