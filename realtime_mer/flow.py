"""Optical flow, optical strain and the model-specific inputs of the papers.

Conventions:
    * Images are NumPy arrays: ``(H, W)`` grey, ``(H, W, 1)``, ``(H, W, 3)`` BGR or ``(H, W, 4)`` BGRA;
      uint8 in [0, 255] or floating point in [0, 1] (OpenCV's convention for float images; magnified
      frames may overshoot a little and are clipped).
    * Sizes are ``(height, width)`` in NumPy order everywhere in this module.
    * Flow is ``(H, W, 2)`` float32: ``(u, v)`` in pixels, from the first image to the second, so
      ``a[y, x] ~ b[y + v, x + u]``.

Model inputs (sizes read from the papers in ``../shared/seeds``):
    * RCN (seed 003, Sec. III-A, Eq. 2): ``(u, v, strain)`` of the onset->apex flow, 60x60; each channel
      min-max scaled to [0, 1] as a flow PNG would be (:func:`flow_strain_map`, :func:`normalize_map`).
    * STRCN-G (seed 001, Sec. III-C2, IV-A): onset->apex flow of frames resized to 300x245, where
      300 is the height (the crop is 2.2 x 1.8 inter-ocular distances, 300/245 = 2.2/1.8)
      (:func:`strcn_g_input`).
    * STRCN-A (seed 001, Eq. 4, IV-A): frames resized to 64x48 (H x W, same aspect rule), a
      difference heat-map (summed over the whole data set in the paper), the top p = 30 % pixels as a
      mask, 30 frames, a d2 x T matrix per channel (:func:`strcn_a_input`).
    * CNN-LSTM (seed 002, Sec. 4.1.2): six regions of sizes [100,80], [100,80], [120,80], [60,60],
      [60,60], [160,60] given as width x height (a mouth 160 wide and 60 high), boxes fixed from the
      first frame, smaller crops put on a black background (:func:`region_crops`, :func:`region_sequences`).
    * DTSCNN (seed 004, "Pre-Processing", "DTSCNN"): frames cropped to 96x112 (w x h), linearly
      interpolated to 65 / 129 frames, flow between adjacent frames: 64 / 128 flows; the paper colours
      them (Munsell) into 3 channels, here they stay (u, v) (:func:`dtscnn_input`).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Literal

import cv2
import numpy as np

from realtime_mer.errors import UserError

from .config import settings

FlowMethod = Literal["tvl1", "dis", "farneback"]
Normalize = Literal["minmax", "none"]
RegionMode = Literal["fit", "pad", "resize"]

RCN_SIZE = (60, 60)
STRCN_G_SIZE = (300, 245)
STRCN_A_SIZE = (64, 48)
STRCN_A_FRAMES = 30
STRCN_A_TOP = 0.30
DTSCNN_SIZE = (112, 96)
DTSCNN_LENGTHS = (64, 128)
# Seed 002 gives [w, h]: eye+brow x2, nose, cheek x2, mouth; stored here as (h, w).
REGION_SIZES: tuple[tuple[int, int], ...] = ((80, 100), (80, 100), (80, 120), (60, 60), (60, 60), (60, 160))

# OpenCV's TV-L1 defaults take 55-155 ms at 60x60-128x128 on 2 cores (RECIPES.md); "fast" takes 0.3-0.5x the
# time (60x60-300x245) and its end-point error on sub-pixel moves of a real face is within 0.01 px of theirs.
TVL1_PRESETS: dict[str, dict[str, float]] = {
    "fast": {"nscales": 3, "warps": 3, "epsilon": 0.01, "innnerIterations": 10, "outerIterations": 2},
    "default": {},
}
# DIS "medium" is the default: on 0.3-0.7 px moves and a 2 % zoom of a real 128x128 face its mean end-point
# error is 0.06-0.085 px at ~1.5 ms (one thread) against 0.10-0.15 px at ~0.25 ms for "fast".
DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
# pyr_scale, levels, winsize, iterations, poly_n, poly_sigma, flags
FARNEBACK_PARAMS = (0.5, 3, 15, 3, 5, 1.2, 0)
# Magnified float frames overshoot [0, 1] a little; a float image brighter than this is 0-255 data.
_FLOAT_PEAK_MAX = 4.0
_DEFAULT_PRESET = {"tvl1": "fast", "dis": "medium", "farneback": "default"}
_PRESETS = {"tvl1": tuple(TVL1_PRESETS), "dis": tuple(DIS_PRESETS), "farneback": ("default",)}


class FlowInputError(UserError, ValueError):
    """An image, flow or sequence handed to this module has the wrong shape, dtype or range."""


@settings
class FlowConfig:
    """The flow stage's settings.

    Attributes:
        method: ``"tvl1"`` (accurate, slow), ``"dis"`` (fast) or ``"farneback"``.
        preset: method preset (see :class:`FlowEstimator`); ``None`` takes the method's default.
        map_size: ``(h, w)`` of the RCN map.
        normalize: how :func:`flow_strain_map` scales its channels (see :func:`normalize_map`).
    """

    method: FlowMethod = "dis"
    preset: str | None = None
    map_size: tuple[int, int] = RCN_SIZE
    normalize: Normalize = "minmax"

    def __post_init__(self) -> None:
        _check_preset(self.method, self.preset)
        _check_size(self.map_size, "map_size")


def _check_preset(method: str, preset: str | None) -> str:
    if method not in _PRESETS:
        raise FlowInputError(f"unknown flow method {method!r}; use one of {', '.join(_PRESETS)}")
    preset = preset or _DEFAULT_PRESET[method]
    if preset not in _PRESETS[method]:
        raise FlowInputError(f"unknown {method} preset {preset!r}; use one of {', '.join(_PRESETS[method])}")
    return preset


def _check_size(size: Sequence[int], what: str) -> tuple[int, int]:
    if len(size) != 2 or any(int(s) != s or s < 1 for s in size):
        raise FlowInputError(f"{what} must be (height, width) positive integers, got {size!r}")
    return int(size[0]), int(size[1])


# ---------------------------------------------------------------- images


def _check_float_range(arr: np.ndarray, what: str) -> np.ndarray:
    """``arr`` unchanged if it looks like [0, 1] data; 0-255 floats and NaN/inf raise."""
    peak = float(arr.max(initial=0.0))
    if not np.isfinite(peak) or peak > _FLOAT_PEAK_MAX:
        raise FlowInputError(
            f"{what} is a float image with max {peak}: float images must be in [0, 1] "
            "(divide 0-255 data by 255, or pass uint8)"
        )
    return arr


def _grey(img: np.ndarray, what: str) -> np.ndarray:
    """``(H, W)`` grey of an image in the module's conventions, dtype uint8 or float32 [0, 1]."""
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (3, 4)):
        raise FlowInputError(f"{what} must be (H, W), (H, W, 1), (H, W, 3) BGR or (H, W, 4) BGRA, got {img.shape}")
    if img.dtype != np.uint8:
        if not np.issubdtype(img.dtype, np.floating):
            raise FlowInputError(f"{what} has dtype {img.dtype}; pass uint8 [0, 255] or float [0, 1]")
        img = np.clip(_check_float_range(img.astype(np.float32, copy=False), what), 0.0, 1.0)
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY if img.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
    return img


