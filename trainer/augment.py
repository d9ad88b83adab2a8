"""Training-data augmentation of the papers, plus a cheap mirror flip for flow maps.

* STRCN (seed 001, Sec. III-E "multi-scale data augmentation"): every training clip is magnified
  with several EVM factors ``alpha`` in [5, 14] (:data:`STRCN_ALPHAS`) and sub-sampled with
  frame keep ratios 100/90/80/70/60 % (:data:`STRCN_KEEP_RATIOS`), 50 variants a clip. These act at
  preprocessing time: :func:`variant_grid` lists the variants :mod:`realtime_mer.train.preprocess` computes and
  :func:`keep_indices` picks the kept frames of one variant.
* DTSCNN (seed 004, "sampling method", steps 1-8): nine crops of every frame (a 2-pixel slice cut
  at the top, bottom, left, right, centre or a corner, resized back), and balanced resampling of
  ``per_class`` clips a class, each frame replaced by a random one of its nine crops
  (:func:`balanced_indices`, :func:`nine_crop_sequence`). Deviation: the crops are applied to the
  cached flow sequences, not to the raw frames before the flow, so crop jitter does not turn into
  flow.
* :func:`flip_input`: a horizontal mirror; the horizontal flow component changes sign (for
  min-max scaled maps in [0, 1], ``u -> 1 - u``, which is the min-max scaling of ``-u``). Mirroring
  keeps the class of a facial expression (left and right action units belong to the same classes).

Arrays are float32, channel first; see each function for its shapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import cv2
import numpy as np

STRCN_ALPHAS: tuple[float, ...] = tuple(float(a) for a in range(5, 15))
STRCN_KEEP_RATIOS: tuple[float, ...] = (1.0, 0.9, 0.8, 0.7, 0.6)
STRCN_TEST_ALPHA = 8.0
DTSCNN_PER_CLASS = 500
DTSCNN_CUT = 2

FlowScale = Literal["minmax", "raw"]


def variant_grid(alphas: Sequence[float], keep_ratios: Sequence[float], test_alpha: float) -> list[tuple[float, float]]:
    """``(alpha, keep ratio)`` of every variant, the test variant ``(test_alpha, 1.0)`` first.

    ``alpha = 0`` means no magnification. Raises ValueError for ratios outside (0, 1] or negative alphas.
    """
    if any(not 0 < r <= 1 for r in keep_ratios):
        raise ValueError(f"keep ratios must lie in (0, 1], got {list(keep_ratios)}")
    if any(a < 0 for a in (*alphas, test_alpha)):
        raise ValueError(f"magnification factors must be >= 0 (0 = none), got {list(alphas)} and {test_alpha}")
    grid = [(float(test_alpha), 1.0)]
    for a in alphas:
        for r in keep_ratios:
            if (float(a), float(r)) not in grid:
                grid.append((float(a), float(r)))
    return grid


def keep_indices(n: int, ratio: float, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of the frames kept out of ``n`` (STRCN's random frame selection).

    Frame 0 (the onset) is always kept, and at least 2 frames; ``ratio = 1`` keeps all.
    """
    if n < 1:
        raise ValueError(f"a clip needs at least one frame, got {n}")
    keep = min(n, max(2, round(ratio * n)))
    if keep >= n:
        return np.arange(n)
    rest = rng.choice(np.arange(1, n), size=keep - 1, replace=False)
    return np.concatenate([[0], np.sort(rest)])


def flip_input(x: np.ndarray, scale: FlowScale = "minmax", flow_axis: int = 0) -> np.ndarray:
    """Horizontal mirror of a channel-first flow input ``(C, ..., W)`` (the last axis is x).

    Channel 0 along ``flow_axis`` must be the horizontal flow ``u``: it becomes ``1 - u`` for
    ``scale="minmax"`` maps in [0, 1] and ``-u`` for ``"raw"`` flow in pixels. Other channels
    (``v``, strain, intensities) are only mirrored. Returns a new array.
    """
    out = np.ascontiguousarray(x[..., ::-1])
    u = np.take(out, 0, axis=flow_axis)
    u = 1.0 - u if scale == "minmax" else -u
    index = [slice(None)] * out.ndim
    index[flow_axis] = 0
    out[tuple(index)] = u
    return out


def nine_crops(frame: np.ndarray, cut: int = DTSCNN_CUT) -> list[np.ndarray]:
    """The nine crops of one ``(H, W[, C])`` frame, each resized back to ``(H, W)``: a ``cut``-pixel
    slice removed at the top, bottom, left, right, both sides (centre) and at each corner."""
    h, w = frame.shape[:2]
    if h <= 2 * cut or w <= 2 * cut:
        raise ValueError(f"frame {h}x{w} is too small to cut {cut} px")
    a, b = cut // 2, cut - cut // 2
    windows = [
        (cut, h, 0, w), (0, h - cut, 0, w), (0, h, cut, w), (0, h, 0, w - cut),  # up, down, left, right
        (a, h - b, a, w - b),  # centre
        (cut, h, cut, w), (cut, h, 0, w - cut), (0, h - cut, cut, w), (0, h - cut, 0, w - cut),  # corners
    ]  # fmt: skip
    return [cv2.resize(frame[y0:y1, x0:x1], (w, h), interpolation=cv2.INTER_LINEAR) for y0, y1, x0, x1 in windows]


def nine_crop_sequence(seq: np.ndarray, rng: np.random.Generator, cut: int = DTSCNN_CUT) -> np.ndarray:
    """``seq`` ``(C, T, H, W)`` with every frame replaced by a random one of its nine crops (step 5)."""
    if seq.ndim != 4:
        raise ValueError(f"expected a (C, T, H, W) sequence, got {seq.shape}")
    out = np.empty_like(seq)
    picks = rng.integers(0, 9, size=seq.shape[1])
    for t, k in enumerate(picks):
        frame = np.ascontiguousarray(seq[:, t].transpose(1, 2, 0))
        crop = nine_crops(frame, cut)[k]
        out[:, t] = crop.reshape(*crop.shape[:2], -1).transpose(2, 0, 1)
    return out


def balanced_indices(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Indices into ``labels`` drawn with replacement, ``per_class`` of every class present (steps 4, 7, 8)."""
    labels = np.asarray(labels)
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    out = [rng.choice(np.flatnonzero(labels == c), size=per_class, replace=True) for c in np.unique(labels)]
    return rng.permutation(np.concatenate(out)) if out else np.zeros(0, np.int64)
