"""The plain NumPy EVM: MIT's Laplacian-pyramid IIR method as written, every level kept.

Readable rather than fast (it allocates freely); the Numba and CUDA backends are checked against
it. The arithmetic, in float32 and in this order, is the contract they reproduce.
"""

from __future__ import annotations

import numpy as np

from .core import INV255, Magnifier, MagnifyConfig, Plan


def resample(x: np.ndarray, idx: np.ndarray, w: np.ndarray, axis: int) -> np.ndarray:
    """``out[..., j, ...] = sum_t w[t, j] * x[..., idx[t, j], ...]`` along ``axis`` (-1 or -2), float32."""
    shape = (-1,) if axis == -1 else (-1, 1)
    acc = w[0].reshape(shape) * np.take(x, idx[0], axis=axis)
    for t in range(1, idx.shape[0]):
        acc = acc + w[t].reshape(shape) * np.take(x, idx[t], axis=axis)
    return acc


def pyr_down(plan: Plan, x: np.ndarray, level: int) -> np.ndarray:
    """Blur and halve ``x`` ``(C, h_l, w_l)`` to level ``level + 1``: rows first, then columns."""
    x = resample(x, *plan.down_table(level, 0), axis=-2)
    return resample(x, *plan.down_table(level, 1), axis=-1)


def pyr_up(plan: Plan, x: np.ndarray, level: int) -> np.ndarray:
    """Upsample ``x`` of level ``level + 1`` to level ``level``'s size and blur: columns, then rows."""
    x = resample(x, *plan.up_table(level, 1), axis=-1)
    return resample(x, *plan.up_table(level, 0), axis=-2)


def to_planar(plan: Plan, image: np.ndarray) -> np.ndarray:
    """``(H, W, Cin)`` uint8/float32 -> working channels ``(C, H, W)`` float32 (YIQ or Y)."""
    f = image.astype(np.float32) * INV255 if image.dtype == np.uint8 else image
    planes = []
    for c in range(plan.channels):
        acc = plan.fwd[c, 0] * f[:, :, 0]
        for k in range(1, f.shape[2]):
            acc = acc + plan.fwd[c, k] * f[:, :, k]
        planes.append(acc)
    return np.stack(planes)


def from_planar(plan: Plan, x: np.ndarray, clip: bool) -> np.ndarray:
    """Working channels ``(C, H, W)`` -> output ``(H, W, Cout)`` float32, clipped to [0, 1] if ``clip``."""
    planes = []
    for k in range(plan.out_channels):
        acc = plan.inv[k, 0] * x[0]
        for c in range(1, x.shape[0]):
            acc = acc + plan.inv[k, c] * x[c]
        planes.append(np.clip(acc, np.float32(0.0), np.float32(1.0)) if clip else acc)
    return np.stack(planes, axis=-1)


def laplacian_pyramid(plan: Plan, frame: np.ndarray) -> list[np.ndarray]:
    """Bands ``(C, h_l, w_l)`` from finest to the low-pass residual (last)."""
    bands, g = [], frame
    for level in range(plan.levels - 1):
        g1 = pyr_down(plan, g, level)
        bands.append(g - pyr_up(plan, g1, level))
        g = g1
    bands.append(g)
    return bands


def collapse(plan: Plan, bands: list[np.ndarray]) -> np.ndarray:
    """Inverse of :func:`laplacian_pyramid`: the level-0 image ``(C, H, W)``."""
    r = bands[-1]
    for level in range(plan.levels - 2, -1, -1):
        r = pyr_up(plan, r, level) + bands[level]
    return r


class ReferenceMagnifier(Magnifier):
    """NumPy backend of :class:`~realtime_mer.magnify.core.Magnifier`."""

    def __init__(self, config: MagnifyConfig, shape: tuple[int, int, int], fps: float) -> None:
        super().__init__(config, shape, fps)
        self.reset()

    def reset(self) -> None:
        self.lp1: list[np.ndarray] | None = None
        self.lp2: list[np.ndarray] | None = None

    def _process(self, image: np.ndarray, out: np.ndarray | None) -> np.ndarray:
        plan = self.plan
        frame = to_planar(plan, image)
        bands = laplacian_pyramid(plan, frame)
        if self.lp1 is None or self.lp2 is None:
            self.lp1 = [b.copy() for b in bands]
            self.lp2 = [b.copy() for b in bands]
            if image.shape[2] == plan.out_channels:
                result = image.astype(np.float32) * INV255 if image.dtype == np.uint8 else image.copy()
            else:
                result = from_planar(plan, frame, self.config.clip)
        else:
            deltas = []
            for level, band in enumerate(bands):
                self.lp1[level] = self.c1 * self.lp1[level] + self.r1 * band
                self.lp2[level] = self.c2 * self.lp2[level] + self.r2 * band
                deltas.append(plan.gains[level][:, None, None] * (self.lp1[level] - self.lp2[level]))
            result = from_planar(plan, frame + collapse(plan, deltas), self.config.clip)
        if out is None:
            return result
        out = self.check_out(out, result)
        out[...] = result
        return out