def _as_float01(frames: np.ndarray) -> np.ndarray:
    """Frames as float32: uint8 divided by 255, floats unchanged (already in [0, 1])."""
    frames = np.asarray(frames)
    if frames.dtype == np.uint8:
        return frames.astype(np.float32) * np.float32(1 / 255)
    if not np.issubdtype(frames.dtype, np.floating):
        raise FlowInputError(f"frames have dtype {frames.dtype}; pass uint8 [0, 255] or float [0, 1]")
    return _check_float_range(frames.astype(np.float32, copy=False), "frames")


def _resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize ``(H, W[, C])`` to ``size = (h, w)``: area averaging when shrinking, bilinear otherwise."""
    h, w = size
    if img.shape[:2] == (h, w):
        return img
    shrink = h <= img.shape[0] and w <= img.shape[1]
    out = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return out[..., None] if img.ndim == 3 and out.ndim == 2 else out


def _check_sequence(frames: np.ndarray, what: str, min_len: int = 1) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim not in (3, 4) or (frames.ndim == 4 and frames.shape[3] not in (1, 3)):
        raise FlowInputError(f"{what} must be (T, H, W) grey or (T, H, W, 1|3) frames, got {frames.shape}")
    if frames.shape[0] < min_len:
        raise FlowInputError(f"{what} needs at least {min_len} frame(s), got {frames.shape[0]}")
    return frames


# ---------------------------------------------------------------- flow


class FlowEstimator:
    """A flow method with its OpenCV objects, created once per image size and reused.

    One object per size, because OpenCV's DIS rewrites its own finest scale and patch size the first
    time it sees an image too small for them and keeps them for every later size (results and speed
    then differ from a fresh object). Presets (default first): ``tvl1``: ``"fast"`` (nscales 3, warps 3,
    epsilon 0.01, inner 10, outer 2) or ``"default"`` (OpenCV's); ``dis``: ``"medium"``, ``"fast"``,
    ``"ultrafast"``; ``farneback``: ``"default"`` (:data:`FARNEBACK_PARAMS`). OpenCV flow objects are not
    thread-safe: use one estimator per thread (:func:`compute_flow` keeps one per thread for you).
    """

    def __init__(self, method: FlowMethod = "dis", preset: str | None = None) -> None:
        self.preset = _check_preset(method, preset)
        self.method = method
        self._objects: dict[tuple[int, ...], cv2.DenseOpticalFlow] = {}

    def _object(self, shape: tuple[int, ...]) -> cv2.DenseOpticalFlow:
        if shape not in self._objects:
            if self.method == "tvl1":  # OpenCV's type stubs lack the contrib and DIS factories
                self._objects[shape] = cv2.optflow.DualTVL1OpticalFlow_create(**TVL1_PRESETS[self.preset])  # type: ignore[attr-defined]
            else:
                self._objects[shape] = cv2.DISOpticalFlow_create(DIS_PRESETS[self.preset])  # type: ignore[attr-defined]
        return self._objects[shape]

    def grey(self, img: np.ndarray, what: str = "image") -> np.ndarray:
        """``(H, W)`` grey in the one form this method computes on, whatever the input's dtype.

        DIS: uint8. TV-L1: float32 in [0, 1] (OpenCV scales float input by 255). Farneback: float32 in
        [0, 255] (its parameters are tuned for 0-255 intensities). Both float forms keep the sub-level
        precision of magnified frames.
        """
        g = _grey(img, what)
        if self.method == "dis":
            return g if g.dtype == np.uint8 else cv2.convertScaleAbs(g, alpha=255.0)  # rounds, saturates
        if g.dtype == np.uint8:
            return g.astype(np.float32) * np.float32(1 / 255 if self.method == "tvl1" else 1.0)
        return g if self.method == "tvl1" else g * np.float32(255.0)

    def flow_grey(self, g0: np.ndarray, g1: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Flow between two outputs of :meth:`grey` of one size; writes into ``out`` (H, W, 2) float32 if given."""
        if g0.shape != g1.shape:
            raise FlowInputError(f"the two images differ in size: {g0.shape} vs {g1.shape}; resize them to one size")
        if out is not None and (out.shape != (*g0.shape, 2) or out.dtype != np.float32):
            raise FlowInputError(f"out must be {(*g0.shape, 2)} float32, got {out.shape} {out.dtype}")
        if self.method == "farneback":
            return cv2.calcOpticalFlowFarneback(g0, g1, out, *FARNEBACK_PARAMS)
        if self.method == "tvl1":
            return self._object(g0.shape).calc(g0, g1, out)  # type: ignore[arg-type]  # None: a new array
        # OpenCV 5.0's DIS segfaults when calls with a caller's flow buffer and calls without one alternate
        # at changing sizes, so DIS always allocates its own output and the result is copied into ``out``.
        flow = self._object(g0.shape).calc(g0, g1, None)  # type: ignore[call-overload]  # None: a new array
        if out is None:
            return flow
        np.copyto(out, flow)
        return out

    def __call__(self, a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``(H, W, 2)`` float32 flow (u, v) in pixels from ``a`` to ``b`` (same size, any supported image)."""
        a_arr, b_arr = np.asarray(a), np.asarray(b)
        if a_arr.shape[:2] != b_arr.shape[:2]:
            raise FlowInputError(
                f"the two images differ in size: {a_arr.shape} vs {b_arr.shape}; crop/resize both to one size"
            )
        return self.flow_grey(self.grey(a_arr, "first image"), self.grey(b_arr, "second image"), out)


_local = threading.local()


def estimator(method: FlowMethod = "dis", preset: str | None = None) -> FlowEstimator:
    """This thread's cached :class:`FlowEstimator` for ``(method, preset)``, created on first use."""
    key = (method, _check_preset(method, preset))
    cache = _local.__dict__.setdefault("estimators", {})
    if key not in cache:
        cache[key] = FlowEstimator(method, key[1])
    return cache[key]


def compute_flow(
    a: np.ndarray,
    b: np.ndarray,
    method: FlowMethod = "dis",
    preset: str | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """``(H, W, 2)`` float32 optical flow (u, v) in pixels from ``a`` to ``b``.

    ``a``, ``b``: same-size BGR/BGRA/grey, uint8 or float in [0, 1]. The OpenCV object is cached per
    thread, method and preset. ``out``: optional ``(H, W, 2)`` float32 buffer written in place.
    """
    return estimator(method, preset)(a, b, out)


def _check_flow(flow: np.ndarray) -> np.ndarray:
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise FlowInputError(f"flow must be (H, W, 2) (u, v), got {flow.shape}")
    if flow.shape[0] < 2 or flow.shape[1] < 2:
        raise FlowInputError(f"flow must be at least 2x2 to take derivatives, got {flow.shape}")
    return flow.astype(np.float32, copy=False)


def resize_flow(flow: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Flow ``(H, W, 2)`` resized to ``size = (h, w)`` with u scaled by w/W and v by h/H (pixels of the new grid)."""
    flow = _check_flow(flow)
    small = _resize_vectors(flow, _check_size(size, "size"))
    return flow.copy() if small is flow else small


def _resize_vectors(m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(H, W, C)`` map whose channels 0, 1 are (u, v) resized to ``size``, u and v rescaled to the new grid."""
    small = _resize(m, size)
    if small is not m:
        small[..., 0] *= size[1] / m.shape[1]
        small[..., 1] *= size[0] / m.shape[0]
    return small


def optical_strain(flow: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``(H, W)`` float32 optical strain magnitude of a flow field (dimensionless).

    Eq. 2 of the RCN paper (seed 003): ``sqrt(u_x^2 + v_y^2 + 1/2 (u_y + v_x)^2)``, which is the Frobenius
    norm ``sqrt(e_xx^2 + e_yy^2 + 2 e_xy^2)`` of the strain tensor ``e = 1/2 (grad V + grad V^T)``.
    Derivatives are central differences (one-sided at the border). A translation or a small rotation gives 0;
    a uniform scaling by ``1 + s`` gives ``sqrt(2) * |s|``.
    """
    flow = _check_flow(flow)
    u_y, u_x = np.gradient(flow[..., 0])
    v_y, v_x = np.gradient(flow[..., 1])
    shear = u_y + v_x
    res = np.multiply(u_x, u_x, out=u_x)
    res += v_y * v_y
    res += np.float32(0.5) * shear * shear
    return np.sqrt(res, out=out if out is not None else res)


# ---------------------------------------------------------------- RCN and STRCN-G


def normalize_map(m: np.ndarray, mode: Normalize = "minmax") -> np.ndarray:
    """Scale a float ``(..., C)`` map in place per channel; the one scaling shared by trainer and live path.

    ``"minmax"``: each channel of this sample to [0, 1] by its own min and max (how flow images are
    usually written to PNG; the RCN code reads PNGs as [0, 1]); a constant channel becomes 0.
    ``"none"``: unchanged (u, v in pixels, strain dimensionless).
    """
    if mode == "none":
        return m
    if mode != "minmax":
        raise FlowInputError(f"unknown normalisation {mode!r}; use 'minmax' or 'none'")
    axes = tuple(range(m.ndim - 1))
    lo = m.min(axis=axes)
    span = m.max(axis=axes) - lo
    m -= lo
    m *= np.divide(1.0, span, out=np.zeros_like(span), where=span > 0)
    return m


def flow_strain_map(
    onset: np.ndarray,
    apex: np.ndarray,
    size: tuple[int, int] = RCN_SIZE,
    method: FlowMethod = "dis",
    preset: str | None = None,
    normalize: Normalize = "minmax",
) -> np.ndarray:
    """The 3-channel map of the RCN paper: ``(h, w, 3)`` float32 ``(u, v, strain)``.

    Flow and strain are computed at the crops' own resolution (more pixels, better flow), then the map is
    resized to ``size = (h, w)`` with u, v rescaled to the new grid (strain is scale-free), then scaled by
    :func:`normalize_map` (``"minmax"``: each channel in [0, 1]). Transpose to ``(3, h, w)`` for a model.
    """
    size = _check_size(size, "size")
    flow = compute_flow(onset, apex, method, preset)
    full = np.empty((*flow.shape[:2], 3), np.float32)
    full[..., :2] = flow
    optical_strain(flow, out=full[..., 2])
    return normalize_map(_resize_vectors(full, size), normalize)


def strcn_g_input(
    onset: np.ndarray,
    apex: np.ndarray,
    size: tuple[int, int] = STRCN_G_SIZE,
    method: FlowMethod = "dis",
    preset: str | None = None,
    normalize: Normalize = "none",
) -> np.ndarray:
    """STRCN-G input: ``(2, h, w)`` float32 onset->apex flow of the frames resized to ``size`` (300x245).

    As in the paper the frames are resized first and the flow computed at that size; it is used raw
    (pixels) by default: the paper normalises flow only for display.
    """
    size = _check_size(size, "size")
    est = estimator(method, preset)
    onset, apex = np.asarray(onset), np.asarray(apex)
    if onset.shape[:2] != apex.shape[:2]:
        raise FlowInputError(f"onset and apex differ in size: {onset.shape} vs {apex.shape}; crop both alike")
    g0 = _resize(est.grey(onset, "onset"), size)
    g1 = _resize(est.grey(apex, "apex"), size)
    flow = normalize_map(est.flow_grey(g0, g1), normalize)
    return np.ascontiguousarray(flow.transpose(2, 0, 1))


# ---------------------------------------------------------------- sequences: STRCN-A and DTSCNN


def temporal_interpolate(seq: np.ndarray, length: int, out: np.ndarray | None = None) -> np.ndarray:
    """``seq`` ``(T, ...)`` resampled to ``(length, ...)`` float32 by linear interpolation along axis 0.

    Output frame j sits at input time ``j (T - 1) / (length - 1)``: the first and last frames are kept
    and a linear ramp is reproduced exactly. A single frame is repeated.
    """
    seq = np.asarray(seq)
    if seq.ndim < 1 or seq.shape[0] < 1:
        raise FlowInputError(f"seq must have at least one frame along axis 0, got shape {seq.shape}")
    if int(length) != length or length < 1:
        raise FlowInputError(f"length must be a positive integer, got {length!r}")
    length = int(length)
    shape = (length, *seq.shape[1:])
    if out is None:
        out = np.empty(shape, np.float32)
    elif out.shape != shape or out.dtype != np.float32:
        raise FlowInputError(f"out must be {shape} float32, got {out.shape} {out.dtype}")
    t = seq.shape[0]
    pos = np.linspace(0.0, t - 1, length) if length > 1 else np.zeros(1)
    i0 = np.minimum(np.floor(pos).astype(np.intp), max(t - 2, 0))
    i1 = np.minimum(i0 + 1, t - 1)
    wgt = (pos - i0).astype(np.float32).reshape((length,) + (1,) * (seq.ndim - 1))
    np.multiply(seq[i0], 1 - wgt, out=out, casting="unsafe")
    out += seq[i1] * wgt
    return out


def difference_heatmap(frames: np.ndarray) -> np.ndarray:
    """STRCN-A difference heat map ``E = sum_t |I_t - I_0|`` (Eq. 4), ``(H, W)`` float32, summed over channels.

    ``frames``: ``(T, H, W)`` or ``(T, H, W, C)`` of one (magnified) sequence. The paper sums E over all
    sequences of a data set: add the maps of several sequences to get that mask.
    """
    f = _as_float01(_check_sequence(frames, "frames"))
    diff = np.abs(f[1:] - f[:1]).sum(axis=0, dtype=np.float32)
    return diff.sum(axis=-1) if diff.ndim == 3 else diff


def top_fraction_mask(heat: np.ndarray, p: float = STRCN_A_TOP) -> np.ndarray:
    """``(H, W)`` bool mask of the ``round(p * H * W)`` (at least 1) largest values of ``heat``.

    Ties are broken by raster order, so the mask always holds exactly that many pixels.
    """
    heat = np.asarray(heat)
    if heat.ndim != 2:
        raise FlowInputError(f"heat map must be (H, W), got {heat.shape}")
    if not 0 < p <= 1:
        raise FlowInputError(f"p must be a fraction in (0, 1], got {p}")
    k = max(1, int(round(p * heat.size)))
    order = np.argsort(-heat.ravel(), kind="stable")
    mask = np.zeros(heat.size, bool)
    mask[order[:k]] = True
    return mask.reshape(heat.shape)


def pack_mask(mask: np.ndarray) -> str:
    """An ``(H, W)`` bool mask as text, ``"HxW:"`` and the base64 of its packed bits (how a
    checkpoint's config holds STRCN-A's data-set mask).

    >>> m = np.zeros((4, 3), bool); m[1, 2] = True
    >>> pack_mask(m)
    '4x3:BAA='
    >>> bool((unpack_mask(pack_mask(m)) == m).all())
    True
    """
    import base64

    mask = np.asarray(mask, bool)
    if mask.ndim != 2:
        raise FlowInputError(f"a mask is (H, W), got {mask.shape}")
    return f"{mask.shape[0]}x{mask.shape[1]}:" + base64.b64encode(np.packbits(mask.ravel()).tobytes()).decode("ascii")


def unpack_mask(text: str) -> np.ndarray:
    """The ``(H, W)`` bool mask :func:`pack_mask` wrote."""
    import base64
    import binascii

    try:
        size, bits = text.split(":", 1)
        h, w = (int(v) for v in size.split("x"))
        mask = np.unpackbits(np.frombuffer(base64.b64decode(bits, validate=True), np.uint8))[: h * w]
        return mask.astype(bool).reshape(h, w)
    except (ValueError, binascii.Error) as e:
        raise FlowInputError(f"not a packed mask ('HxW:' and base64 bits): {text[:40]!r}: {e}") from None


def strcn_a_input(
    frames: np.ndarray,
    mask: np.ndarray | None = None,
    p: float = STRCN_A_TOP,
    size: tuple[int, int] = STRCN_A_SIZE,
    length: int = STRCN_A_FRAMES,
) -> np.ndarray:
    """STRCN-A input: ``(C, d2, T)`` float32, each frame's masked pixels as one column.

    ``frames``: ``(T, H, W)`` grey or ``(T, H, W, C)`` aligned (magnified) frames, uint8 or float [0, 1].
    Frames are resized to ``size`` (64x48, h x w), the mask (``(h, w)`` bool; computed from this
    sequence's :func:`difference_heatmap` with :func:`top_fraction_mask` when not given, or a data-set
    mask as in the paper) keeps ``d2`` pixels in raster order, and time is normalised to ``length``
    (30) frames by :func:`temporal_interpolate`. Intensities stay in [0, 1].
    """
    size = _check_size(size, "size")
    frames = _check_sequence(frames, "frames")
    small = np.stack([_resize(f, size) for f in _as_float01(frames)])
    if mask is None:
        mask = top_fraction_mask(difference_heatmap(small), p)
    mask = np.asarray(mask)
    if mask.shape != size or mask.dtype != bool:
        raise FlowInputError(
            f"mask must be a {size} bool array (the resized frame size), got {mask.shape} {mask.dtype}"
        )
    picked = small[:, mask]  # (T, d2) or (T, d2, C)
    if picked.ndim == 2:
        picked = picked[..., None]
    return np.ascontiguousarray(temporal_interpolate(picked, length).transpose(2, 1, 0))


def dtscnn_input(
    frames: np.ndarray,
    length: int = DTSCNN_LENGTHS[0],
    size: tuple[int, int] = DTSCNN_SIZE,
    method: FlowMethod = "dis",
    preset: str | None = None,
    interpolate: Literal["frames", "flows"] = "frames",
) -> np.ndarray:
    """DTSCNN input: ``(2, length, h, w)`` float32 flow sequence (u, v in pixels of the ``size`` grid).

    ``frames``: ``(T, H, W[, C])`` clip aligned to its first frame, T >= 2. Frames are resized to
    ``size`` (112x96, h x w). ``interpolate="frames"`` is the paper's order: frames linearly interpolated
    to ``length + 1`` (65 / 129), then the flow between adjacent frames. ``"flows"`` is the cheap
    variant for a live path: ``T - 1`` adjacent flows interpolated to ``length`` and scaled by
    ``(T - 1) / length``, so both variants sum to the same total displacement. Interpolated frames
    differ by a fraction of a grey level where motion is small: DIS, which needs uint8, loses that
    precision; TV-L1 and Farneback compute on the floats.
    """
    size = _check_size(size, "size")
    frames = _check_sequence(frames, "frames", min_len=2)
    if int(length) != length or length < 1:
        raise FlowInputError(f"length must be a positive integer, got {length!r}")
    if interpolate not in ("frames", "flows"):
        raise FlowInputError(f"interpolate must be 'frames' or 'flows', got {interpolate!r}")
    est = estimator(method, preset)
    small = np.stack([_resize(f, size) for f in _as_float01(frames)])
    if interpolate == "frames":
        small = temporal_interpolate(small, length + 1)
    grey = [est.grey(f, f"frame {i}") for i, f in enumerate(small)]
    flows = np.empty((len(grey) - 1, *size, 2), np.float32)
    for i in range(len(grey) - 1):
        est.flow_grey(grey[i], grey[i + 1], out=flows[i])
    if interpolate == "flows":
        flows = temporal_interpolate(flows, length)
        flows *= (frames.shape[0] - 1) / length
    return np.ascontiguousarray(flows.transpose(3, 0, 1, 2))


# ---------------------------------------------------------------- regions: CNN-LSTM


def _fit_region(patch: np.ndarray, size: tuple[int, int], mode: RegionMode) -> np.ndarray:
    """``(h, w, C)`` float32 region at ``size``: stretched, or aspect kept and centred on black."""
    h, w = size
    if mode == "resize":
        return _resize(patch, size)
    ph, pw = patch.shape[:2]
    scale = min(h / ph, w / pw)
    if mode == "pad":
        scale = min(scale, 1.0)  # the paper's black background: shrink only when too big
    elif mode != "fit":
        raise FlowInputError(f"region mode must be 'fit', 'pad' or 'resize', got {mode!r}")
    nh, nw = min(h, max(1, round(ph * scale))), min(w, max(1, round(pw * scale)))
    canvas = np.zeros((h, w, patch.shape[2]), np.float32)
    y0, x0 = (h - nh) // 2, (w - nw) // 2
    canvas[y0 : y0 + nh, x0 : x0 + nw] = _resize(patch, (nh, nw))
    return canvas


def _region_slices(
    shape: tuple[int, ...], boxes: Sequence[tuple], sizes: Sequence[tuple[int, int]] | None
) -> list[tuple[str, tuple[slice, slice], tuple[int, int]]]:
    """``(name, (rows, cols), (h, w))`` per box, clipped to the crop; clear errors for bad boxes or sizes."""
    if sizes is None:
        if len(boxes) != len(REGION_SIZES):
            raise FlowInputError(
                f"the paper's sizes are for six regions, got {len(boxes)} boxes; pass sizes for each box"
            )
        sizes = REGION_SIZES
    if len(sizes) != len(boxes):
        raise FlowInputError(f"{len(boxes)} boxes but {len(sizes)} sizes")
    hgt, wid = shape[:2]
    out = []
    for box, size in zip(boxes, sizes):
        if len(box) != 5:
            raise FlowInputError(f"a region box is (name, x0, y0, x1, y1), got {box!r}")
        name, x0, y0, x1, y1 = box
        xa, ya = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
        xb, yb = min(wid, int(np.ceil(x1))), min(hgt, int(np.ceil(y1)))
        if xb <= xa or yb <= ya:
            raise FlowInputError(f"region {name!r} box {box[1:]} is empty inside the {wid}x{hgt} crop")
        out.append((str(name), (slice(ya, yb), slice(xa, xb)), _check_size(size, f"size of region {name!r}")))
    return out


def region_sequences(
    frames: np.ndarray,
    boxes: Sequence[tuple[str, float, float, float, float]],
    sizes: Sequence[tuple[int, int]] | None = None,
    mode: RegionMode = "fit",
) -> dict[str, np.ndarray]:
    """Six-region CNN-LSTM input: region name -> ``(T, C, h, w)`` float32 in [0, 1].

    ``frames``: ``(T, H, W)`` or ``(T, H, W, C)`` crops; ``boxes``: ``(name, x0, y0, x1, y1)`` in crop
    pixels (x1, y1 exclusive), fixed from the first frame as in the paper. ``sizes``: ``(h, w)`` per box,
    default :data:`REGION_SIZES` (the paper's, in its region order). ``mode``: ``"fit"`` keeps the aspect,
    scales to fit and pads with black; ``"pad"`` is the paper's literal black background (no upscaling);
    ``"resize"`` stretches.
    """
    frames = _check_sequence(frames, "frames")
    f = _as_float01(frames)
    if f.ndim == 3:
        f = f[..., None]
    regions = {}
    for name, (sy, sx), size in _region_slices(f.shape[1:], boxes, sizes):
        if name in regions:
            raise FlowInputError(f"region name {name!r} appears twice")
        seq = np.stack([_fit_region(frame[sy, sx], size, mode) for frame in f])
        regions[name] = np.ascontiguousarray(seq.transpose(0, 3, 1, 2))
    return regions


def region_crops(
    image: np.ndarray,
    boxes: Sequence[tuple[str, float, float, float, float]],
    sizes: Sequence[tuple[int, int]] | None = None,
    mode: RegionMode = "fit",
) -> dict[str, np.ndarray]:
    """One frame's regions: name -> ``(C, h, w)`` float32 in [0, 1] (see :func:`region_sequences`)."""
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise FlowInputError(f"image must be (H, W) or (H, W, C), got {image.shape}")
    return {k: v[0] for k, v in region_sequences(image[None], boxes, sizes, mode).items()}
