"""Numba CPU EVM: the reference's arithmetic in compiled loops, one call per frame, no allocation.

Same values as :mod:`.reference`, less work:

- levels with a zero gain (the finest band, and the residual unless ``amplify_lowpass``) keep no
  filter state and their Laplacian band is never formed: ``0 * filtered`` adds exactly nothing;
- the column (W) passes compute interior samples with the stencil written out (no table lookups,
  so LLVM vectorises them) and only the two border samples each side from the tables; the
  weights are the tables' own float32 values and the sums run in the same order;
- colour conversions go a row at a time through a small scratch so every loop is contiguous.

Serial on purpose: at face-crop sizes (64-256 px) one frame is tens to hundreds of microseconds,
where waking threads for each of the ~20 passes costs more than it saves; tracks and streams run in
parallel instead (``nogil``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .core import BINOMIAL5, INV255, Magnifier, MagnifyConfig

_MODE_SET, _MODE_SUB_FROM_BASE, _MODE_ADD_BASE = 0, 1, 2
_K = BINOMIAL5
_K2 = np.float32(2.0) * BINOMIAL5


@njit(cache=True, nogil=True)
def _to_planar(img, scale, fwd, frame, scratch):
    """(H, W, Cin) uint8/float32 -> frame (C, H, W): ``fwd @ (img * scale)`` per pixel."""
    height, width, cin = img.shape
    for y in range(height):
        for k in range(cin):
            for x in range(width):
                scratch[k, x] = np.float32(img[y, x, k]) * scale
        for c in range(fwd.shape[0]):
            f = fwd[c, 0]
            for x in range(width):
                frame[c, y, x] = f * scratch[0, x]
            for k in range(1, cin):
                f = fwd[c, k]
                for x in range(width):
                    frame[c, y, x] += f * scratch[k, x]


@njit(cache=True, nogil=True)
def _from_planar(frame, recon, inv, clip, scratch, out):
    """out (H, W, Cout) = ``inv @ (frame + recon)`` per pixel, clipped to [0, 1] if ``clip``."""
    channels, height, width = frame.shape
    acc = scratch[channels]
    one, zero = np.float32(1.0), np.float32(0.0)
    for y in range(height):
        for c in range(channels):
            for x in range(width):
                scratch[c, x] = frame[c, y, x] + recon[c, y, x]
        for k in range(out.shape[2]):
            f = inv[k, 0]
            for x in range(width):
                acc[x] = f * scratch[0, x]
            for c in range(1, channels):
                f = inv[k, c]
                for x in range(width):
                    acc[x] += f * scratch[c, x]
            if clip:
                for x in range(width):
                    out[y, x, k] = min(max(acc[x], zero), one)
            else:
                for x in range(width):
                    out[y, x, k] = acc[x]


@njit(cache=True, nogil=True)
def _tap(s, idx, w, col):
    """One output sample from a table column: ``sum_t w[t, col] * s[idx[t, col]]`` in tap order."""
    acc = w[0, col] * s[idx[0, col]]
    for t in range(1, idx.shape[0]):
        acc += w[t, col] * s[idx[t, col]]
    return acc


@njit(cache=True, nogil=True)
def _cols_down(src, idx, w, start, k, dst):
    """dst (C, h, ceil(m/2)) = binomial blur-and-decimate of src (C, h, m) along the last axis."""
    channels, height, n = dst.shape
    stop = (src.shape[2] - 3) // 2 + 1  # interior: 2j - 2 >= 0 and 2j + 2 <= m - 1
    for c in range(channels):
        for i in range(height):
            s, d = src[c, i], dst[c, i]
            d[0] = _tap(s, idx, w, start)
            for j in range(1, stop):
                p = 2 * j
                d[j] = k[0] * s[p - 2] + k[1] * s[p - 1] + k[2] * s[p] + k[3] * s[p + 1] + k[4] * s[p + 2]
            for j in range(stop, n):
                d[j] = _tap(s, idx, w, start + j)


@njit(cache=True, nogil=True)
def _cols_up(src, idx, w, start, k2, dst):
    """dst (C, h, n) = zero-insert upsampling of src (C, h, ceil(n/2)) blurred by ``2 binom5``."""
    channels, height, n = dst.shape
    pairs = (n - 4) // 2  # interior outputs 2 .. n - 3, as pairs (2q, 2q + 1), q = 1 .. pairs
    for c in range(channels):
        for i in range(height):
            s, d = src[c, i], dst[c, i]
            d[0] = _tap(s, idx, w, start)
            d[1] = _tap(s, idx, w, start + 1)
            for q in range(1, pairs + 1):
                d[2 * q] = k2[0] * s[q - 1] + k2[2] * s[q] + k2[4] * s[q + 1]
                d[2 * q + 1] = k2[1] * s[q] + k2[3] * s[q + 1]
            for x in range(2 * pairs + 2, n):
                d[x] = _tap(s, idx, w, start + x)


@njit(cache=True, nogil=True)
def _rows(src, idx, w, start, dst, base, mode, row):
    """dst (C, n, wd) = taps of src (C, m, wd) along axis 1, then set / ``base - acc`` / ``acc + base``.

    ``row`` (>= wd floats) holds one output row's sum, so ``dst`` may be ``base`` (in place).
    """
    channels, n, width = dst.shape
    for c in range(channels):
        for i in range(n):
            r, wt = idx[0, start + i], w[0, start + i]
            for x in range(width):
                row[x] = wt * src[c, r, x]
            for t in range(1, idx.shape[0]):
                r, wt = idx[t, start + i], w[t, start + i]
                for x in range(width):
                    row[x] += wt * src[c, r, x]
            if mode == _MODE_SET:
                for x in range(width):
                    dst[c, i, x] = row[x]
            elif mode == _MODE_SUB_FROM_BASE:
                for x in range(width):
                    dst[c, i, x] = base[c, i, x] - row[x]
            else:
                for x in range(width):
                    dst[c, i, x] = row[x] + base[c, i, x]


@njit(cache=True, nogil=True)
def _level(buf, offsets, sizes, level, channels):
    """Level ``level`` of a flat planar pyramid as a (C, h, w) view."""
    return buf[offsets[level] : offsets[level + 1]].reshape((channels, sizes[level, 0], sizes[level, 1]))


@njit(cache=True, nogil=True)
def _view(buf, channels, height, width):
    """The start of a flat scratch buffer as a (C, h, w) view."""
    return buf[: channels * height * width].reshape((channels, height, width))


@njit(cache=True, nogil=True)
def _frame(
    img, scale, fwd, inv, sizes, offsets, dn_idx, dn_w, dn_start, up_idx, up_w, up_start, k, k2,
    gains, active, c1, r1, c2, r2, first, clip, frame, pyr, tmp, scratch, lp1, lp2, out,
):  # fmt: skip
    """One EVM step; ``first`` initialises the states and passes the frame (see the module doc)."""
    levels, channels = sizes.shape[0], fwd.shape[0]
    row = scratch[0]
    _to_planar(img, scale, fwd, frame, scratch)
    g = frame
    for lv in range(levels - 1):
        w0, h1 = sizes[lv, 1], sizes[lv + 1, 0]
        nxt = _level(pyr, offsets, sizes, lv + 1, channels)
        t = _view(tmp, channels, h1, w0)
        _rows(g, dn_idx, dn_w, dn_start[lv, 0], t, t, _MODE_SET, row)
        _cols_down(t, dn_idx, dn_w, dn_start[lv, 1], k, nxt)
        if active[lv]:
            _cols_up(nxt, up_idx, up_w, up_start[lv, 1], k2, t)
            band = _level(pyr, offsets, sizes, lv, channels)
            _rows(t, up_idx, up_w, up_start[lv, 0], band, g, _MODE_SUB_FROM_BASE, row)
        g = nxt

    for lv in range(levels):
        if active[lv]:
            n = (offsets[lv + 1] - offsets[lv]) // channels
            for c in range(channels):
                gain = gains[lv, c]
                for i in range(offsets[lv] + c * n, offsets[lv] + (c + 1) * n):
                    x = pyr[i]
                    if first:
                        lp1[i] = x
                        lp2[i] = x
                    else:
                        a = c1 * lp1[i] + r1 * x
                        b = c2 * lp2[i] + r2 * x
                        lp1[i] = a
                        lp2[i] = b
                        pyr[i] = gain * (a - b)

    recon = _level(pyr, offsets, sizes, 0, channels)
    if first:
        if img.shape[2] == out.shape[2]:
            for y in range(img.shape[0]):
                for x in range(img.shape[1]):
                    for ch in range(img.shape[2]):
                        out[y, x, ch] = np.float32(img[y, x, ch]) * scale
            return
        recon[:] = 0
    else:
        if not active[levels - 1]:
            pyr[offsets[levels - 1] : offsets[levels]] = 0
        for lv in range(levels - 2, -1, -1):
            t = _view(tmp, channels, sizes[lv + 1, 0], sizes[lv, 1])
            dst = _level(pyr, offsets, sizes, lv, channels)
            _cols_up(_level(pyr, offsets, sizes, lv + 1, channels), up_idx, up_w, up_start[lv, 1], k2, t)
            _rows(t, up_idx, up_w, up_start[lv, 0], dst, dst, _MODE_ADD_BASE if active[lv] else _MODE_SET, row)
    _from_planar(frame, recon, inv, clip, scratch, out)


class NumbaMagnifier(Magnifier):
    """Numba CPU backend of :class:`~realtime_mer.magnify.core.Magnifier`; buffers allocated once."""

    def __init__(self, config: MagnifyConfig, shape: tuple[int, int, int], fps: float) -> None:
        super().__init__(config, shape, fps)
        plan = self.plan
        height, width, cin = self.shape
        total = int(plan.offsets[-1])
        self._frame = np.zeros((plan.channels, height, width), np.float32)
        self._pyr = np.zeros(total, np.float32)
        self._tmp = np.zeros(plan.channels * height * width, np.float32)
        self._scratch = np.zeros((max(cin, plan.channels + 1), width), np.float32)
        self._lp1 = np.zeros(total, np.float32)
        self._lp2 = np.zeros(total, np.float32)
        self._out = np.zeros(self.out_shape, np.float32)
        self.reset()

    def reset(self) -> None:
        self._first = True

    def _process(self, image: np.ndarray, out: np.ndarray | None) -> np.ndarray:
        plan = self.plan
        out = self.check_out(out, self._out)
        _frame(
            image, INV255 if image.dtype == np.uint8 else np.float32(1.0), plan.fwd, plan.inv, plan.sizes,
            plan.offsets, plan.dn_idx, plan.dn_w, plan.dn_start, plan.up_idx, plan.up_w, plan.up_start, _K, _K2,
            plan.gains, plan.active, self.c1, self.r1, self.c2, self.r2, self._first, self.config.clip,
            self._frame, self._pyr, self._tmp, self._scratch, self._lp1, self._lp2, out,
        )  # fmt: skip
        self._first = False
        return out
