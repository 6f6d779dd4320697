"""bench.tiny_bundle.catalogue_bundle: a random-weight bundle over any catalogue size, unique codes."""

from __future__ import annotations

import numpy as np

from bench.tiny_bundle import catalogue_bundle, random_bundle
from oxygen.data.schema import Item


def test_catalogue_bundle_gives_every_item_a_unique_code_beyond_16_cubed(tmp_path):
    items = [Item(item_id=i, title=f"item {i}") for i in range(5000)]  # more than 16**3 = 4096 codes
    b = catalogue_bundle(tmp_path / "b", items)
    codes = np.asarray(b.codebook.codes)
    assert len(codes) == 5000 and len({tuple(c) for c in codes}) == 5000
    assert len(b.scenarios["homepage"].pool) == 5000 and b.titles[7] == "item 7"


def test_random_bundle_has_the_asked_size_and_unique_codes(tmp_path):
    b = random_bundle(tmp_path / "r", 700)
    assert len(b.space.item_ids) == 700 == len({tuple(c) for c in np.asarray(b.codebook.codes).tolist()})
    assert len(b.scenarios["cart"].pool) == 700 and not b.titles
