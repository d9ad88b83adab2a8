"""Augmentation: STRCN's variant grid and frame selection, the flow mirror, DTSCNN's nine crops and
balanced resampling."""

from __future__ import annotations

import numpy as np
import pytest

from realtime_mer.flow import flow_strain_map
from realtime_mer.train.augment import (
    STRCN_ALPHAS,
    STRCN_KEEP_RATIOS,
    balanced_indices,
    flip_input,
    keep_indices,
    nine_crop_sequence,
    nine_crops,
    variant_grid,
)


def test_strcn_grid_is_fifty_variants_plus_the_test_one():
    grid = variant_grid(STRCN_ALPHAS, STRCN_KEEP_RATIOS, 8.0)
    assert STRCN_ALPHAS == (5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0)
    assert grid[0] == (8.0, 1.0) and len(grid) == 50 and len(set(grid)) == 50  # (8, 1.0) is one of the 50
    assert variant_grid((0.0,), (1.0,), 0.0) == [(0.0, 1.0)]
    with pytest.raises(ValueError, match="keep ratios"):
        variant_grid((5.0,), (1.2,), 8.0)


def test_keep_indices_keeps_the_onset_and_the_ratio():
    rng = np.random.default_rng(0)
    for ratio, n in ((1.0, 30), (0.6, 30), (0.7, 10), (0.1, 5)):
        k = keep_indices(n, ratio, rng)
        assert k[0] == 0 and np.all(np.diff(k) > 0) and k[-1] < n
        assert len(k) == min(n, max(2, round(ratio * n)))


def _shifted_pair(dx: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    import cv2

    base = cv2.GaussianBlur((rng.random((64, 64)) * 255).astype(np.float32), (0, 0), 2.0)
    m = np.float32([[1, 0, dx], [0, 1, 0]])
    moved = cv2.warpAffine(base, m, (64, 64), borderMode=cv2.BORDER_REFLECT)
    return base.astype(np.uint8), moved.astype(np.uint8)


def test_flip_matches_the_flow_of_mirrored_images():
    """Mirroring the two images flips the map left-right and turns u into -u (1 - u after min-max)."""
    a, b = _shifted_pair(1.0)
    m = flow_strain_map(a, b, (32, 32), normalize="none").transpose(2, 0, 1)
    mirrored = flow_strain_map(a[:, ::-1].copy(), b[:, ::-1].copy(), (32, 32), normalize="none").transpose(2, 0, 1)
    flipped = flip_input(m, "raw")
    inner = (slice(None), slice(6, -6), slice(6, -6))  # borders of a shifted image are not comparable
    assert np.abs(flipped[inner][0] - mirrored[inner][0]).mean() < 0.15 * np.abs(mirrored[inner][0]).mean()
    assert flipped[0, 16, 16] < 0 < m[0, 16, 16]
    mm = np.random.default_rng(0).random((3, 8, 8)).astype(np.float32)
    f = flip_input(mm, "minmax")
    np.testing.assert_allclose(f[0], 1 - mm[0, :, ::-1])
    np.testing.assert_allclose(f[1:], mm[1:, :, ::-1])
    np.testing.assert_allclose(flip_input(f, "minmax"), mm, atol=1e-6)


def test_nine_crops_and_sequence_jitter():
    frame = np.arange(20 * 24, dtype=np.float32).reshape(20, 24)
    crops = nine_crops(frame, 2)
    assert len(crops) == 9 and all(c.shape == (20, 24) for c in crops)
    assert len({c.tobytes() for c in crops}) == 9, "nine different cuts"
    seq = np.random.default_rng(0).random((2, 5, 20, 24)).astype(np.float32)
    out = nine_crop_sequence(seq, np.random.default_rng(1))
    assert out.shape == seq.shape and not np.allclose(out, seq)
    with pytest.raises(ValueError, match="too small"):
        nine_crops(np.zeros((4, 4)), 2)


def test_balanced_indices_draws_per_class():
    labels = np.array([0] * 30 + [1] * 3 + [2] * 7)
    idx = balanced_indices(labels, 50, np.random.default_rng(0))
    assert len(idx) == 150 and np.bincount(labels[idx]).tolist() == [50, 50, 50]
