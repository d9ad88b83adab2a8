"""Model inputs from aligned face crops: one definition per input kind, shared by the trainer's
preprocessing (:mod:`realtime_mer.train.preprocess`) and the live recognizer
(:mod:`realtime_mer.recognize`), so a model sees live what it was trained on.

Every definition takes the crops of one interval, ``(T, h, w, 3)`` (uint8 BGR, or float32 in [0, 1]
after EVM) registered to the first (onset) frame, the apex index into them and the onset crop's
``(68, 2)`` points, and returns the model's inputs by name (float32, without the batch axis):

* ``rcn``: ``flow_strain_map`` of onset -> apex, ``(3, h, w)`` (the RCN family);
* ``strcn-g``: ``strcn_g_input`` of onset -> apex, ``(2, h, w)``;
* ``strcn-a``: ``strcn_a_input`` over the interval, ``(3, d2, T)``: the pixels of the model's
  data-set mask (the paper's, from its training data: :func:`strcn_a_dataset_mask`), or of the
  interval's own difference heat map (``mask: sequence``); its crops are EVM-magnified first
  (:func:`magnify_sequence`; the checkpoint's ``test_alpha``); with ``difference`` each frame column
  is its difference from the first, times that, clipped;
* ``regions``: the six regions of the region CNN-LSTM, boxes fixed from the onset points
  (:func:`realtime_mer.face.regions.regions`): the window (:func:`region_window`), each region
  ``(T, 3, h_i, w_i)``, plus ``length`` ``(1,)``, how many of its T steps are frames;
* ``dtscnn``: ``dtscnn_input`` at both lengths, ``(2, 64, 112, 96)`` and ``(2, 128, 112, 96)``.

The ``rcn`` and ``strcn-g`` kinds read only the onset and apex crops (:attr:`InputDef.pair`): the live
path hands them those two and copies no sequence.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from . import flow
from .errors import UserError
from .flow import STRCN_A_SIZE, FlowMethod

InputKind = Literal["rcn", "strcn-g", "strcn-a", "regions", "dtscnn"]

INPUT_OF_MODEL: dict[str, InputKind] = {
    "strcn-g": "strcn-g",
    "strcn-a": "strcn-a",
    "region-lstm": "regions",
    "dtscnn": "dtscnn",
}
"""Registry name (or family) -> input kind; every ``rcn*`` model takes ``rcn``."""

STATE_INPUTS = ("h0", "c0")
"""Model inputs that are recurrent state (the region CNN-LSTM's), not made from crops."""

Crops = np.ndarray | Sequence[np.ndarray]
"""``(T, h, w, 3)`` crops, or a sequence of ``(h, w, 3)`` crops (the pair kinds index it only)."""


class InputError(UserError, ValueError):
    """Crops or settings an input definition cannot use; the message says what to change."""


@dataclass(frozen=True)
class InputSettings:
    """What the input definitions need besides the crops.

    Attributes:
        shapes: model input name -> shape without the batch axis (state inputs left out).
        flow_method, flow_preset: optical flow (:mod:`realtime_mer.flow`).
        alpha: EVM factor the crops of a ``magnified`` kind are magnified with before
            :func:`model_input` (:func:`magnify_sequence`; the checkpoint's ``test_alpha``), 0: none.
        rate: steps a second of the region window (:func:`region_window`); 0: every frame.
        difference: the region window's steps (STRCN-A's frame columns) as their difference from
            the first, times this, clipped to [-3, 3]; 0: the frames themselves (the papers).
        mask: STRCN-A's pixel mask: a data-set mask packed by :func:`realtime_mer.flow.pack_mask`
            (the trained model's), or ``"sequence"``: each interval's own difference heat map.
    """

    shapes: dict[str, tuple[int, ...]]
    flow_method: FlowMethod = "dis"
    flow_preset: str | None = None
    alpha: float = 0.0
    rate: float = 0.0
    difference: float = 0.0
    mask: str = "sequence"

    @classmethod
    def of_model(cls, config: dict[str, Any], shapes: dict[str, tuple[int, ...]], **options: Any) -> InputSettings:
        """Settings of a model built with ``config`` (its ``rate``, ``difference`` and ``mask`` if it has them)."""
        return cls(
            shapes,
            rate=float(config.get("rate", 0.0)),
            difference=float(config.get("difference", 0.0)),
            mask=str(config.get("mask", "sequence")),
            **options,
        )


Build = Callable[[InputSettings, Crops, int, "np.ndarray | None", float], dict[str, np.ndarray]]


@dataclass(frozen=True)
class InputDef:
    """One input kind: how its arrays are made, and what of the interval it reads.

    Attributes:
        kind: the registry key.
        build: ``(settings, crops, apex, points68, fps) -> {name: array}``.
        pair: reads only the onset and apex crops.
        magnified: its crops are EVM-magnified at ``settings.alpha`` (STRCN's training variants).
        landmarks: needs the onset crop's 68 points.
    """

    kind: InputKind
    build: Build
    pair: bool = False
    magnified: bool = False
    landmarks: bool = False
    doc: str = field(default="", compare=False)


INPUTS: dict[str, InputDef] = {}


def register_input(d: InputDef) -> InputDef:
    """Add an input kind to :data:`INPUTS`."""
    INPUTS[d.kind] = d
    return d


def input_def(kind: str) -> InputDef:
    """The definition of input ``kind``; a clear error for an unknown one."""
    try:
        return INPUTS[kind]
    except KeyError:
        raise InputError(f"unknown input kind {kind!r}; known: {', '.join(INPUTS)}") from None


def input_kind(model: str, family: str) -> InputKind:
    """The input kind a registered model eats (by registry name, else family, else ``rcn``)."""
    return INPUT_OF_MODEL.get(model) or INPUT_OF_MODEL.get(family) or "rcn"


def model_input(
    kind: str,
    settings: InputSettings,
    crops: Crops,
    apex: int,
    points68: np.ndarray | None = None,
    fps: float = 30.0,
) -> dict[str, np.ndarray]:
    """Input arrays of one interval for input ``kind`` (see the module docstring); ``fps``: the
    crops' frame rate, Hz.

    ``crops`` are used as given: magnify them first (:func:`magnify_sequence`) for a ``magnified`` kind.
    """
    d = input_def(kind)
    n = len(crops)
    if n < 2:
        raise InputError(f"{kind} input needs at least two crops (onset and apex or later), got {n}")
    if not 0 <= apex < n:
        raise InputError(f"apex index {apex} is outside the {n} crops")
    if d.landmarks and points68 is None:
        raise InputError(f"{kind} input needs the onset crop's 68 points (points68)")
    return d.build(settings, crops, apex, points68, fps)


def magnify_sequence(crops: np.ndarray, alpha: float, fps: float) -> np.ndarray:
    """``crops`` ``(T, h, w, 3)`` uint8 magnified by EVM at ``alpha`` from their first frame: float32
    in [0, 1]; ``alpha = 0`` returns ``crops`` themselves (uint8)."""
    if alpha == 0:
        return crops
    from .magnify import MagnifyConfig, make_magnifier

    mag = make_magnifier(MagnifyConfig(alpha=alpha), crops.shape[1:], fps)
    return np.stack([mag.process(f).copy() for f in crops])


def _first(settings: InputSettings) -> tuple[str, tuple[int, ...]]:
    return next(iter(settings.shapes.items()))


def _rcn(s: InputSettings, crops: Crops, apex: int, _: np.ndarray | None, ___: float) -> dict[str, np.ndarray]:
    name, shape = _first(s)
    m = flow.flow_strain_map(crops[0], crops[apex], (shape[1], shape[2]), s.flow_method, s.flow_preset)
    return {name: np.ascontiguousarray(m.transpose(2, 0, 1))}


def _strcn_g(s: InputSettings, crops: Crops, apex: int, _: np.ndarray | None, ___: float) -> dict[str, np.ndarray]:
    name, shape = _first(s)
    return {name: flow.strcn_g_input(crops[0], crops[apex], (shape[1], shape[2]), s.flow_method, s.flow_preset)}


def _strcn_a(s: InputSettings, crops: Crops, _: int, __: np.ndarray | None, ___: float) -> dict[str, np.ndarray]:
    name, shape = _first(s)
    p = shape[1] / (STRCN_A_SIZE[0] * STRCN_A_SIZE[1])
    mask = None
    if s.mask != "sequence":
        if s.mask == "dataset":
            raise InputError("STRCN-A mask 'dataset' is chosen by mer-train from the training data; a "
                             "trained checkpoint holds the mask itself")  # fmt: skip
        mask = flow.unpack_mask(s.mask)
        if int(mask.sum()) != shape[1] or mask.shape != STRCN_A_SIZE:
            raise InputError(f"the STRCN-A mask keeps {int(mask.sum())} of {mask.shape} pixels; the model "
                             f"eats {shape[1]} of {STRCN_A_SIZE}")  # fmt: skip
    x = flow.strcn_a_input(np.asarray(crops), mask, p=p, size=STRCN_A_SIZE, length=shape[2])
    return {name: _difference(x, s.difference)}


def _difference(x: np.ndarray, difference: float) -> np.ndarray:
    """STRCN-A columns ``(..., T)`` as their difference from the first, times ``difference``, clipped
    to [-3, 3]; ``difference`` 0: ``x``."""
    return np.clip((x - x[..., :1]) * np.float32(difference), -3.0, 3.0) if difference else x


def strcn_a_dataset_mask(rows: np.ndarray, pixels: int, which: np.ndarray | None = None) -> np.ndarray:
    """STRCN-A's data-set mask (seed 001, Eq. 4): the difference heat map ``E = sum_i sum_t |I_t - I_0|``
    summed over the sequences ``rows[which]`` (every row when None) and their channels, and its top
    ``pixels`` as an ``(H, W)`` bool mask (:func:`realtime_mer.flow.top_fraction_mask`).

    ``rows``: ``(N, C, H*W, T)`` float32 STRCN-A matrices of every pixel, not differenced (the
    trainer's cache of a ``mask: dataset`` model); H, W: :data:`realtime_mer.flow.STRCN_A_SIZE`.
    """
    h, w = STRCN_A_SIZE
    if rows.ndim != 4 or rows.shape[2] != h * w:
        raise InputError(f"STRCN-A rows of every pixel are (N, C, {h * w}, T), got {rows.shape}")
    which = np.arange(len(rows)) if which is None else np.asarray(which)
    heat = np.zeros(h * w, np.float64)
    for i in range(0, len(which), 64):  # a chunk at a time: the rows can be gigabytes
        x = rows[which[i : i + 64]]
        heat += np.abs(x - x[..., :1]).sum(axis=(0, 1, 3), dtype=np.float64)
    return flow.top_fraction_mask(heat.reshape(h, w), pixels / (h * w))


def strcn_a_select(rows: np.ndarray, mask: np.ndarray, difference: float) -> np.ndarray:
    """``rows`` ``(N, C, H*W, T)`` cut to ``mask``'s pixels in raster order, ``(N, C, d2, T)``, then
    :attr:`InputSettings.difference` applied: what :func:`model_input` makes live with that mask."""
    return _difference(np.ascontiguousarray(rows[:, :, np.asarray(mask).ravel(), :]), difference)


def _dtscnn(s: InputSettings, crops: Crops, _: int, __: np.ndarray | None, ___: float) -> dict[str, np.ndarray]:
    seq = np.asarray(crops)
    return {
        n: flow.dtscnn_input(seq, length=sh[1], size=(sh[2], sh[3]), method=s.flow_method, preset=s.flow_preset)
        for n, sh in s.shapes.items()
    }


def region_stride(fps: float, rate: float) -> int:
    """Frames between the region window's steps: ``max(1, round(fps / rate))``; ``rate`` 0: 1."""
    return max(1, int(round(fps / rate))) if rate > 0 else 1


def region_step(
    s: InputSettings, boxes: Sequence[tuple], first: dict[str, np.ndarray] | None, crop: np.ndarray
) -> dict[str, np.ndarray]:
    """One step of the region window: each region of ``crop`` ``(h, w, 3)`` as ``(3, h_i, w_i)``
    float32, or (``s.difference`` > 0) its difference from ``first`` (the window's first step, as this
    returns it with ``first=None``) times ``s.difference``, clipped to [-3, 3]."""
    sizes = [(s.shapes[b[0]][2], s.shapes[b[0]][3]) for b in boxes]
    step = {k: v[0] for k, v in flow.region_sequences(crop[None], boxes, sizes).items()}
    if first is None or not s.difference:
        return step
    return {k: np.clip((v - first[k]) * np.float32(s.difference), -3.0, 3.0) for k, v in step.items()}


def region_window(s: InputSettings, crops: Crops, points68: np.ndarray, fps: float) -> dict[str, np.ndarray]:
    """The region CNN-LSTM's window of an interval: boxes fixed from the first crop's ``points68``
    (:func:`realtime_mer.face.regions.regions`), a step every :func:`region_stride` frames from the
    first, at most the window's T (each :func:`region_step`), zero-padded at the end to T steps as
    seed 002 pads its sequences; ``length`` ``(1,)`` float32: how many steps are frames (the logits
    are read after the last of them).

    A window is made step by step as frames arrive: the live path runs the model on each step as it
    comes (:mod:`realtime_mer.region_stream`).
    """
    from .face.regions import regions

    first_crop = np.asarray(crops[0])
    boxes = regions(points68, (first_crop.shape[1], first_crop.shape[0]))
    t = _first(s)[1][0]
    steps = np.arange(0, len(crops), region_stride(fps, s.rate))[:t]
    out = {b[0]: np.zeros(s.shapes[b[0]], np.float32) for b in boxes}
    first = region_step(s, boxes, None, first_crop)
    for j, i in enumerate(steps):
        for k, v in region_step(s, boxes, first, np.asarray(crops[i])).items():
            out[k][j] = v
    out["length"] = np.array([len(steps)], np.float32)
    return out


def _regions(s: InputSettings, crops: Crops, _: int, points68: np.ndarray | None, fps: float) -> dict[str, np.ndarray]:
    assert points68 is not None
    return region_window(s, crops, points68, fps)


register_input(InputDef("rcn", _rcn, pair=True, doc="onset->apex flow + strain (3, h, w)"))
register_input(InputDef("strcn-g", _strcn_g, pair=True, doc="onset->apex flow (2, h, w)"))
register_input(InputDef("strcn-a", _strcn_a, magnified=True, doc="masked magnified frames (3, d2, T)"))
register_input(InputDef("regions", _regions, landmarks=True, doc="six region windows (T, 3, h_i, w_i) + length"))
register_input(InputDef("dtscnn", _dtscnn, doc="flow sequences at 64 and 128 flows (2, L, 112, 96)"))
