"""A live capture source of synthetic micro-expressions (``realtime-mer --demo``).

It follows :class:`realtime_mer.capture.base.Source`: a real face (by default the astronaut
photograph shipped in scikit-image, unvaried) is rendered frame by frame with events planted at
random times and the default nuisances, paced by the clock at ``fps`` like a camera (a late reader
skips frames, as a camera drops them). What was planted is in :attr:`SyntheticSource.planted`.

Live, the frames are rendered ahead in a process of their own, so that rendering never competes
with the pipeline it feeds for the interpreter, and a slow first start (building the face) is over
before the clock starts.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import queue
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .config import KINDS, SynthConfig
from .faces import default_bases, make_subjects, read_base
from .render import build_scene
from .timeline import PlantedEvent, draft, lead_frames


@dataclass(frozen=True)
class _Script:
    """What the renderer needs (picklable, for the renderer process)."""

    fps: float
    seed: int
    base: str | Path | None
    config: SynthConfig
    duration_s: float | None
    gap_s: tuple[float, float]
    model_path: str | Path | None


class _Renderer:
    """Renders the frames of a :class:`_Script` in order and plants its events as it goes."""

    def __init__(self, script: _Script) -> None:
        self.script = s = script
        source = read_base(s.base, s.config.max_base_frames) if s.base else default_bases()[0]
        self.subject = make_subjects([source], 1, s.config.size, s.seed, s.config.identity, s.model_path)[0]
        streams = np.random.SeedSequence(s.seed).spawn(3)
        self.rng, motion_rng, scene_rng = (np.random.default_rng(x) for x in streams)
        self.scene = build_scene([self.subject], [], s.fps, s.config.nuisance, (motion_rng, scene_rng))
        events = s.config.events
        self.next_onset = lead_frames(events, s.fps) + math.ceil(events.margin_s * s.fps)
        self.frame = 0
        self.planted = 0

    def render(self) -> tuple[float, np.ndarray, list[PlantedEvent]] | None:
        """The next frame: ``(media time s, (H, W, 3) uint8 BGR, events planted with it)``; ``None`` at the end."""
        s = self.script
        t = self.frame / s.fps
        if s.duration_s is not None and t >= s.duration_s:
            return None
        events = self._schedule(self.frame)
        image = self.scene.render(self.frame).copy()
        self.frame += 1
        return t, image, events

    def _schedule(self, frame: int) -> list[PlantedEvent]:
        """Plant the next event once ``frame`` reaches its onset (the first is a micro-expression)."""
        s, layer = self.script, self.scene.layers[0]
        layer.drop_before(frame)
        if frame < self.next_onset:
            return []
        cfg = s.config.events
        weights = np.array(cfg.kind_weights, float)
        kind = "micro" if not self.planted else KINDS[int(self.rng.choice(len(KINDS), p=weights / weights.sum()))]
        event = draft(kind, self.subject.points68[0], s.fps, cfg, self.rng).place(
            self.next_onset, 0, self.subject.id, s.fps
        )
        layer.add(event)
        self.planted += 1
        gap = max(cfg.min_gap_s, self.rng.uniform(*s.gap_s))
        self.next_onset = event.offset + max(1, math.ceil(gap * s.fps))
        return [event]


def _render_ahead(script: _Script, out: Any, stop: Any) -> None:
    """The renderer process: frames into ``out`` in order, as far ahead as the queue holds; ``None``
    at the end; an exception (pickled) if the face cannot be built."""
    try:
        renderer = _Renderer(script)
    except Exception as e:
        out.put(e)
        return
    while not stop.is_set():
        item = renderer.render()
        while not stop.is_set():
            try:
                out.put(item, timeout=0.2)
                break
            except queue.Full:
                continue
        if item is None:
            return


class SyntheticSource:
    """Synthetic frames in real time, with their ground truth.

    Args:
        fps: frame rate.
        seed: random seed; ``None`` draws one (the ``seed`` attribute tells which).
        base: a face image or video; ``None``: the astronaut photograph.
        config: size, events, nuisances (``nuisance.two_face_fraction`` is not used: one face).
        duration_s: the stream ends after this much media time; ``None``: endless.
        realtime: pace frames by the clock, rendered ahead in a process of their own; ``False``
            renders them here, as fast as they are read.
        gap_s: range of the still time between one event's offset and the next onset, s.
        model_path: MediaPipe ``face_landmarker.task`` (``None``: resolved offline).
        ahead_s: how far ahead the live renderer may be, s.
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
        ahead_s: float = 2.0,
    ):
        if not (fps > 0 and math.isfinite(fps)):
            raise ValueError(f"fps must be a positive number, got {fps}")
        if not 0 <= gap_s[0] <= gap_s[1]:
            raise ValueError(f"gap_s must be a range [low, high] of seconds, got {list(gap_s)}")
        self.name = "synthetic"
        self.nominal_fps: float | None = None
        self.fps = float(fps)
        self.seed = int(np.random.default_rng().integers(2**31)) if seed is None else int(seed)
        self.realtime = realtime
        self.dropped = 0
        self._script = _Script(self.fps, self.seed, base, config or SynthConfig(), duration_s, gap_s, model_path)
        self._ahead = max(2, int(ahead_s * self.fps))
        self._renderer: _Renderer | None = None
        self._proc: Any = None  # the renderer process, live
        self._queue: Any = None
        self._stop: Any = None
        self._first: tuple[float, np.ndarray, list[PlantedEvent]] | None = None
        self._events: list[PlantedEvent] = []
        self._frame = 0  # frames handed on or skipped
        self._t0 = 0.0

    @property
    def config(self) -> SynthConfig:
        return self._script.config

    def open(self) -> None:
        """Build the face and start the clock (reopening restarts the stream at frame 0)."""
        self.close()
        self._events, self._frame, self.dropped = [], 0, 0
        if not self.realtime:
            self._renderer = _Renderer(self._script)
        else:
            ctx = mp.get_context("spawn")  # no fork of a process that holds threads
            self._queue, self._stop = ctx.Queue(maxsize=self._ahead), ctx.Event()
            self._proc = ctx.Process(
                target=_render_ahead, args=(self._script, self._queue, self._stop), name="demo-renderer", daemon=True
            )
            self._proc.start()
            self._first = self._take(timeout=300.0)  # the face is built: the clock starts now
        self.nominal_fps = self.fps
        self._t0 = time.monotonic()

    def _take(self, timeout: float | None = None) -> tuple[float, np.ndarray, list[PlantedEvent]] | None:
        item = self._queue.get(timeout=timeout)
        if isinstance(item, Exception):
            raise item
        if item is not None:
            self._events += item[2]
        return item

    def read(self) -> tuple[np.ndarray, float] | None:
        """The next ``(H, W, 3)`` uint8 BGR frame (a new array) and its media time ``frame / fps`` in s."""
        if self._renderer is not None:
            item = self._renderer.render()
            if item is not None:
                self._events += item[2]
        elif self._proc is not None:
            item = self._next_due()
        else:
            raise RuntimeError("SyntheticSource.read called before open (or after close)")
        if item is None:
            return None
        self._frame += 1
        return item[1], item[0]

    def _next_due(self) -> tuple[float, np.ndarray, list[PlantedEvent]] | None:
        """The frame due now, waiting for it; frames whose time passed unread are skipped (dropped)."""
        due = self._t0 + self._frame / self.fps
        now = time.monotonic()
        if now < due:
            time.sleep(due - now)
        late = int((now - self._t0) * self.fps) - self._frame if now - due > 1.0 / self.fps else 0
        item = self._first if self._first is not None else self._take()
        self._first = None
        for _ in range(late):
            if item is None:
                break
            self.dropped += 1
            self._frame += 1
            item = self._take()
        return item

    def close(self) -> None:
        """Stop rendering; the planted events stay readable."""
        self._renderer = None
        if self._proc is not None:
            self._stop.set()
            while self._proc.is_alive():
                try:
                    self._queue.get(timeout=0.1)
                except queue.Empty:
                    self._proc.join(timeout=0.1)
            self._proc = None

    @property
    def planted(self) -> list[PlantedEvent]:
        """Events planted so far whose onset has been handed on (or skipped), by onset."""
        return [e for e in self._events if e.onset < self._frame]


def record(
    path: str | Path, seconds: float, fps: float = 30.0, seed: int = 0, crf: int = 18, base: str | Path | None = None
) -> list[PlantedEvent]:
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
