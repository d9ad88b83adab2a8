"""Model inputs from aligned face crops: one definition per input kind, shared by the trainer's
preprocessing (:mod:`realtime_mer.train.preprocess`) and the live recognizer
(:mod:`realtime_mer.recognize`), so a model sees live what it was trained on.

Every definition takes the crops of one interval, ``(T, h, w, 3)`` (uint8 BGR, or float32 in [0, 1]
after EVM) registered to the first (onset) frame, the apex index into them and the onset crop's
``(68, 2)`` points, and returns the model's inputs by name (float32, without the batch axis):

* ``rcn``: ``flow_strain_map`` of onset -> apex, ``(3, h, w)`` (the RCN family);
* ``strcn-g``: ``strcn_g_input`` of onset -> apex, ``(2, h, w)``;
* ``strcn-a``: ``strcn_a_input`` over the interval (the difference-heat-map mask), ``(3, d2, T)``;
  its crops are EVM-magnified first (:func:`magnify_sequence`; the checkpoint's ``test_alpha``);
* ``regions``: the six regions of the region CNN-LSTM, boxes fixed from the onset points
  (:func:`realtime_mer.face.regions.regions`), each ``(T, 3, h_i, w_i)`` resampled to the window;
* ``dtscnn``: ``dtscnn_input`` at both lengths, ``(2, 64, 112, 96)`` and ``(2, 128, 112, 96)``.

The ``rcn`` and ``strcn-g`` kinds read only the onset and apex crops (:attr:`InputDef.pair`): the live
path hands them those two and copies no sequence.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

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
    """

    shapes: dict[str, tuple[int, ...]]
    flow_method: FlowMethod = "dis"
    flow_preset: str | None = None
    alpha: float = 0.0


Build = Callable[[InputSettings, Crops, int, "np.ndarray | None"], dict[str, np.ndarray]]


@dataclass(frozen=True)
class InputDef:
    """One input kind: how its arrays are made, and what of the interval it reads.

    Attributes:
        kind: the registry key.
        build: ``(settings, crops, apex, points68) -> {name: array}``.
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
    kind: str, settings: InputSettings, crops: Crops, apex: int, points68: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Input arrays of one interval for input ``kind`` (see the module docstring).

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
    return d.build(settings, crops, apex, points68)


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


def _rcn(s: InputSettings, crops: Crops, apex: int, _: np.ndarray | None) -> dict[str, np.ndarray]:
    name, shape = _first(s)
    m = flow.flow_strain_map(crops[0], crops[apex], (shape[1], shape[2]), s.flow_method, s.flow_preset)
    return {name: np.ascontiguousarray(m.transpose(2, 0, 1))}


def _strcn_g(s: InputSettings, crops: Crops, apex: int, _: np.ndarray | None) -> dict[str, np.ndarray]:
    name, shape = _first(s)
    return {name: flow.strcn_g_input(crops[0], crops[apex], (shape[1], shape[2]), s.flow_method, s.flow_preset)}


def _strcn_a(s: InputSettings, crops: Crops, _: int, __: np.ndarray | None) -> dict[str, np.ndarray]:
    name, shape = _first(s)
    p = shape[1] / (STRCN_A_SIZE[0] * STRCN_A_SIZE[1])
    return {name: flow.strcn_a_input(np.asarray(crops), p=p, size=STRCN_A_SIZE, length=shape[2])}


def _dtscnn(s: InputSettings, crops: Crops, _: int, __: np.ndarray | None) -> dict[str, np.ndarray]:
    seq = np.asarray(crops)
    return {
        n: flow.dtscnn_input(seq, length=sh[1], size=(sh[2], sh[3]), method=s.flow_method, preset=s.flow_preset)
        for n, sh in s.shapes.items()
    }


def _regions(s: InputSettings, crops: Crops, _: int, points68: np.ndarray | None) -> dict[str, np.ndarray]:
    from .face.regions import regions

    assert points68 is not None
    seq = np.asarray(crops)
    boxes = regions(points68, (seq.shape[2], seq.shape[1]))
    sizes = [(s.shapes[b[0]][2], s.shapes[b[0]][3]) for b in boxes]
    seqs = flow.region_sequences(seq, boxes, sizes)
    length = _first(s)[1][0]
    return {k: flow.temporal_interpolate(v, length) for k, v in seqs.items()}


register_input(InputDef("rcn", _rcn, pair=True, doc="onset->apex flow + strain (3, h, w)"))
register_input(InputDef("strcn-g", _strcn_g, pair=True, doc="onset->apex flow (2, h, w)"))
register_input(InputDef("strcn-a", _strcn_a, magnified=True, doc="masked magnified frames (3, d2, T)"))
register_input(InputDef("regions", _regions, landmarks=True, doc="six region windows (T, 3, h_i, w_i)"))
register_input(InputDef("dtscnn", _dtscnn, doc="flow sequences at 64 and 128 flows (2, L, 112, 96)"))
