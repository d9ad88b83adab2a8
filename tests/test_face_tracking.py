"""Track ids: greedy box matching, missed-frame limit, new ids for new faces."""

from __future__ import annotations

import pytest

from realtime_mer.face.tracking import Tracker, centre_distance, iou


def shifted(box, dx=0.0, dy=0.0):
    return (box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy)


A = (100.0, 100.0, 200.0, 220.0)
B = (400.0, 90.0, 520.0, 230.0)


def test_iou_and_distance():
    assert iou(A, A) == pytest.approx(1.0)
    assert iou(A, B) == 0.0
    assert iou(A, shifted(A, 50)) == pytest.approx(50 * 120 / (2 * 100 * 120 - 50 * 120))
    assert centre_distance(A, shifted(A, 30, 40)) == pytest.approx(50 / (100**2 + 120**2) ** 0.5)


def test_two_faces_keep_their_ids_while_moving_and_swapping_order():
    tr = Tracker()
    first = tr.update([A, B])
    assert sorted(first) == [0, 1]
    for step in range(1, 20):
        a, b = shifted(A, 3 * step, step), shifted(B, -2 * step)
        # detection order is not stable in a detector's output; ids must follow the boxes
        got = tr.update([b, a] if step % 2 else [a, b])
        assert (got[::-1] if step % 2 else got) == first


def test_fast_move_without_overlap_matches_by_centre_distance():
    tr = Tracker(min_iou=0.3, max_shift=0.5)
    (tid,) = tr.update([A])
    assert tr.update([shifted(A, 70)]) == [tid]  # IoU 0.18 < 0.3, centre moved 0.45 diagonals
    assert tr.update([shifted(A, 300)]) != [tid]  # too far: a new face


def test_missed_frames_limit():
    tr = Tracker(max_missed=2)
    (tid,) = tr.update([A])
    assert tr.update([]) == [] and tr.update([]) == []
    assert tr.active == {tid: 2}
    assert tr.update([A]) == [tid]  # back within the limit: same id
    for _ in range(3):
        tr.update([])
    assert tr.active == {}
    (new,) = tr.update([A])
    assert new != tid  # ids are never reused


def test_one_box_cannot_take_two_tracks():
    tr = Tracker()
    ids = tr.update([A, shifted(A, 5)])  # two overlapping faces at first sight
    assert ids[0] != ids[1]
    (only,) = tr.update([shifted(A, 2)])
    assert only in ids and len(tr.active) == 2


def test_bad_limit():
    with pytest.raises(ValueError, match="max_missed"):
        Tracker(max_missed=-1)
