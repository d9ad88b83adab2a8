"""The few records the stages pass to each other.

Images are NumPy arrays in OpenCV's conventions: ``(H, W, 3)`` uint8 BGR unless a field says
otherwise. Times are seconds (float). Frame numbers are 0-based indices in their stream.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np

EventKind = Literal["micro", "macro"]
FeedState = Literal["connecting", "running", "reconnecting", "stalled", "ended", "failed"]
FEED_STATES: tuple[FeedState, ...] = ("connecting", "running", "reconnecting", "stalled", "ended", "failed")


def utc_iso(wall: float) -> str:
    """``time.time()`` seconds as UTC ISO 8601 with milliseconds, e.g. ``2026-11-30T10:43:00.123Z``."""
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def wall_of(monotonic: float) -> float:
    """The ``time.time()`` wall clock (s) of an earlier ``time.monotonic()`` reading."""
    return time.time() - (time.monotonic() - monotonic)


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
        session: which connection of a live source the frame came from (0 for the first; each
            reconnection starts a new session, whose frames restart the face tracks).
        key: the decoder marked it a keyframe (an H.264 I-frame): the video's coding starts anew
            with it, so its compression noise differs from the frames before (False where unknown,
            e.g. a camera's raw frames).
    """

    stream: str
    index: int
    t: float
    captured: float
    image: np.ndarray
    session: int = 0
    key: bool = False


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
class IntervalCrops:
    """What recognition gets of one spotted interval (:meth:`realtime_mer.recognize.Recognizer.classify`).

    Attributes:
        frames: ``(T, h, w, 3)`` uint8 aligned crops from onset to offset, or only ``(onset, apex)``
            for models that read those two (the RCN family, STRCN-G).
        apex: index of the apex crop in ``frames``.
        points68: ``(68, 2)`` float32 points of the onset crop (the region CNN-LSTM's boxes), or None.
        fps: the stream's frame rate, Hz (EVM of STRCN-A's crops, the region window's steps).
        logits: ``(K,)`` class logits already computed as the interval's frames arrived (the region
            CNN-LSTM's stream, :mod:`realtime_mer.region_stream`); then ``frames`` are not read.
    """

    frames: np.ndarray | tuple[np.ndarray, ...]
    apex: int
    points68: np.ndarray | None = None
    fps: float = 30.0
    logits: np.ndarray | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """What the tool reports: a spotted interval, and its recognition when a model ran.

    One line of the events file (``"type": "event"``); the JSON Schema ships as
    ``realtime_mer/schemas/records.schema.json``.

    Attributes:
        stream, track: where it happened.
        interval: onset/apex/offset frames and times, kind and spotting score.
        id: unique id of the event (run id and sequence number): receivers drop duplicates by it.
        utc: wall-clock time (UTC, ISO 8601) at which the onset frame was captured.
        label: predicted class name, or ``None`` when no recognizer ran (or it failed: ``error``).
        probs: class name -> probability.
        model: name of the recognizer that produced ``label``.
        latency_ms: stage name -> milliseconds spent on this event (e.g. ``{"input": 1.2}``) and
            ``"after_offset"``: wall time from the capture of the offset frame to the emission.
        error: why recognition failed for this event (the event is still reported, unlabelled).
    """

    stream: str
    track: int
    interval: Interval
    id: str = ""
    utc: str = ""
    label: str | None = None
    probs: dict[str, float] = field(default_factory=dict)
    model: str | None = None
    latency_ms: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A flat JSON-ready dict: one line of the events file."""
        iv = asdict(self.interval)
        out: dict[str, Any] = {
            "type": "event",
            "id": self.id,
            "stream": self.stream,
            "track": self.track,
            "kind": iv.pop("kind"),
            "utc": self.utc,
        }
        out.update({k: (round(v, 4) if isinstance(v, float) else v) for k, v in iv.items()})
        out.update(
            {
                "label": self.label,
                "probs": {k: round(float(v), 4) for k, v in self.probs.items()},
                "model": self.model,
                "latency_ms": {k: round(float(v), 3) for k, v in self.latency_ms.items()},
            }
        )
        if self.error is not None:
            out["error"] = self.error
        return out


@dataclass(frozen=True, slots=True)
class Status:
    """A feed changed state (``"type": "status"`` lines of the events file).

    Attributes:
        stream: the feed's name (credentials removed).
        state: the new state; ``previous`` the one it left (``None`` for the first record).
        reason: why, in words (an error message, "first frame", "no frame for 5.0 s", ...).
        utc: wall-clock time of the change, UTC ISO 8601.
        session: the connection number (0 first; +1 at each reconnection).
        index: for ``running``: the frame number of the first frame of this session; otherwise
            the last frame number read so far (-1 before any).
        frames, dropped, bad_frames, reconnects: the feed's counters at the change.
    """

    stream: str
    state: FeedState
    previous: FeedState | None
    reason: str
    utc: str
    session: int
    index: int
    frames: int
    dropped: int
    bad_frames: int
    reconnects: int

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: one ``"type": "status"`` line of the events file."""
        return {"type": "status", **asdict(self)}


Record = Event | Status


@dataclass(frozen=True, slots=True)
class FeedPosition:
    """Where a live feed's numbering stands, so that a feed restarted in a new process (a worker
    that died) goes on from there instead of starting again at frame 0.

    Attributes:
        index: the frame number of the next frame.
        session: the session number of the next connection.
        t: media time (s) the next session starts at, at least.
    """

    index: int = 0
    session: int = 0
    t: float = 0.0


@dataclass(frozen=True, slots=True)
class TrackView:
    """What a frame sink (overlay video, dashboard) sees of one face track at one frame.

    Attributes:
        track: track id.
        bbox: ``(x0, y0, x1, y1)`` face box in frame pixels.
        face: the aligned crop of this frame, or ``None`` if the face was not seen in it.
        magnified: the EVM-magnified crop, ``(h, w, 3)`` float32 in [0, 1], if EVM ran.
        sigma: ``(N,)`` float32 recent spotting statistic, oldest first, in noise units
            (NaN where undefined), ending at this frame.
        sigma_t: ``(N,)`` media times (s) of ``sigma``.
        threshold: the level of ``sigma`` that makes a movement an event.
        active: a movement is in progress.
    """

    track: int
    bbox: tuple[float, float, float, float]
    face: AlignedFace | None
    magnified: np.ndarray | None
    sigma: np.ndarray
    sigma_t: np.ndarray
    threshold: float
    active: bool


@dataclass(frozen=True, slots=True)
class FrameView:
    """One processed frame as the frame sinks see it: the frame, its faces and its tracks.

    Attributes:
        frame: the frame.
        fps: the stream's frame rate (Hz).
        points: ``(68, 2)`` float32 landmarks of each face found in the frame, frame pixels.
        tracks: the live tracks, in id order.
    """

    frame: Frame
    fps: float
    points: tuple[np.ndarray, ...]
    tracks: tuple[TrackView, ...]
