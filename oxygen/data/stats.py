"""What the model's id spaces need from the train rows, as mergeable statistics.

`RowStats` is everything fitting a `FeatureSpace` (and the job around it) reads from the train
split: the row count (and how many crop copies `crop_last` adds), the profile values, the distinct
search queries (embedded once), the targets seen per scenario (the serving pools) and, when asked,
the distinct (user, a, b) transitions. `row_stats` computes it for one chunk of rows and `merge`
combines chunks, so the same numbers come from a list in memory or from the blocks of a Ray
Dataset read in parallel on a cluster (oxygen.training.ray_data) without the rows ever meeting.

    stats = merge([row_stats(chunk, pairs=True) for chunk in chunks])
    space = FeatureSpace.from_stats(item_ids, codes, stats)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from oxygen.data.schema import Row

PROFILE_FIELDS: tuple[str, ...] = ("age_band", "family_stage", "spending_power", "city", "persona")


@dataclass
class RowStats:
    """Mergeable statistics of some train rows. `pairs` is None unless transitions were asked for."""

    rows: int = 0
    crop_rows: int = 0  # rows whose history is longer than crop_last (each gets one crop copy)
    profile_values: set[tuple[str, str]] = field(default_factory=set)
    queries: set[str] = field(default_factory=set)
    scenario_targets: dict[str, set[int]] = field(default_factory=dict)
    pairs: set[tuple[str, int, int]] | None = None

    @property
    def augmented_rows(self) -> int:
        """Training rows after crop augmentation (rows + crop copies)."""
        return self.rows + self.crop_rows


def row_stats(rows: Iterable[Row], pairs: bool = False, crop_last: int = 0) -> RowStats:
    """The statistics of `rows` (`pairs`: also the distinct transitions; `crop_last` > 0: count
    the rows that crop augmentation copies)."""
    st = RowStats(pairs=set() if pairs else None)
    for r in rows:
        st.rows += 1
        st.crop_rows += int(crop_last > 0 and len(r.history) > crop_last)
        if r.profile:
            st.profile_values.update((f, v) for f in PROFILE_FIELDS if (v := getattr(r.profile, f)) is not None)
        if r.query:
            st.queries.add(r.query)
        if r.scenario:
            st.scenario_targets.setdefault(r.scenario, set()).add(r.target)
        if st.pairs is not None:
            st.pairs.update((r.user_id, a, b) for a, b in pairwise((*r.history, r.target)))
    return st


def merge(parts: Sequence[RowStats]) -> RowStats:
    """One RowStats from several (the transitions kept only if every part has them)."""
    out = RowStats(pairs=set() if parts and all(p.pairs is not None for p in parts) else None)
    for p in parts:
        out.rows += p.rows
        out.crop_rows += p.crop_rows
        out.profile_values |= p.profile_values
        out.queries |= p.queries
        for s, targets in p.scenario_targets.items():
            out.scenario_targets.setdefault(s, set()).update(targets)
        if out.pairs is not None:
            out.pairs |= p.pairs
    return out
