"""Crop augmentation: extra rows keep the last items of long histories, aligned lists cut alike."""

from __future__ import annotations

from oxygen.data.schema import Row
from oxygen.training.prepare import crop_augment


def test_crop_augment_adds_cut_copies_of_long_rows_only():
    rows = [Row(user_id="a", history=[1, 2, 3], target=4, history_behaviours=["click", "cart", "purchase"],
                history_timestamps=[10, 20, 30]),
            Row(user_id="b", history=[5], target=6)]
    assert crop_augment(rows, 0) == rows
    out = crop_augment(rows, 1)
    assert out[:2] == rows and len(out) == 3  # b's history is already 1 item: no copy
    cut = out[2]
    assert (cut.user_id, cut.history, cut.target) == ("a", [3], 4)
    assert cut.history_behaviours == ["purchase"] and cut.history_timestamps == [30]
    assert rows[0].history == [1, 2, 3]  # the originals are untouched
    assert len(crop_augment(rows, 2)) == 3 and crop_augment(rows, 2)[2].history == [2, 3]
