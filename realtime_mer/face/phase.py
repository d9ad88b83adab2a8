"""Phase correlation against a fixed reference image, with the reference's spectrum kept.

:func:`cv2.phaseCorrelate` transforms both images on every call and allocates its spectra, its
cross-power spectrum and its correlation surface each time. A face track correlates every frame
against the same reference crop, so :class:`PhaseCorrelator` transforms the reference once, keeps
every buffer, and per frame runs one forward DFT, the normalised cross-power spectrum (one Numba
pass over the packed spectra), one inverse DFT and the peak search (Numba): the same arithmetic as
OpenCV (CCS-packed real DFTs, ``P / |P|``, the 5x5 weighted centroid around the peak, the response
as the centroid's weight over the number of samples), about half the time, no allocation.

Sizes are padded to :func:`cv2.getOptimalDFTSize` with zeros, as OpenCV does. The shift is read
circularly (a peak in the last half of an axis is a negative shift); OpenCV's quadrant swap gives
the same for even sizes and is off by one sample in odd ones.
"""

from __future__ import annotations

import cv2
import numpy as np
from numba import njit

_FLT_EPS = np.float32(np.finfo(np.float32).eps)  # OpenCV's divSpectrums guard for float32 spectra
_DBL_EPS = np.finfo(np.float64).eps  # and weightedCentroid's


@njit(cache=True, nogil=True, inline="always")
def _pair(ar, ai, br, bi):
    """One complex element of ``a conj(b)``, regularised like OpenCV: ``P |P| / (|P|^2 + eps)`` (float32)."""
    pr = ar * br + ai * bi
    pi = ai * br - ar * bi
    m2 = pr * pr + pi * pi
    scale = np.sqrt(m2) / (m2 + _FLT_EPS)
    return pr * scale, pi * scale


@njit(cache=True, nogil=True, inline="always")
def _real(a, b):
    """A real element (DC and Nyquist rows/columns) of the same."""
    p = a * b
    return p * abs(p) / (p * p + _FLT_EPS)


@njit(cache=True, nogil=True, fastmath=True)
def _cross_power(a, b, out):
    """The regularised cross-power spectrum ``a conj(b) / |a conj(b)|`` of CCS-packed spectra (cv2.dft
    of real images, flags 0) into ``out`` (which may be ``b``)."""
    rows, cols = a.shape
    stop = cols - 1 if cols % 2 == 0 else cols  # the last column of an even width is packed down
    for y in range(rows):
        for x in range(1, stop, 2):
            out[y, x], out[y, x + 1] = _pair(a[y, x], a[y, x + 1], b[y, x], b[y, x + 1])
    for k in range(1 if cols % 2 else 2):
        x = 0 if k == 0 else cols - 1
        out[0, x] = _real(a[0, x], b[0, x])
        if rows % 2 == 0:
            out[rows - 1, x] = _real(a[rows - 1, x], b[rows - 1, x])
        for y in range(1, rows - 1, 2):
            out[y, x], out[y + 1, x] = _pair(a[y, x], a[y + 1, x], b[y, x], b[y + 1, x])


@njit(cache=True, nogil=True)
def _centroid(corr, py, px):
    """``(dx, dy, response)`` from the peak at ``(py, px)``: the circular shift refined by the 5x5
    weighted centroid, and the centroid's weight over the number of samples (OpenCV's response)."""
    rows, cols = corr.shape
    sy = sx = total = 0.0
    for dy in range(-2, 3):
        yy = (py + dy) % rows
        for dx in range(-2, 3):
            v = np.float64(corr[yy, (px + dx) % cols])
            sy += dy * v
            sx += dx * v
            total += v
    response = total / (rows * cols)
    total += _DBL_EPS
    wy = py if py < (rows + 1) // 2 else py - rows
    wx = px if px < (cols + 1) // 2 else px - cols
    return -(wx + sx / total), -(wy + sy / total), response


class PhaseCorrelator:
    """Translation of images against one reference, by phase correlation, with no allocation per call.

    Args:
        size: ``(width, height)`` of the images.

    :meth:`set_reference` takes the (already windowed) reference; :meth:`shift` returns
    ``((dx, dy), response)`` as ``cv2.phaseCorrelate(reference, image)`` does.
    """

    def __init__(self, size: tuple[int, int]) -> None:
        w, h = size
        self.size = (int(w), int(h))
        ph, pw = cv2.getOptimalDFTSize(h), cv2.getOptimalDFTSize(w)
        self._input = np.zeros((ph, pw), np.float32)  # zero-padded image
        self._view = self._input[:h, :w]
        self._padded = (ph, pw) != (h, w)
        self._ref = np.zeros((ph, pw), np.float32)  # CCS spectrum of the reference
        self._spec = np.zeros((ph, pw), np.float32)
        self._corr = np.zeros((ph, pw), np.float32)
        self.has_reference = False

    def _load(self, image: np.ndarray) -> np.ndarray:
        if image.shape != self._view.shape:
            raise ValueError(f"image shape {image.shape} differs from the correlator's {self._view.shape}")
        if not self._padded and image.dtype == np.float32 and image.flags.c_contiguous:
            return image
        np.copyto(self._view, image)
        return self._input

    def set_reference(self, image: np.ndarray) -> None:
        """The ``(h, w)`` float32 image every later one is compared with."""
        cv2.dft(self._load(image), self._ref)
        self.has_reference = True

    def shift(self, image: np.ndarray) -> tuple[tuple[float, float], float]:
        """``((dx, dy), response)`` of ``image`` ``(h, w)`` float32 against the reference (OpenCV's sign)."""
        if not self.has_reference:
            raise RuntimeError("PhaseCorrelator.shift: no reference set")
        cv2.dft(self._load(image), self._spec)
        _cross_power(self._ref, self._spec, self._spec)
        cv2.dft(self._spec, self._corr, flags=cv2.DFT_INVERSE | cv2.DFT_REAL_OUTPUT)
        px, py = cv2.minMaxLoc(self._corr)[3]
        dx, dy, response = _centroid(self._corr, py, px)
        return (dx, dy), response
