"""What every EVM backend shares: the config, the pyramid plan, the temporal coefficients, the interface.

The method is the MIT ``amplify_spatial_lpyr_temporal_iir`` (Wu et al., SIGGRAPH 2012), streamed:

1. The frame (BGR or RGB, uint8 or float [0, 1]) becomes planar YIQ (``color="yiq"``) or luminance
   Y (``color="luma"``), float32.
2. A Laplacian pyramid with the binomial 5-tap filter ``[1, 4, 6, 4, 1] / 16`` and reflect-101
   borders (matlabPyrTools' ``reflect1``, OpenCV's ``BORDER_REFLECT_101``). Level ``l`` has size
   ``ceil(H / 2**l) x ceil(W / 2**l)``; the last level is the low-pass residual.
3. Per band a causal IIR band-pass: two first-order low-passes ``lp = (1 - r) lp + r band`` with
   ``r1 > r2``, ``filtered = lp1 - lp2``. Both states start as the first frame's pyramid, and the
   first frame is passed through unmodified.
4. Per band the gain ``alpha_l = min(alpha, exaggeration * (lambda_l / (8 delta) - 1))`` with
   ``delta = lambda_c / 8 / (1 + alpha)`` and ``lambda_l`` = ``sqrt(H**2 + W**2) / 3`` for the
   residual, halved per level towards the finest band (MIT Fig. 6 / Eq. 14). The finest band gets
   0 (MIT); the residual gets 0 unless ``amplify_lowpass`` (colour amplification, see
   :class:`MagnifyConfig`). Negative gains (bands finer than ``lambda_c / (1 + alpha)``) are
   clamped to 0; MIT would invert them.
5. The chrominance (I, Q) gains are multiplied by ``chrom_attenuation``. This is MIT's "reconstruct,
   then scale I and Q" folded into the per-band gains (the pyramid is linear), so the magnified
   frame is ``frame + collapse(gain_l * filtered_l)``, converted back to the input's channel order,
   clipped to [0, 1] when ``clip``.

Temporal cut-offs are given in Hz and turned into coefficients with the stream's measured fps by
:func:`coefficient_from_hz` (impulse invariance: an EMA ``y += r (x - y)`` has its pole at
``1 - r``; a first-order analogue low-pass with cut-off ``f_c`` sampled at ``fs`` has its pole at
``exp(-2 pi f_c / fs)``, hence ``r = 1 - exp(-2 pi f_c / fs)``). MIT's ``r1 = 0.4, r2 = 0.05`` at
30 fps are 2.44 Hz and 0.245 Hz (:func:`hz_from_coefficient`).

Every backend computes the same float32 arithmetic in the same order from the tables of
:class:`Plan`, so the Numba results match the NumPy reference to float32 rounding.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..config import settings
from ..errors import UserError

BINOMIAL5 = np.array([1.0, 4.0, 6.0, 4.0, 1.0], dtype=np.float32) / np.float32(16.0)
"""The matlabPyrTools ``binom5`` filter, 1-D, float32."""

INV255 = np.float32(1.0 / 255.0)
"""uint8 inputs are scaled by this float32 factor (the same in every backend)."""

# MATLAB rgb2ntsc; ntsc2rgb is its inverse.
_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=np.float64)

MIN_BAND_SIZE = 5
"""A pyramid level is split further only while both its sides are at least this (matlabPyrTools)."""


class MagnifyError(UserError, ValueError):
    """An EVM configuration or input is wrong; the message says what and how to fix it."""


@settings
class MagnifyConfig:
    """Eulerian Video Magnification settings (one per pipeline; one magnifier per face track).

    Defaults are for aligned face crops (e.g. 128x128) and micro-expressions (65-500 ms):

    - ``alpha=8, lambda_c=16``: STRCN (Xia et al. 2019, section IV-A): ``alpha = min(8, alpha_c)``
      with ``lambda = 16``. STRCN's bound has no exaggeration (``exaggeration=1``); the default 2
      is MIT's, which magnifies the mid bands of a 128x128 crop a little more.
    - ``low_hz=1.633, high_hz=16.26``: STRCN's "[0.05, 0.4] Hz" are really MIT's IIR coefficients
      ``r2 = 0.05, r1 = 0.4``, applied to CASME II at 200 fps; in Hz that is 1.633-16.26 Hz
      (:func:`hz_from_coefficient`). A 65-500 ms movement has most of its energy between about
      ``1 / (2 * 0.5 s) = 1 Hz`` and ``1 / 0.065 s = 15 Hz``. Expressed in Hz, the same band
      follows the camera's rate: at 30 fps ``r2 = 0.29`` and ``r1 = 0.97`` (a cut-off above
      Nyquist simply leaves that low-pass nearly transparent).
    - ``chrom_attenuation=0.1``: MIT's motion setting (colour noise is not magnified much).

    Attributes:
        alpha: magnification factor (MIT alpha) for bands coarser than ``lambda_c``.
        lambda_c: spatial cut-off wavelength, pixels of the input frame; finer bands get less.
        low_hz: lower temporal cut-off, Hz (the slow low-pass, r2).
        high_hz: upper temporal cut-off, Hz (the fast low-pass, r1); must exceed ``low_hz``.
        chrom_attenuation: factor on the I and Q gains (``color="yiq"`` only); 1 for colour
            magnification (pulse), 0.1 for motion.
        levels: pyramid levels including the residual; ``None`` = MIT's ``'auto'`` (halve while
            both sides are >= 5): 6 for 128x128.
        exaggeration: MIT's ``exaggeration_factor`` on the wavelength bound.
        amplify_lowpass: also magnify the low-pass residual (MIT's Laplacian code gives it 0).
            Turn on, with ``chrom_attenuation=1``, to magnify colour changes such as the pulse,
            which live in the lowest spatial frequencies; ``levels`` then sets how coarse the
            magnified colour is (fewer levels = a larger residual).
        color: ``"yiq"``: 3 channels in, 3 out; ``"luma"``: 1 (grey) or 3 (colour) channels in,
            the magnified luminance Y out, ``(H, W, 1)`` (the grey spotting path, 1/3 the work).
        channel_order: order of colour inputs and outputs: ``"bgr"`` (OpenCV, the project's
            convention) or ``"rgb"``.
        clip: clip the output to [0, 1] (MIT does); off, large alphas may overshoot.
        backend: ``"numba"`` (CPU, default), ``"reference"`` (plain NumPy) or ``"cuda"``
            (Numba CUDA, needs an NVIDIA GPU).
    """

    alpha: float = 8.0
    lambda_c: float = 16.0
    low_hz: float = 1.633
    high_hz: float = 16.26
    chrom_attenuation: float = 0.1
    levels: int | None = None
    exaggeration: float = 2.0
    amplify_lowpass: bool = False
    color: Literal["yiq", "luma"] = "yiq"
    channel_order: Literal["bgr", "rgb"] = "bgr"
    clip: bool = True
    backend: Literal["numba", "reference", "cuda"] = "numba"

    def __post_init__(self) -> None:
        for name in ("alpha", "lambda_c", "low_hz", "high_hz", "chrom_attenuation", "exaggeration"):
            if not math.isfinite(getattr(self, name)):
                raise MagnifyError(f"magnify.{name} must be a finite number, got {getattr(self, name)!r}")
        if self.alpha < 0 or self.chrom_attenuation < 0 or self.exaggeration < 0:
            raise MagnifyError(
                "magnify.alpha, chrom_attenuation and exaggeration must be >= 0, got "
                f"{self.alpha}, {self.chrom_attenuation}, {self.exaggeration}"
            )
        if self.lambda_c <= 0:
            raise MagnifyError(f"magnify.lambda_c must be > 0 pixels, got {self.lambda_c}")
        if not 0 < self.low_hz < self.high_hz:
            raise MagnifyError(f"magnify needs 0 < low_hz < high_hz, got low_hz={self.low_hz}, high_hz={self.high_hz}")
        if self.levels is not None and self.levels < 2:
            raise MagnifyError(f"magnify.levels must be an integer >= 2 or None (auto), got {self.levels!r}")


def coefficient_from_hz(f_c: float, fps: float) -> float:
    """IIR coefficient ``r`` of ``lp = (1 - r) lp + r x`` for cut-off ``f_c`` Hz at ``fps`` frames/s."""
    return 1.0 - math.exp(-2.0 * math.pi * f_c / fps)


def hz_from_coefficient(r: float, fps: float) -> float:
    """The cut-off in Hz of coefficient ``r`` (0 < r < 1) at ``fps``: the inverse of :func:`coefficient_from_hz`."""
    if not 0 < r < 1:
        raise MagnifyError(f"an IIR coefficient must lie in (0, 1), got {r}")
    return -math.log1p(-r) * fps / (2.0 * math.pi)


def auto_levels(height: int, width: int) -> int:
    """MIT/matlabPyrTools ``'auto'`` height: 1 + the number of halvings while both sides are >= 5."""
    n, h, w = 1, height, width
    while min(h, w) >= MIN_BAND_SIZE:
        h, w, n = h // 2, w // 2, n + 1
    return n


def reflect101(i: np.ndarray, n: int) -> np.ndarray:
    """Indices ``i`` (at most ``n - 1`` outside ``[0, n)``) reflected about the edge samples."""
    i = np.abs(i)
    return np.where(i >= n, 2 * (n - 1) - i, i)


def down_taps(n_in: int) -> tuple[np.ndarray, np.ndarray]:
    """1-D blur-and-decimate along one axis: ``out[j] = sum_t w[t, j] * x[idx[t, j]]``.

    Returns ``idx`` int32 ``(5, ceil(n_in / 2))`` and ``w`` float32 of the same shape.
    """
    n_out = (n_in + 1) // 2
    t = np.arange(5)[:, None]
    idx = reflect101(2 * np.arange(n_out)[None, :] + t - 2, n_in)
    w = np.broadcast_to(BINOMIAL5[:, None], idx.shape)
    return idx.astype(np.int32), np.ascontiguousarray(w, dtype=np.float32)


def up_taps(n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """1-D upsample-and-blur to length ``n_out`` from ``ceil(n_out / 2)`` samples.

    Zeros are inserted at odd positions, then the result is blurred with ``2 * binom5`` (reflect-101
    on the upsampled grid). Only the taps that land on a sample are kept, in tap order, padded to
    3 with weight 0 (adding ``0 * x`` is exact). Returns ``idx`` int32 ``(3, n_out)`` and ``w``
    float32 ``(3, n_out)``.
    """
    idx = np.zeros((3, n_out), dtype=np.int32)
    w = np.zeros((3, n_out), dtype=np.float32)
    p = reflect101(np.arange(n_out)[None, :] + np.arange(5)[:, None] - 2, n_out)
    for y in range(n_out):
        k = 0
        for t in range(5):
            if p[t, y] % 2 == 0:
                idx[k, y], w[k, y] = p[t, y] // 2, np.float32(2.0) * BINOMIAL5[t]
                k += 1
    return idx, w


def _pack(tables: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate per-axis tables along their last axis; returns idx, w and each table's start column."""
    starts = np.cumsum([0] + [t[0].shape[1] for t in tables])[:-1].astype(np.int64)
    return (
        np.ascontiguousarray(np.concatenate([t[0] for t in tables], axis=1)),
        np.ascontiguousarray(np.concatenate([t[1] for t in tables], axis=1)),
        starts,
    )


def band_gains(config: MagnifyConfig, height: int, width: int, levels: int, channels: int) -> np.ndarray:
    """Per-level, per-channel gain ``(levels, channels)`` float32 (MIT Fig. 6 with the options above)."""
    delta = config.lambda_c / 8.0 / (1.0 + config.alpha)
    lam = math.sqrt(height**2 + width**2) / 3.0  # the residual's representative wavelength (MIT)
    gains = np.zeros((levels, channels), dtype=np.float32)
    for level in range(levels - 1, -1, -1):
        bound = max(0.0, (lam / delta / 8.0 - 1.0) * config.exaggeration)
        use = level != 0 and (level != levels - 1 or config.amplify_lowpass)
        gains[level] = min(config.alpha, bound) if use else 0.0
        lam /= 2.0
    if channels == 3:
        gains[:, 1:] *= np.float32(config.chrom_attenuation)
    return gains


def _color_matrices(config: MagnifyConfig, in_channels: int) -> tuple[np.ndarray, np.ndarray]:
    """``fwd (C, Cin)`` input -> working channels and ``inv (Cout, C)`` back, float32."""
    fwd = _RGB_TO_YIQ.copy()
    if config.channel_order == "bgr":
        fwd = fwd[:, ::-1]
    inv = np.linalg.inv(fwd)
    if config.color == "luma":
        if in_channels == 1:
            return np.ones((1, 1), np.float32), np.ones((1, 1), np.float32)
        return np.ascontiguousarray(fwd[:1], dtype=np.float32), np.ones((1, 1), np.float32)
    return np.ascontiguousarray(fwd, dtype=np.float32), np.ascontiguousarray(inv, dtype=np.float32)


@dataclass(frozen=True, eq=False)
class Plan:
    """Sizes, flat layout, stencil tables, gains and colour matrices for one frame shape.

    The pyramid of ``C`` working channels is stored flat and planar: level ``l`` occupies
    ``offsets[l]:offsets[l + 1]`` as ``(C, h_l, w_l)``. Stencil tables map level ``l`` to
    ``l + 1`` (``dn_*``) and back (``up_*``); ``dn_start[l] = (rows, cols)`` are the first columns
    of that level's row (H) and column (W) tables in the packed ``dn_idx``/``dn_w``.

    Attributes:
        shape: input ``(H, W, Cin)``.
        out_channels: ``Cout``, 3 for yiq, 1 for luma.
        sizes: int64 ``(L, 2)`` level sizes ``(h, w)``.
        offsets: int64 ``(L + 1,)`` flat offsets.
        gains: float32 ``(L, C)``; ``active``: bool ``(L,)`` levels with a non-zero gain.
        fwd, inv: float32 colour matrices ``(C, Cin)`` and ``(Cout, C)``.
    """

    shape: tuple[int, int, int]
    out_channels: int
    sizes: np.ndarray
    offsets: np.ndarray
    gains: np.ndarray
    active: np.ndarray
    fwd: np.ndarray
    inv: np.ndarray
    dn_idx: np.ndarray
    dn_w: np.ndarray
    dn_start: np.ndarray
    up_idx: np.ndarray
    up_w: np.ndarray
    up_start: np.ndarray

    @property
    def levels(self) -> int:
        return int(self.sizes.shape[0])

    @property
    def channels(self) -> int:
        """Working channels ``C``."""
        return int(self.fwd.shape[0])

    def down_table(self, level: int, axis: int) -> tuple[np.ndarray, np.ndarray]:
        """``(idx, w)`` from level ``level`` to ``level + 1`` along axis 0 (rows) or 1 (columns)."""
        n = self.sizes[level + 1, axis]
        s = self.dn_start[level, axis]
        return self.dn_idx[:, s : s + n], self.dn_w[:, s : s + n]

    def up_table(self, level: int, axis: int) -> tuple[np.ndarray, np.ndarray]:
        """``(idx, w)`` from level ``level + 1`` up to level ``level`` along axis 0 or 1."""
        n = self.sizes[level, axis]
        s = self.up_start[level, axis]
        return self.up_idx[:, s : s + n], self.up_w[:, s : s + n]


def make_plan(config: MagnifyConfig, shape: tuple[int, int, int]) -> Plan:
    """The :class:`Plan` for frames of ``shape = (H, W, Cin)``; a wrong shape is a MagnifyError."""
    if len(shape) != 3 or not all(isinstance(s, (int, np.integer)) for s in shape):
        raise MagnifyError(f"magnifier shape must be (H, W, C) integers, got {shape!r}")
    height, width, cin = (int(s) for s in shape)
    allowed = (3,) if config.color == "yiq" else (1, 3)
    if cin not in allowed:
        raise MagnifyError(
            f"color={config.color!r} takes {' or '.join(map(str, allowed))} input channels, got shape {shape}"
        )
    if min(height, width) < MIN_BAND_SIZE:
        raise MagnifyError(f"frames must be at least {MIN_BAND_SIZE}x{MIN_BAND_SIZE} pixels, got {height}x{width}")
    max_levels = auto_levels(height, width)
    levels = max_levels if config.levels is None else config.levels
    if levels > max_levels:
        raise MagnifyError(
            f"magnify.levels={levels} is too deep for {height}x{width} frames: at most {max_levels} "
            "(each split needs both sides >= 5); lower it or use levels: null for auto"
        )
    fwd, inv = _color_matrices(config, cin)
    channels = fwd.shape[0]
    sizes = np.array([((height - 1) // 2**k + 1, (width - 1) // 2**k + 1) for k in range(levels)], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(channels * sizes[:, 0] * sizes[:, 1])]).astype(np.int64)
    dn = [down_taps(int(sizes[k, a])) for k in range(levels - 1) for a in (0, 1)]
    up = [up_taps(int(sizes[k, a])) for k in range(levels - 1) for a in (0, 1)]
    dn_idx, dn_w, dn_start = _pack(dn)
    up_idx, up_w, up_start = _pack(up)
    gains = band_gains(config, height, width, levels, channels)
    return Plan(
        shape=(height, width, cin),
        out_channels=inv.shape[0],
        sizes=sizes,
        offsets=offsets,
        gains=gains,
        active=np.any(gains != 0, axis=1),
        fwd=fwd,
        inv=inv,
        dn_idx=dn_idx,
        dn_w=dn_w,
        dn_start=dn_start.reshape(-1, 2),
        up_idx=up_idx,
        up_w=up_w,
        up_start=up_start.reshape(-1, 2),
    )


class Magnifier(ABC):
    """Streaming EVM of one face track: one call per frame, state kept between calls.

    Args:
        config: the settings.
        shape: input frames' ``(H, W, C)``.
        fps: the stream's measured frame rate; :meth:`set_fps` updates it later.

    :meth:`process` takes ``(H, W, C)`` uint8 (0-255) or float32 (0-1) frames in ``channel_order``
    and returns float32 ``(H, W, Cout)`` in [0, 1] (same channel order; ``Cout`` = 1 for luma). The
    result is written into a buffer owned by the magnifier (or ``out``) and is overwritten by the
    next call: copy it to keep it.
    """

    def __init__(self, config: MagnifyConfig, shape: tuple[int, int, int], fps: float) -> None:
        self.config = config
        self.plan = make_plan(config, shape)
        self.shape = self.plan.shape
        self.out_shape = (self.shape[0], self.shape[1], self.plan.out_channels)
        self.set_fps(fps)

    def set_fps(self, fps: float) -> None:
        """Re-derive the IIR coefficients for a new (measured) frame rate; the filter state is kept."""
        if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0:
            raise MagnifyError(f"fps must be a positive finite number, got {fps!r}")
        self.fps = float(fps)
        self.r1 = np.float32(coefficient_from_hz(self.config.high_hz, self.fps))
        self.r2 = np.float32(coefficient_from_hz(self.config.low_hz, self.fps))
        self.c1 = np.float32(1.0) - self.r1
        self.c2 = np.float32(1.0) - self.r2

    def check_image(self, image: np.ndarray) -> np.ndarray:
        """``image`` as a C-contiguous ``(H, W, C)`` array, or a MagnifyError saying what is wrong.

        A 2-D grey image is accepted where ``C == 1``.
        """
        if not isinstance(image, np.ndarray):
            raise MagnifyError(f"a frame must be a numpy array, got {type(image).__name__}")
        if image.ndim == 2 and self.shape[2] == 1:
            image = image[:, :, None]
        if image.shape != self.shape:
            raise MagnifyError(
                f"frame shape {image.shape} differs from the magnifier's {self.shape}; resize the crop or "
                "make one magnifier per crop size"
            )
        if image.dtype not in (np.uint8, np.float32):
            raise MagnifyError(
                f"frames must be uint8 (0-255) or float32 (0-1), got {image.dtype}; convert with "
                ".astype(np.float32) after scaling to [0, 1]"
            )
        return np.ascontiguousarray(image)

    def check_out(self, out: np.ndarray | None, default: np.ndarray) -> np.ndarray:
        """``out`` if it is a float32 C-contiguous array of :attr:`out_shape`, ``default`` if None."""
        if out is None:
            return default
        if out.shape != self.out_shape or out.dtype != np.float32 or not out.flags.c_contiguous:
            raise MagnifyError(
                f"out must be a C-contiguous float32 array of shape {self.out_shape}, got {out.dtype} {out.shape}"
            )
        return out

    def process(self, image: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Magnify the next frame of the track; returns ``out`` or the magnifier's own buffer."""
        return self._process(self.check_image(image), out)

    @abstractmethod
    def _process(self, image: np.ndarray, out: np.ndarray | None) -> np.ndarray:
        """Backend work on a checked image."""

    @abstractmethod
    def reset(self) -> None:
        """Forget the track: the next frame is a first frame (passed through, states re-initialised)."""


def make_magnifier(config: MagnifyConfig, shape: tuple[int, int, int], fps: float) -> Magnifier:
    """A magnifier of ``config.backend`` for one track of ``shape = (H, W, C)`` frames at ``fps``."""
    if config.backend == "reference":
        from .reference import ReferenceMagnifier

        return ReferenceMagnifier(config, shape, fps)
    if config.backend == "numba":
        from .numba_cpu import NumbaMagnifier

        return NumbaMagnifier(config, shape, fps)
    from .numba_cuda import CudaMagnifier

    return CudaMagnifier(config, shape, fps)
