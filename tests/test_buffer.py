import tracemalloc

import numpy as np
import pytest

from realtime_mer.buffer import FaceRing


def _img(i: int) -> np.ndarray:
    return np.full((8, 8, 3), i % 256, np.uint8)


def test_ring_keeps_the_newest_frames_in_order():
    ring = FaceRing(5, (8, 8, 3))
    for i in range(12):
        ring.push(i * 2, i / 30, _img(i))
    assert len(ring) == 5
    assert ring.oldest_index == 14 and ring.newest_index == 22
    idx, t, imgs = ring.sequence(16, 20)
    assert idx.tolist() == [16, 18, 20]
    assert np.allclose(t, [8 / 30, 9 / 30, 10 / 30])
    assert [int(im[0, 0, 0]) for im in imgs] == [8, 9, 10]


def test_get_returns_the_frame_at_or_before_an_index():
    ring = FaceRing(4, (8, 8, 3))
    for i in (3, 5, 9):
        ring.push(i, float(i), _img(i))
    assert ring.get(5)[0] == 5
    assert ring.get(8)[0] == 5  # frames 6-8 had no face: the latest earlier one
    assert ring.get(2) is None
    assert ring.get(100)[0] == 9


def test_indices_must_increase_and_shapes_match():
    ring = FaceRing(4, (8, 8, 3))
    ring.push(1, 0.0, _img(1))
    with pytest.raises(ValueError, match="must increase"):
        ring.push(1, 0.1, _img(1))
    with pytest.raises(ValueError):
        ring.push(2, 0.1, np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="at least 2"):
        FaceRing(1, (8, 8, 3))


def test_push_does_not_allocate_once_warm():
    ring = FaceRing(64, (128, 128, 3))
    frames = [np.random.default_rng(i).integers(0, 255, (128, 128, 3), dtype=np.uint8) for i in range(4)]
    for i in range(100):
        ring.push(i, i / 30, frames[i % 4])
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for i in range(100, 400):
        ring.push(i, i / 30, frames[i % 4])
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename") if s.size_diff > 0)
    assert grown < 128 * 128 * 3, f"{grown} bytes allocated by 300 pushes"
