"""The few records the stages pass to each other.

Images are NumPy arrays in OpenCV's conventions: ``(H, W, 3)`` uint8 BGR unless a field says
otherwise. Times are seconds (float). Frame numbers are 0-based indices in their stream.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np

EventKind = Literal["micro", "macro"]


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame of one stream.

    Attributes:
        stream: stream id (a camera index, a file name, or an RTSP URL with credentials removed).
        index: 0-based frame number in the stream, counting dropped frames too.
        t: media time in seconds: the presentation time for files, seconds since the stream
            opened (monotonic clock) for live sources.
        captured: ``time.monotonic()`` when the frame left the decoder.
        image: ``(H, W, 3)`` uint8 BGR.
    """

    stream: str
    index: int
    t: float
    captured: float
    image: np.ndarray


@dataclass(frozen=True, slots=True)
class FaceObs:
    """One face found in one frame.

    Attributes:
        track: stable id of this face within its stream.
        landmarks: ``(478, 3)`` float32 MediaPipe points; x, y in pixels of the frame, z in
            MediaPipe's relative depth units.
        points68: ``(68, 2)`` float32 pixels, the iBUG/dlib 68-point layout mapped from ``landmarks``.
        bbox: ``(x0, y0, x1, y1)`` pixels, the bounding box of the 68 points.
    """

    track: int
    landmarks: np.ndarray
    points68: np.ndarray
    bbox: tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class AlignedFace:
    """A face crop registered to its track's reference frame.

    Attributes:
        stream: stream id.
        track: track id.
        index: frame number the crop comes from.
        t: media time of that frame, seconds.
        image: ``(h, w, 3)`` uint8 BGR crop at the working size (w, h).
        points68: ``(68, 2)`` float32, the 68 points in crop pixels.
        transform: ``(2, 3)`` float32 affine map from frame pixels to crop pixels.
    """

    stream: str
    track: int
    index: int
    t: float
    image: np.ndarray
    points68: np.ndarray
    transform: np.ndarray


@dataclass(frozen=True, slots=True)
class Interval:
    """A spotted movement of one face: inclusive frame numbers and their media times (s)."""

    onset: int
    apex: int
    offset: int
    t_onset: float
    t_apex: float
    t_offset: float
    kind: EventKind
    score: float


@dataclass(frozen=True, slots=True)
class Event:
    """What the tool reports: a spotted interval, and its recognition when a model ran.

    Attributes:
        stream, track: where it happened.
        interval: onset/apex/offset frames and times, kind and spotting score.
        label: predicted class name, or ``None`` when no recognizer ran.
        probs: class name -> probability.
        model: name of the recognizer that produced ``label``.
        latency_ms: stage name -> milliseconds spent on this event (e.g. ``{"flow": 1.2}``) and
            ``"after_offset"``: wall time from the offset frame's capture to the event's emission.
    """

    stream: str
    track: int
    interval: Interval
    label: str | None = None
    probs: dict[str, float] = field(default_factory=dict)
    model: str | None = None
    latency_ms: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        """A flat JSON-ready dict: one line of the events file."""
        iv = asdict(self.interval)
        return {
            "stream": self.stream,
            "track": self.track,
            "kind": iv.pop("kind"),
            **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in iv.items()},
            "label": self.label,
            "probs": {k: round(float(v), 4) for k, v in self.probs.items()},
            "model": self.model,
            "latency_ms": {k: round(float(v), 3) for k, v in self.latency_ms.items()},
        }
