"""The face stage of one stream: landmarks, 68 points, track ids, registered crops."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from realtime_mer.config import settings
from realtime_mer.face.align import STRCN_DELTAS, TrackAligner, apply, compose, eye_centres, invert
from realtime_mer.face.landmarker import Landmarker
from realtime_mer.face.mapping import to68
from realtime_mer.face.tracking import Tracker
from realtime_mer.types import AlignedFace, FaceObs, Frame


@settings
class FaceConfig:
    """Settings of the face stage.

    Attributes:
        model_path: face_landmarker.task; ``None`` resolves it offline (see ``face.model``).
        num_faces: most faces MediaPipe looks for per frame. 2 by default, as in the shipped
            ``configs/pipeline.yaml``: with 1, MediaPipe follows the face from its last landmarks
            and the crops register differently; on the spotting development set (seeds 1, 3, 7 at
            30 fps) micro F1 falls from 0.868 to 0.805, at no measurable cost a frame with 2.
        min_confidence: MediaPipe detection, presence and tracking thresholds.
        size: working size ``(width, height)`` of the aligned crops, pixels.
        deltas: STRCN crop constants (left, top, height, width) in eye-centre distances.
        landmark_every: run MediaPipe on every Nth frame; frames between are registered to the
            reference crop by image alone (phase correlation, then one Gauss-Newton step). 2 by
            default: on a 2-core Xeon it takes one 640x480 feed with one face from 52-56 to 84-104
            fps end to end (MediaPipe is most of a frame's time), with the crops of the still real
            face as well registered as with landmarks on every frame (0.050 px median, 0.111 px
            max against the reference, vs 0.053 and 0.113) and the same micro F1 on the
            development set (see docs/configuration.md); 1 for landmarks on every frame.
        landmark_warmup_s: a new track gets landmarks on every frame for this long, s. MediaPipe's
            VIDEO-mode filter settles on a new face over its first frames; fed every other frame, its
            drift between landmark frames and the registered frames showed as a spurious
            micro-expression 0.6-1 s after a face appeared (4 of 9 synthetic clips, seeds 1-9 of
            the README example, none with this warm-up or with landmarks on every frame).
        refine: correct every crop by phase correlation against its track's reference crop.
        max_refine: largest accepted correction, crop pixels.
        max_missed: landmark frames a track may go unseen before its id is retired.
        min_iou: box overlap that continues a track.
        min_eye_distance: faces whose eye centres are closer than this (frame pixels) are ignored.
    """

    model_path: str | None = None
    num_faces: int = 2
    min_confidence: float = 0.5
    size: tuple[int, int] = (128, 128)
    deltas: tuple[float, float, float, float] = STRCN_DELTAS
    landmark_every: int = 2
    landmark_warmup_s: float = 1.0
    refine: bool = True
    max_refine: float = 8.0
    max_missed: int = 10
    min_iou: float = 0.3
    min_eye_distance: float = 12.0

    def __post_init__(self):
        if self.landmark_every < 1:
            raise ValueError(f"landmark_every must be >= 1, got {self.landmark_every}")
        if min(self.size) < 16:
            raise ValueError(f"size must be at least (16, 16), got {self.size}")
        if min(self.deltas) <= 0:
            raise ValueError(f"deltas must be positive, got {self.deltas}")


CropBuffer = Callable[[int], np.ndarray | None]
"""Given a track id, the ``(h, w, 3)`` uint8 array its crop is to be written into, or ``None``."""


@dataclass
class _TrackState:
    aligner: TrackAligner
    landmarks: np.ndarray  # (478, 3) of the last landmark frame, frame pixels
    points68: np.ndarray  # (68, 2) of the last landmark frame, frame pixels
    transform: np.ndarray  # (2, 3) frame -> crop at the last landmark frame
    crop68: np.ndarray  # (68, 2) float32 points68 in the crop at the last landmark frame
    born: float  # media time of the track's first frame, s
    # float64 x, y of ``landmarks`` and a scratch of the same shape: the frames between landmark
    # frames move them without allocating
    xy: np.ndarray = field(default_factory=lambda: np.empty((0, 2)))
    moved: np.ndarray = field(default_factory=lambda: np.empty((0, 2)))

    def update(self, landmarks: np.ndarray, points68: np.ndarray, transform: np.ndarray, crop68: np.ndarray) -> None:
        """A new landmark frame."""
        self.landmarks, self.points68, self.transform, self.crop68 = landmarks, points68, transform, crop68
        n = len(landmarks)
        if self.xy.shape != (n, 2):
            self.xy, self.moved = np.empty((n, 2)), np.empty((n, 2))
        np.copyto(self.xy, landmarks[:, :2])

    def carried(self, moved: np.ndarray) -> np.ndarray:
        """``(478, 3)`` float32 landmarks of the last landmark frame moved by the ``(2, 3)`` map ``moved``
        (x, y in float64 as :func:`apply` does; z as it was)."""
        out = np.empty_like(self.landmarks)
        np.matmul(self.xy, moved[:, :2].T, out=self.moved)
        (_, _, tx), (_, _, ty) = moved.tolist()
        self.moved[:, 0] += tx  # adding the (2,) column at once would allocate a broadcast buffer
        self.moved[:, 1] += ty
        np.copyto(out[:, :2], self.moved, casting="same_kind")
        out[:, 2:] = self.landmarks[:, 2:]
        return out


def _bbox(points68: np.ndarray) -> tuple[float, float, float, float]:
    x0, y0 = points68.min(axis=0)
    x1, y1 = points68.max(axis=0)
    return float(x0), float(y0), float(x1), float(y1)


class FaceStage:
    """Per-stream face processing: one instance per stream, called once per frame, not thread-safe.

    MediaPipe's VIDEO mode smooths landmarks over time, so the timestamps it is given shape its
    output: they are counted from the first frame this stage sees, so that a session of a live
    feed (whose media time starts wherever the feed's clock stood) gets the landmarks a recording
    of that session gets.
    """

    def __init__(self, config: FaceConfig | None = None):
        self.config = config or FaceConfig()
        c = self.config
        self.landmarker = Landmarker(c.model_path, c.num_faces, c.min_confidence)
        self.tracker = Tracker(c.max_missed, c.min_iou)
        self._tracks: dict[int, _TrackState] = {}
        self._calls = 0
        self._t0: float | None = None  # media time of the first frame, s

    def process(self, frame: Frame, into: CropBuffer | None = None) -> list[tuple[FaceObs, AlignedFace]]:
        """Faces of one frame with their crops registered to each track's reference frame.

        Landmarks run on every ``landmark_every``-th call (and whenever a track needs a new
        reference, and in a track's first ``landmark_warmup_s``); on the calls between, the faces
        seen at the last landmark frame are carried over and their crops registered by image alone,
        with landmarks moved by the same correction.

        ``into``, when given, names per track id the ``(h, w, 3)`` uint8 array its crop is written
        into (for instance the slot of the track's ring buffer that the crop will be pushed to), so
        that no crop is allocated; ``None`` from it, or no ``into``, gives a new array.
        """
        c = self.config
        run = (
            self._calls % c.landmark_every == 0
            or not self._tracks
            or any(self._needs_landmarks(s, frame.t) for s in self._tracks.values())
        )
        self._calls += 1
        if run:
            return self._landmark_frame(frame, into)
        return self._registered_frame(frame, into)

    def _needs_landmarks(self, state: _TrackState, t: float) -> bool:
        """A track with no reference yet, or in its first ``landmark_warmup_s``."""
        return not state.aligner.has_reference or t - state.born < self.config.landmark_warmup_s

    def _landmark_frame(self, frame: Frame, into: CropBuffer | None) -> list[tuple[FaceObs, AlignedFace]]:
        c = self.config
        if self._t0 is None:
            self._t0 = frame.t
        faces = []
        for lm in self.landmarker.detect(frame.image, round((frame.t - self._t0) * 1000)):
            p68 = to68(lm)
            cl, cr = eye_centres(p68)
            if np.hypot(*(cr - cl)) >= c.min_eye_distance:
                faces.append((lm, p68))
        ids = self.tracker.update([_bbox(p68) for _, p68 in faces])
        live = self.tracker.active
        for gone in set(self._tracks) - set(live):
            del self._tracks[gone]
        out = []
        for tid, (lm, p68) in zip(ids, faces):
            state = self._tracks.get(tid)
            aligner = state.aligner if state else TrackAligner(c.size, c.deltas, c.refine, c.max_refine)
            crop, m = aligner.align(frame.image, lm, into(tid) if into is not None else None)
            crop68 = apply(m, p68)
            if state is None:
                state = self._tracks[tid] = _TrackState(aligner, lm, p68, m, crop68, frame.t)
            state.update(lm, p68, m, crop68)
            out.append(self._records(frame, tid, lm, p68, crop, m, crop68))
        return out

    def _registered_frame(self, frame: Frame, into: CropBuffer | None) -> list[tuple[FaceObs, AlignedFace]]:
        out = []
        for tid, missed in self.tracker.active.items():
            if missed:
                continue
            state = self._tracks[tid]
            crop, m = state.aligner.align(frame.image, None, into(tid) if into is not None else None)
            # frame(now) <- crop <- frame(last landmark frame): the correction the registration found
            moved = compose(invert(m), state.transform)
            # in the crop, the moved points are where they were at the last landmark frame
            out.append(
                self._records(
                    frame, tid, state.carried(moved), apply(moved, state.points68), crop, m, state.crop68.copy()
                )
            )
        return out

    @staticmethod
    def _records(
        frame: Frame,
        tid: int,
        lm: np.ndarray,
        p68: np.ndarray,
        crop: np.ndarray,
        m: np.ndarray,
        crop68: np.ndarray,
    ) -> tuple[FaceObs, AlignedFace]:
        obs = FaceObs(track=tid, landmarks=lm, points68=p68, bbox=_bbox(p68))
        aligned = AlignedFace(
            stream=frame.stream,
            track=tid,
            index=frame.index,
            t=frame.t,
            image=crop,
            points68=crop68,
            transform=m.astype(np.float32),
        )
        return obs, aligned

    def reset_reference(self, track: int) -> None:
        """Make the next frame with landmarks the reference of ``track`` (landmarks run next call)."""
        if track not in self._tracks:
            raise KeyError(f"no live track {track}; live tracks: {sorted(self._tracks)}")
        self._tracks[track].aligner.reset()

    def close(self) -> None:
        """Release MediaPipe; safe to call twice."""
        self.landmarker.close()

    def __enter__(self) -> FaceStage:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
