"""A live capture source of synthetic micro-expressions (``realtime-mer --demo``).

It follows :class:`realtime_mer.capture.base.Source`: a real face (by default the astronaut
photograph shipped in scikit-image, unvaried) is rendered frame by frame with events planted at
random times and the default nuisances, paced by the clock at ``fps`` like a camera (a late reader
skips frames, as a camera drops them). What was planted is in :attr:`SyntheticSource.planted`.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import numpy as np

from .config import KINDS, SynthConfig
from .faces import Subject, default_bases, make_subjects, read_base
from .render import Scene, build_scene
from .timeline import PlantedEvent, draft


class SyntheticSource:
    """Synthetic frames in real time, with their ground truth.

    Args:
        fps: frame rate.
        seed: random seed; ``None`` draws one (the ``seed`` attribute tells which).
        base: a face image or video; ``None``: the astronaut photograph.
        config: size, events, nuisances (``nuisance.two_face_fraction`` is not used: one face).
        duration_s: the stream ends after this much media time; ``None``: endless.
        realtime: pace frames by the clock; ``False`` renders them as fast as they are read.
        gap_s: range of the still time between one event's offset and the next onset, s.
        model_path: MediaPipe ``face_landmarker.task`` (``None``: resolved offline).
    """

    live = True

    def __init__(
        self,
        fps: float = 30.0,
        seed: int | None = None,
        base: str | Path | None = None,
        config: SynthConfig | None = None,
        duration_s: float | None = None,
        realtime: bool = True,
        gap_s: tuple[float, float] = (1.0, 3.0),
        model_path: str | Path | None = None,
    ):
        if not (fps > 0 and math.isfinite(fps)):
            raise ValueError(f"fps must be a positive number, got {fps}")
        if not 0 <= gap_s[0] <= gap_s[1]:
            raise ValueError(f"gap_s must be a range [low, high] of seconds, got {list(gap_s)}")
        self.name = "synthetic"
        self.nominal_fps: float | None = None
        self.fps = float(fps)
        self.seed = int(np.random.SeedSequence().entropy % 2**31) if seed is None else int(seed)
        self.config = config or SynthConfig()
        self.duration_s = duration_s
        self.realtime = realtime
        self.gap_s = gap_s
        self.dropped = 0
        self._base = base
        self._model_path = model_path
        self._scene: Scene | None = None
        self._subject: Subject | None = None
        self._events: list[PlantedEvent] = []
        self._lock = threading.Lock()

    def open(self) -> None:
        """Build the face and start the clock (reopening restarts the stream at frame 0)."""
        source = read_base(self._base, self.config.max_base_frames) if self._base else default_bases()[0]
        subject = make_subjects([source], 1, self.config.size, self.seed, self.config.identity, self._model_path)[0]
        self._subject = subject
        streams = np.random.SeedSequence(self.seed).spawn(3)
        self._rng, motion_rng, scene_rng = (np.random.default_rng(s) for s in streams)
        self._scene = build_scene([subject], [], self.fps, self.config.nuisance, (motion_rng, scene_rng))
        with self._lock:
            self._events = []
        self._next_onset = math.ceil(self.config.events.margin_s * self.fps)
        self._frame = 0
        self.dropped = 0
        self.nominal_fps = self.fps
        self._t0 = time.monotonic()

    def read(self) -> tuple[np.ndarray, float] | None:
        """The next ``(H, W, 3)`` uint8 BGR frame (a new array) and its media time ``frame / fps`` in s."""
        if self._scene is None:
            raise RuntimeError("SyntheticSource.read called before open (or after close)")
        if self.realtime:
            due = self._t0 + self._frame / self.fps
            now = time.monotonic()
            if now < due:
                time.sleep(due - now)
            elif now - due > 1.0 / self.fps:
                late = int((now - self._t0) * self.fps)
                self.dropped += late - self._frame
                self._frame = late
        t = self._frame / self.fps
        if self.duration_s is not None and t >= self.duration_s:
            return None
        self._schedule(self._frame)
        image = self._scene.render(self._frame).copy()
        self._frame += 1
        return image, t

    def close(self) -> None:
        """Stop rendering; the planted events stay readable."""
        self._scene = None

    @property
    def planted(self) -> list[PlantedEvent]:
        """Events planted so far whose onset has been rendered, by onset."""
        with self._lock:
            return [e for e in self._events if e.onset < self._frame]

    def _schedule(self, frame: int) -> None:
        """Plant the next event once ``frame`` reaches its onset (the first is a micro-expression)."""
        layer = self._scene.layers[0]
        layer.drop_before(frame)
        if frame < self._next_onset:
            return
        cfg = self.config.events
        weights = np.array(cfg.kind_weights, float)
        kind = "micro" if not self._events else KINDS[int(self._rng.choice(3, p=weights / weights.sum()))]
        event = draft(kind, self._subject.points68[0], self.fps, cfg, self._rng).place(
            self._next_onset, 0, self._subject.id, self.fps
        )
        layer.add(event)
        with self._lock:
            self._events.append(event)
        gap = max(cfg.min_gap_s, self._rng.uniform(*self.gap_s))
        self._next_onset = event.offset + max(1, math.ceil(gap * self.fps))


def record(path: str | Path, seconds: float, fps: float = 30.0, seed: int = 0, crf: int = 18,
           base: str | Path | None = None) -> list[PlantedEvent]:
    """Write ``seconds`` of the synthetic live face (rendered as fast as it goes) to an H.264 mp4
    at ``path``; returns the events planted in it (frame numbers of the file). Used to serve a
    face with known micro-expressions over RTSP in tests and soak runs."""
    from ..media import Mp4Writer

    source = SyntheticSource(fps=fps, seed=seed, base=base, duration_s=seconds, realtime=False)
    source.open()
    first = source.read()
    assert first is not None
    image = first[0]
    with Mp4Writer(Path(path), fps, (image.shape[1], image.shape[0]), crf) as writer:
        writer.write(image)
        while (item := source.read()) is not None:
            writer.write(item[0])
    planted = source.planted
    source.close()
    return planted
