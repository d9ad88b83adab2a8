"""Wires the stages: capture threads -> per-stream face/EVM/spotting workers -> event stage -> sinks.

One capture thread and one worker thread per feed; one event thread for all feeds. Every hand-off
is bounded. Per track the worker keeps a pre-allocated ring of aligned faces, a magnifier and a
spotter; a spotted interval goes to the event stage (once its offset frame has been seen) with
copies of its onset and apex crops (and, for the models that read whole intervals, of every crop from
onset to offset and the onset crop's landmarks), where a recognizer (when configured) turns them into class
probabilities, and every sink gets the event.

Nothing is lost on the way: a frame a stage fails on is skipped and counted; a batch the
recognizer fails on goes out unlabelled with an ``error``; a sink that fails is retried, then
reported; a feed that fails is reported in the summary and in the exit status; shutdown (end of
the feeds, ``--max-seconds``, SIGINT/SIGTERM) flushes every track and fsyncs every sink.
"""

from __future__ import annotations

import copy
import logging
import math
import queue
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .buffer import FaceRing
from .capture import CaptureConfig, CaptureThread, open_source
from .config import ConfigError, find_config, from_mapping, load_yaml, settings
from .face import FaceConfig, FaceStage
from .feeds import SourceSpec, check_names, display_name
from .magnify import MagnifyConfig, TrackMagnifiers, make_magnifier
from .metrics import FeedSnapshot, Metrics
from .recognize import RecognizeConfig, Recognizer, needs_sequence, step_runner
from .sinks import FrameSink, GuardedFrameSink, GuardedSink, JsonlSink, Sink, sink_class
from .spotting import SpotConfig, Spotter, eye_mask, inter_ocular
from .types import (
    AlignedFace,
    Event,
    FaceObs,
    Frame,
    FrameView,
    Interval,
    IntervalCrops,
    Status,
    TrackView,
    utc_iso,
    wall_of,
)

if TYPE_CHECKING:
    from .region_stream import RegionStream

log = logging.getLogger(__name__)

_STEPS_PER_FRAME = 2  # region CNN-LSTM steps run a frame at most (a window behind catches up at this pace)

__all__ = [
    "EventStage",
    "prepare",
    "Pipeline",
    "PipelineConfig",
    "RunSummary",
    "SourceSpec",
    "Spotted",
    "StreamProcessor",
    "StreamSummary",
    "StreamWorker",
    "load_pipeline_config",
    "merge_config",
    "run_pipeline",
]

# exit statuses of a run (documented in the README and ``realtime-mer --help``)
EXIT_OK, EXIT_FEED_FAILED, EXIT_SINK_FAILED, EXIT_RECOGNITION_FAILED = 0, 3, 4, 5
MAX_FAILED_FRAMES = 100  # frames in a row a worker may fail on before it gives its feed up


@settings
class PipelineConfig:
    """Every stage's config; ``configs/pipeline.yaml`` holds the defaults users edit.

    Attributes:
        spot_input: what the spotter watches: ``"aligned"`` crops, or the EVM-``"magnified"`` ones (the
            STRCN rule as written). On the synthetic set at 30 fps the aligned crops score micro F1 0.84
            against 0.55 magnified: EVM amplifies sensor and compression noise as much as the movement.
            The magnified crops still feed the dashboard.
        buffer_seconds: how much aligned-face history each track keeps (longest event + margin), s.
        track_timeout_s: a track unseen for this long is closed (its pending interval flushed), s.
        event_queue: bound of the worker -> event stage queue (intervals waiting for recognition).
        sinks: settings of each sink kind by name (``jsonl``, ``webhook``, ``video``, ``display``),
            validated against that sink's ``Config``.
    """

    capture: CaptureConfig = field(default_factory=CaptureConfig)
    face: FaceConfig = field(default_factory=FaceConfig)
    magnify: MagnifyConfig = field(default_factory=MagnifyConfig)
    spot: SpotConfig = field(default_factory=SpotConfig)
    recognize: RecognizeConfig = field(default_factory=RecognizeConfig)
    spot_input: Literal["aligned", "magnified"] = "aligned"
    buffer_seconds: float = 6.0
    track_timeout_s: float = 1.0
    event_queue: int = 64
    sinks: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for kind, options in self.sinks.items():
            from_mapping(sink_class(kind).Config, options or {}, f"sinks.{kind}")


def load_pipeline_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> PipelineConfig:
    """The pipeline config from ``path`` (default ``configs/pipeline.yaml``), then ``overrides`` per section."""
    data = load_yaml(path if path is not None else find_config("pipeline"))
    return from_mapping(PipelineConfig, _merged(data, overrides or {}), "pipeline")


def merge_config(base: PipelineConfig, overrides: Mapping[str, Any]) -> PipelineConfig:
    """``base`` with ``overrides`` (a mapping of sections, as in the YAML) merged over it, validated."""
    if not overrides:
        return base
    return from_mapping(PipelineConfig, _merged(asdict(base), overrides), "pipeline")


def _merged(data: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with each mapping in ``overrides`` merged into its section (other values replace)."""
    out = copy.deepcopy(dict(data))
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping | None):
            out[key] = {**(out.get(key) or {}), **value}
        else:
            out[key] = value
    return out


@dataclass
class StageClock:
    """Per-stage wall times (ms) of one stream, kept in a fixed ring for medians.

    ``observe(stage, seconds)``, when given, also receives every time (the metrics histograms).
    """

    size: int = 512
    observe: Callable[[str, float], None] | None = None
    times: dict[str, np.ndarray] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, stage: str, ms: float) -> None:
        arr = self.times.get(stage)
        if arr is None:
            arr = self.times[stage] = np.zeros(self.size)
        n = self.counts.get(stage, 0)
        arr[n % self.size] = ms
        self.counts[stage] = n + 1
        if self.observe is not None:
            self.observe(stage, ms * 1e-3)

    def medians(self) -> dict[str, float]:
        return {k: float(np.median(v[: min(self.counts[k], self.size)])) for k, v in self.times.items()}


@dataclass
class _Track:
    ring: FaceRing
    spotter: Spotter
    fps: float
    last_seen: float
    last_obs: FaceObs | None = None
    last_face: AlignedFace | None = None
    magnified: np.ndarray | None = None
    waiting: list[Interval] = field(default_factory=list)  # closed, but the offset frame is still to come
    born: float = 0.0  # media time of the track's first face, s
    rebased: bool = False  # the spotter was told the landmark warm-up ended
    points: np.ndarray | None = None  # (capacity, 68, 2) crop points per ring slot, for sequence models
    stream: RegionStream | None = None  # the region CNN-LSTM's window of the movement in progress


@dataclass(frozen=True)
class Spotted:
    """An interval on its way to the event stage, with copies of the crops recognition needs.

    Attributes:
        stream, track, interval: where and when.
        onset, apex: ``(h, w, 3)`` uint8 aligned crops of the onset and apex frames.
        bbox: the track's face box in the frame when the interval closed, px.
        onset_captured: ``time.monotonic()`` capture time of the onset frame, s.
        offset_captured: ``time.monotonic()`` capture time of the offset frame, s (the interval is
            handed on only once that frame has been seen).
        spotted_at: ``time.monotonic()`` when it was handed on, s.
        crops: every crop from onset to offset with the onset crop's points, for a recognizer that
            reads whole intervals (:func:`realtime_mer.recognize.needs_sequence`), or the logits
            of the region CNN-LSTM's window run as the frames arrived; else None.
    """

    stream: str
    track: int
    interval: Interval
    onset: np.ndarray
    apex: np.ndarray
    bbox: tuple[float, float, float, float]
    onset_captured: float
    offset_captured: float
    spotted_at: float
    crops: IntervalCrops | None = None

    def recognition_input(self) -> IntervalCrops | tuple[np.ndarray, np.ndarray]:
        """What :meth:`realtime_mer.recognize.Recognizer.classify` takes of this interval."""
        return self.crops if self.crops is not None else (self.onset, self.apex)


@dataclass
class StreamSummary:
    """What one stream did, for the closing log line, the exit status and tests.

    ``frames`` counts the frames processed, ``last_index`` is the frame number of the last one;
    ``state`` is the feed's last state (``running`` for a live feed stopped while healthy) and
    ``error`` why it failed, if it did; ``restarts`` counts its sessions' restarts of the tracks and
    ``worker_restarts`` the restarts of its worker process (``--backend ray``).
    """

    stream: str
    frames: int = 0
    frames_with_face: int = 0
    dropped: int = 0
    bad_frames: int = 0
    failed_frames: int = 0
    reconnects: int = 0
    fps: float = 0.0
    intervals: int = 0
    events: int = 0
    restarts: int = 0
    worker_restarts: int = 0
    last_index: int = -1
    state: str | None = None
    error: str | None = None
    stage_ms: dict[str, float] = field(default_factory=dict)
    planted: tuple[Any, ...] = ()  # a synthetic source's planted events (ground truth), empty for real sources


@dataclass
class RunSummary:
    """What the run did; :attr:`exit_code` is the process's exit status."""

    streams: list[StreamSummary]
    events: int
    seconds: float
    sinks: dict[str, dict[str, int]] = field(default_factory=dict)
    recognition_errors: int = 0

    @property
    def exit_code(self) -> int:
        """0 all well; 3 a feed failed; 4 a sink could not deliver records; 5 some events went out
        unlabelled because recognition failed (the first that applies, in this order)."""
        if any(s.state == "failed" for s in self.streams):
            return EXIT_FEED_FAILED
        if any(v["failed"] or v["pending"] for v in self.sinks.values()):
            return EXIT_SINK_FAILED
        if self.recognition_errors:
            return EXIT_RECOGNITION_FAILED
        return EXIT_OK

    def describe(self) -> str:
        parts = [f"{self.events} events in {self.seconds:.1f} s"]
        for s in self.streams:
            stages = ", ".join(f"{k} {v:.2f} ms" for k, v in s.stage_ms.items())
            line = (
                f"{s.stream}: {s.state or 'not started'}, {s.frames} frames ({s.frames_with_face} with a face) "
                f"at {s.fps:.1f} fps, {s.dropped} dropped, {s.bad_frames} bad, {s.failed_frames} failed, "
                f"{s.reconnects} reconnects, {s.events} events, last frame {s.last_index}; medians: {stages}"
            )
            if s.worker_restarts:
                line += f", its worker process restarted {s.worker_restarts} time(s)"
            parts.append(line + (f"; error: {s.error}" if s.error else ""))
        for name, v in self.sinks.items():
            if v["failed"] or v["pending"]:
                parts.append(
                    f"sink {name}: {v['delivered']} delivered, {v['failed']} failed, {v['pending']} still pending"
                )
        if self.recognition_errors:
            parts.append(f"{self.recognition_errors} events unlabelled because recognition failed")
        return "; ".join(parts)


class StreamProcessor:
    """One stream's signal path, frame by frame: faces, then per track the ring, EVM and spotting.

    A new session of a live feed (a reconnection) or a change of frame size restarts the face
    stage and every track, as a new stream would: the frames of a session give the events that a
    recording of that session gives. An interval is handed on once the frame at its offset has
    been seen (at the end of a stream, a later offset is cut to the last frame).

    Once warm, a frame allocates no image-sized buffer on this path: each crop is registered
    straight into the slot of its track's ring that it is pushed to (so ``AlignedFace.image`` of
    ``found`` is a view into the ring, valid for ``buffer_seconds``), and the registration, EVM
    and spotter work in buffers of their own.

    Args:
        stream: stream id.
        config: the pipeline config.
        fps: the stream's frame rate (Hz), or a function giving its rate now (read when a track
            starts and every second after).
        observe: receives ``(stage, seconds)`` of every stage timing (metrics).
        magnify: run EVM on the tracks (``TrackView.magnified``, for frame sinks that show it);
            without it no magnifier is built and ``magnified`` is ``None``. Always on when
            ``config.spot_input`` is ``"magnified"`` (the spotter watches it). See
            :meth:`needs_magnified`.
    """

    RATE_EVERY = 30  # frames between rate checks

    def __init__(
        self,
        stream: str,
        config: PipelineConfig,
        fps: float | Callable[[], float] = 30.0,
        observe: Callable[[str, float], None] | None = None,
        magnify: bool = True,
    ) -> None:
        self.stream = stream
        self.config = config
        self.fps: Callable[[], float] = fps if callable(fps) else (lambda: float(fps))
        self.magnify = magnify or config.spot_input == "magnified"
        model = config.recognize.model
        self.sequences = model is not None and needs_sequence(model)  # hand on whole intervals
        self.steps = step_runner(config.recognize) if self.sequences else None  # region CNN-LSTM, live
        self.faces = FaceStage(config.face)
        self.tracks: dict[int, _Track] = {}
        self.evm: TrackMagnifiers | None = None  # built with the first track, when magnify
        self.clock = StageClock(observe=observe)
        self.frames = 0
        self.frames_with_face = 0
        self.intervals = 0
        self.restarts = 0
        self.found: list[tuple[FaceObs, AlignedFace]] = []
        self._session: int | None = None
        self._shape: tuple[int, ...] | None = None
        self._last: Frame | None = None

    @staticmethod
    def needs_magnified(config: PipelineConfig, frame_sinks: Sequence[Any] = ()) -> bool:
        """Whether a stream's EVM output is used: the spotter watches it, or a frame sink may show
        it (every frame sink is taken to, unless it says ``uses_magnified = False``)."""
        return config.spot_input == "magnified" or any(getattr(s, "uses_magnified", True) for s in frame_sinks)

    def _new_track(self, face: AlignedFace) -> _Track:
        fps = self.fps()
        shape = face.image.shape
        capacity = max(8, math.ceil(fps * self.config.buffer_seconds))
        track = _Track(
            ring=FaceRing(capacity, shape),
            spotter=Spotter(
                fps,
                self.config.spot,
                shape,
                eyes=eye_mask(shape[:2], face.points68),
                iod_px=inter_ocular(face.points68),
            ),
            fps=fps,
            last_seen=face.t,
            born=face.t,
            points=np.zeros((capacity, 68, 2), np.float32) if self.sequences else None,
        )
        if self.magnify:
            if self.evm is None:
                self.evm = TrackMagnifiers(self.config.magnify, shape, batch=self.config.face.num_faces)
            self.evm.add(face.track, fps)
        return track

    def _crop_slot(self, track_id: int) -> np.ndarray | None:
        """Where the face stage registers a track's crop: the ring slot it is pushed to next."""
        track = self.tracks.get(track_id)
        return None if track is None else track.ring.next_image()

    def process(self, frame: Frame) -> list[Spotted]:
        """Run one frame through every stage; the intervals whose offset frame is this one or earlier."""
        out: list[Spotted] = []
        if self._last is not None and (frame.session != self._session or frame.image.shape != self._shape):
            why = (
                f"session {frame.session} of the feed"
                if frame.session != self._session
                else f"the frame size changed from {self._shape} to {frame.image.shape}"
            )
            log.info("%s: %s; restarting its tracks", self.stream, why)
            out += self.restart()
        self._session, self._shape = frame.session, frame.image.shape
        self.frames += 1
        if self.frames % self.RATE_EVERY == 0:
            self._follow_rate()
        t0 = time.perf_counter()
        self.found = found = self.faces.process(frame, self._crop_slot)
        self.clock.add("face", (time.perf_counter() - t0) * 1e3)
        if frame.key:  # the coding starts anew: each spotter takes its reference again (a track
            for open_track in self.tracks.values():  # not seen in this frame, at its next face)
                open_track.spotter.keyframe()
        if found:
            self.frames_with_face += 1
            for obs, face in found:
                track = self.tracks.get(face.track)
                if track is None:
                    track = self.tracks[face.track] = self._new_track(face)
                track.last_seen, track.last_obs, track.last_face = face.t, obs, face
                track.ring.push(face.index, face.t, face.image, frame.captured)  # in place: no copy
                if track.points is not None:  # the slot just pushed to
                    track.points[(track.ring.slot(face.index) or 0)] = face.points68
            if self.evm is not None:  # every track of the frame in one call (one GPU batch with cuda)
                t1 = time.perf_counter()
                ids = [face.track for _, face in found]
                for tid, magnified in zip(ids, self.evm.process(ids, [face.image for _, face in found])):
                    self.tracks[tid].magnified = magnified
                self.clock.add("evm", (time.perf_counter() - t1) * 1e3)
            t2 = time.perf_counter()
            for _, face in found:
                track = self.tracks[face.track]
                watched = track.magnified if self.config.spot_input == "magnified" else None
                if not track.rebased and face.t - track.born >= self.config.face.landmark_warmup_s:
                    # landmarks every frame -> every landmark_every-th: the crops shift a little
                    track.spotter.rebase()
                    track.rebased = True
                track.waiting += track.spotter.update(face.index, face.t, face.image if watched is None else watched)
            self.clock.add("spot", (time.perf_counter() - t2) * 1e3)
            if self.steps is not None:
                t3 = time.perf_counter()
                for _, face in found:
                    self._stream_window(self.tracks[face.track], face)
                self.clock.add("window", (time.perf_counter() - t3) * 1e3)
        self._last = frame
        for track_id, track in self.tracks.items():
            out += self._due(track_id, track, frame)
        for track_id in [k for k, v in self.tracks.items() if frame.t - v.last_seen > self.config.track_timeout_s]:
            out += self._close_track(track_id)
        return out

    @property
    def last_index(self) -> int:
        """Frame number of the last frame processed (-1 before any)."""
        return -1 if self._last is None else self._last.index

    def view(self, frame: Frame) -> FrameView:
        """What the frame sinks see of the frame just processed (copies of the traces)."""
        points = tuple(obs.points68 for obs, _ in self.found)
        tracks = []
        for tid in sorted(self.tracks):
            tr = self.tracks[tid]
            h = tr.spotter.history()
            face = tr.last_face if tr.last_face is not None and tr.last_face.index == frame.index else None
            tracks.append(
                TrackView(
                    tid,
                    tr.last_obs.bbox if tr.last_obs else (0.0, 0.0, 0.0, 0.0),
                    face,
                    tr.magnified,
                    h.sigma,
                    h.t,
                    self.config.spot.threshold,
                    tr.spotter.active,
                )
            )
        return FrameView(frame, self.fps(), points, tuple(tracks))

    def restart(self) -> list[Spotted]:
        """End every track (flushing its intervals) and start the face stage afresh."""
        out = [s for track_id in list(self.tracks) for s in self._close_track(track_id)]
        self.faces.close()
        self.faces = FaceStage(self.config.face)
        self.restarts += 1
        return out

    def close(self) -> list[Spotted]:
        """Flush every track's pending interval (end of stream) and release the landmarker (and the
        region CNN-LSTM's step engine)."""
        out = [s for track_id in list(self.tracks) for s in self._close_track(track_id)]
        self.faces.close()
        if self.steps is not None:
            self.steps.close()
        return out

    def _follow_rate(self) -> None:
        """Give tracks between movements the stream's rate when it moved by more than 5 %."""
        rate = self.fps()
        for track_id, track in self.tracks.items():
            if abs(rate - track.fps) > 0.05 * track.fps and not track.spotter.active:
                log.info("%s: frame rate %.2f -> %.2f Hz", self.stream, track.fps, rate)
                track.spotter.set_fps(rate)
                if self.evm is not None and track_id in self.evm:
                    self.evm.set_fps(track_id, rate)
                track.fps = rate

    def _stream_window(self, track: _Track, face: AlignedFace) -> None:
        """The region CNN-LSTM's steps for the movement in progress. The window starts at the
        spotter's onset estimate (:attr:`Spotter.movement_start`, where the interval would begin if
        it closed now); when the estimate moves by more than a step (the movement is still rising) it
        starts anew there. Steps run from the ring, at most :data:`_STEPS_PER_FRAME` a frame, so a
        window that starts behind the live frame catches up over the next frames
        (:mod:`realtime_mer.region_stream`)."""
        assert self.steps is not None and track.points is not None
        start = track.spotter.movement_start
        stream = track.stream
        if start is not None and not track.waiting and (stream is None or abs(start - stream.start) > stream.stride):
            slot = track.ring.slot(start)
            if slot is None:  # older than the ring, or before the track: its oldest frame
                start = track.ring.oldest_index
                slot = track.ring.slot(start)
                assert slot is not None
            track.stream = self.steps.start(start, track.ring.images[slot], track.points[slot], track.fps)
        self._advance(track, face.index, _STEPS_PER_FRAME)

    @staticmethod
    def _advance(track: _Track, upto: int, most: int) -> None:
        """Run up to ``most`` due steps of the track's region window on frames up to ``upto``."""
        stream = track.stream
        while stream is not None and most > 0 and (i := stream.next_index) is not None and i <= upto:
            got = track.ring.get(i)
            if got is None:  # the frame left the ring (or never came): the window cannot go on
                track.stream = None
                return
            stream.push(i, got[2])
            most -= 1

    def _due(self, track_id: int, track: _Track, frame: Frame) -> list[Spotted]:
        """The waiting intervals of a track whose offset frame has now been seen."""
        out, keep = [], []
        for iv in track.waiting:
            if iv.offset > frame.index:
                keep.append(iv)
                continue
            slot = track.ring.slot(iv.offset) if iv.offset < frame.index else None
            captured = frame.captured if slot is None else float(track.ring.captured[slot])
            if (s := self._spotted(track_id, track, iv, captured)) is not None:
                out.append(s)
        track.waiting = keep
        if track.stream is not None and not keep and not track.spotter.active:
            track.stream = None  # its interval was handed on, or the movement was not reported
        return out

    def _close_track(self, track_id: int) -> list[Spotted]:
        """End a track: its waiting and pending intervals, offsets cut to the last frame seen."""
        track = self.tracks.pop(track_id)
        if self.evm is not None and track_id in self.evm:
            self.evm.remove(track_id)
        last = self._last
        out = []
        for iv in [*track.waiting, *track.spotter.flush()]:
            if last is None:
                break
            if iv.offset > last.index:
                iv = replace(iv, offset=last.index, t_offset=iv.t_offset - (iv.offset - last.index) / track.fps)
            slot = track.ring.slot(iv.offset)
            captured = float(track.ring.captured[slot]) if slot is not None else last.captured
            if (s := self._spotted(track_id, track, iv, captured)) is not None:
                out.append(s)
        return out

    def _spotted(self, track_id: int, track: _Track, interval: Interval, offset_captured: float) -> Spotted | None:
        self.intervals += 1
        onset_slot = track.ring.slot(interval.onset)
        apex = track.ring.get(interval.apex)
        if onset_slot is None or apex is None:
            log.warning(
                "interval %s of track %d is older than the ring buffer; raise buffer_seconds", interval, track_id
            )
            return None
        crops = None
        stream = track.stream  # this movement's if it started within a step of its onset
        if stream is not None and abs(interval.onset - stream.start) <= stream.stride:
            self._advance(track, interval.offset, len(stream.offsets))  # steps still behind
            stream = track.stream
        if (
            stream is not None
            and abs(interval.onset - stream.start) <= stream.stride
            and (logits := stream.logits_at(interval.offset)) is not None
        ):
            crops = IntervalCrops((track.ring.images[onset_slot], apex[2]), 1, None, track.fps, logits.copy())
        elif track.points is not None:
            if self.steps is not None:
                log.debug("%s: region window of %s not streamed (stream from %s); run at the close",
                          self.stream, interval, None if stream is None else stream.start)  # fmt: skip
            indices, _, images = track.ring.sequence(int(track.ring.indices[onset_slot]), interval.offset)
            if len(indices) < 2:  # a one-frame interval: onset and apex crops, as the pair models get
                indices, images = np.array([indices[0], apex[0]]), np.stack([images[0], apex[2]])
            k = min(max(int(np.searchsorted(indices, apex[0])), 1), len(indices) - 1)
            crops = IntervalCrops(images, k, track.points[onset_slot].copy(), track.fps)
        return Spotted(
            self.stream,
            track_id,
            interval,
            track.ring.images[onset_slot].copy(),
            apex[2].copy(),
            track.last_obs.bbox if track.last_obs else (0.0, 0.0, 0.0, 0.0),
            float(track.ring.captured[onset_slot]),
            offset_captured,
            time.monotonic(),
            crops,
        )


class EventStage(threading.Thread):
    """Turns pending intervals into events and hands them, and the feeds' status changes, to the sinks.

    Whatever is queued when the stage wakes up (up to the recognizer's batch size) is recognized in
    one engine call, so tracks and streams share the engine's batches. Sinks are called from this
    thread only, in order.
    """

    def __init__(
        self,
        sinks: Sequence[GuardedSink],
        recognizer: Recognizer | None,
        metrics: Metrics,
        maxsize: int = 64,
        flush_s: float = 1.0,
    ) -> None:
        super().__init__(name="events", daemon=True)
        self.pending: queue.Queue[Spotted | None] = queue.Queue(maxsize=maxsize)
        self.sinks = list(sinks)
        self.recognizer = recognizer
        self.metrics = metrics
        self.flush_s = flush_s
        self.run_id = uuid.uuid4().hex[:12]
        self.count = 0
        self.per_stream: Counter[str] = Counter()
        self.recognition_errors = 0
        self._statuses: deque[Status] = deque()

    def put_status(self, status: Status) -> None:
        """Queue a feed's change of state (from any thread; rare, so never blocks)."""
        self._statuses.append(status)

    def run(self) -> None:
        limit = self.recognizer.config.max_batch if self.recognizer else 64
        next_flush = time.monotonic() + self.flush_s
        done = False
        while not done:
            self._send_statuses()
            try:
                batch = [self.pending.get(timeout=0.1)]
            except queue.Empty:
                batch = []
            while batch and batch[-1] is not None and len(batch) < limit:
                try:
                    batch.append(self.pending.get_nowait())
                except queue.Empty:
                    break
            if batch and batch[-1] is None:
                done = True
                batch.pop()
            if batch:
                try:
                    self._handle(batch)  # type: ignore[arg-type]
                except Exception:  # a bug here must not stop the events behind this batch
                    log.exception("event stage: a batch of %d intervals could not be handled", len(batch))
            if done or time.monotonic() >= next_flush:
                self._send_statuses()
                for sink in self.sinks:
                    sink.flush()
                next_flush = time.monotonic() + self.flush_s

    def _send_statuses(self) -> None:
        while self._statuses:
            status = self._statuses.popleft()
            for sink in self.sinks:
                sink.emit(status)

    def _recognize(self, items: list[Spotted]) -> tuple[list[Any] | None, str | None]:
        if self.recognizer is None:
            return None, None
        try:
            return self.recognizer.classify([p.recognition_input() for p in items]), None
        except Exception as e:  # the events still go out, unlabelled, with the reason
            self.recognition_errors += len(items)
            self.metrics.recognition_errors.labels(model=self.recognizer.name).inc(len(items))
            log.error(
                "recognition failed for %d event(s); they go out unlabelled: %s: %s", len(items), type(e).__name__, e
            )
            return None, f"recognition failed: {type(e).__name__}: {e}"

    def _handle(self, items: list[Spotted]) -> None:
        results, error = self._recognize(items)
        now = time.monotonic()
        for k, item in enumerate(items):
            latency = {"after_offset": (now - item.offset_captured) * 1e3, "queue": (now - item.spotted_at) * 1e3}
            extra: dict[str, Any] = {"error": error}
            if results is not None:
                r = results[k]
                latency.update({"input": r.input_ms, "engine": r.engine_ms})
                extra.update(label=r.label, probs=r.probs, model=self.recognizer.name)  # type: ignore[union-attr]
                self.metrics.stage.labels(stream=item.stream, stage="input").observe(r.input_ms * 1e-3)
                self.metrics.stage.labels(stream=item.stream, stage="engine").observe(r.engine_ms * 1e-3)
            self.count += 1
            event = Event(
                stream=item.stream,
                track=item.track,
                interval=item.interval,
                id=f"{self.run_id}-{self.count}",
                utc=utc_iso(wall_of(item.onset_captured)),
                latency_ms=latency,
                **extra,
            )
            for sink in self.sinks:
                sink.emit(event)
            self.per_stream[item.stream] += 1
            self.metrics.events.labels(stream=item.stream, kind=item.interval.kind, label=event.label or "none").inc()
            self.metrics.event_latency.labels(stream=item.stream).observe(latency["after_offset"] * 1e-3)


class StreamWorker(threading.Thread):
    """Runs one feed's :class:`StreamProcessor` on the frames of its capture thread and hands
    each spotted interval on with ``hand_on`` (a bounded queue's ``put``: a slow consumer slows
    spotting, nothing is lost).

    A frame that a stage fails on is skipped and counted (``failed_frames``); after
    ``MAX_FAILED_FRAMES`` in a row the feed is given up (``failed``).
    """

    def __init__(
        self,
        capture: CaptureThread,
        processor: StreamProcessor,
        hand_on: Callable[[Spotted], None],
        frame_sinks: Sequence[GuardedFrameSink] = (),
    ) -> None:
        super().__init__(name=f"worker-{capture.stream}", daemon=True)
        self.capture = capture
        self.processor = processor
        self.hand_on = hand_on
        self.frame_sinks = list(frame_sinks)
        self.summary = StreamSummary(capture.stream)
        self.failed_frames = 0
        self.faces = 0
        self._done: deque[float] = deque(maxlen=30)  # monotonic times of the last processed frames
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()

    def close(self) -> None:
        """End the feed now (a feed removed from a run): reading stops, the worker flushes its tracks
        and ends. A source that has ended already has its queued frames processed first."""
        if self.capture.state != "ended":
            self.capture.stop(timeout=0)
            self.stop()
        self.join()
        self.capture.stop(timeout=1.0)

    def fps_processed(self) -> float | None:
        """Frames processed per second of wall time, over the last 30."""
        done = list(self._done)
        span = done[-1] - done[0] if len(done) > 1 else 0.0
        return (len(done) - 1) / span if span > 0 else None

    def snapshot(self) -> FeedSnapshot:
        """The feed's counters for the metrics and the health line."""
        c = self.capture.stats()
        return FeedSnapshot(
            frames=c.frames_read,
            processed=self.processor.frames,
            dropped=c.dropped,
            bad_frames=c.bad_frames,
            failed_frames=self.failed_frames,
            reconnects=c.reconnects,
            state=c.state,
            queued=c.queued,
            fps_in=c.fps,
            fps_processed=self.fps_processed(),
            faces=self.faces,
            frames_with_face=self.processor.frames_with_face,
        )

    def run(self) -> None:
        p = self.processor
        in_a_row = 0
        try:
            while not self._halt.is_set():
                frame = self.capture.get(timeout=0.1)
                if frame is None:
                    if self.capture.finished:
                        break
                    continue
                try:
                    spotted = p.process(frame)
                    in_a_row = 0
                except Exception as e:  # one bad frame must not end the feed
                    self.failed_frames += 1
                    in_a_row += 1
                    if self.failed_frames <= 3 or self.failed_frames % 100 == 0:
                        log.exception(
                            "%s: frame %d skipped (%d so far)", self.capture.stream, frame.index, self.failed_frames
                        )
                    if in_a_row >= MAX_FAILED_FRAMES:
                        self.capture.fail(
                            RuntimeError(f"{in_a_row} frames in a row failed; last: {type(e).__name__}: {e}")
                        )
                        break
                    continue
                for item in spotted:
                    self.hand_on(item)
                self.faces = len(p.found)
                self._done.append(time.monotonic())
                if self.frame_sinks:
                    view = p.view(frame)
                    for sink in self.frame_sinks:
                        sink.frame(view)
        finally:
            for item in p.close():
                self.hand_on(item)
            stats = self.capture.stats()
            s = self.summary
            s.frames, s.frames_with_face, s.intervals = p.frames, p.frames_with_face, p.intervals
            s.dropped, s.bad_frames, s.reconnects, s.fps = stats.dropped, stats.bad_frames, stats.reconnects, stats.rate
            s.failed_frames, s.restarts, s.stage_ms = self.failed_frames, p.restarts, p.clock.medians()
            s.last_index = p.last_index
            s.planted = tuple(getattr(self.capture.source, "planted", ()))


class FeedRunner(ABC):
    """What both backends of a run share (:class:`Pipeline` in-process, and
    :class:`~realtime_mer.cluster.RayPipeline`): the feeds, the record sinks and the metrics,
    stopping, and following a list of feeds that changes while it runs.

    ``reload`` (when given) is called when :meth:`reload_feeds` is (SIGHUP) or every ``reload_s``
    seconds, and returns the feeds the run should have now, or ``None`` for no change: a feed that
    is new starts, a feed that is gone is stopped and its tracks flushed, a feed whose entry
    changed restarts, and an edit that does not check out keeps the feeds as they are.
    """

    def __init__(
        self,
        specs: Sequence[SourceSpec],
        config: PipelineConfig,
        sinks: Sequence[Any] = (),
        *,
        metrics: Metrics | None = None,
        monitor: bool = False,
        health_s: float = 0.0,
        reload: Callable[[], Sequence[SourceSpec] | None] | None = None,
        reload_s: float = 2.0,
    ) -> None:
        if not specs:
            raise ConfigError("no feeds: give at least one source")
        check_names(specs, "sources")
        self.specs = list(specs)
        self.config = config
        self.metrics = metrics or Metrics()
        self.record_sinks = [GuardedSink(s) for s in sinks if isinstance(s, Sink)]
        self.monitor = monitor
        self.health_s = health_s
        self.reload = reload
        self.reload_s = reload_s
        self.stage: EventStage | None = None
        self.stop_reason = ""
        self._stop = threading.Event()
        self._reload_asked = threading.Event()
        self._next_reload = 0.0
        self._specs: dict[str, SourceSpec] = {}  # the feeds of the run (running or ended), by stream id

    def stop(self, reason: str = "stop requested") -> None:
        """Ask the run to stop and flush (safe from a signal handler or another thread)."""
        self.stop_reason = reason
        self._stop.set()

    def reload_feeds(self) -> None:
        """Ask for ``reload`` to be called now (safe from a signal handler)."""
        self._reload_asked.set()

    def _go_on(self, now: float, start: float, max_seconds: float | None) -> bool:
        """False when the run is to stop now (asked to, or ``max_seconds`` passed); otherwise
        follows the feeds when a reload is asked for or due, and True."""
        if self._stop.is_set():
            log.info("%s: stopping and flushing", self.stop_reason)
            return False
        if max_seconds is not None and now - start >= max_seconds:
            log.info("--max-seconds %.1f reached: stopping", max_seconds)
            return False
        if self.reload is not None and (
            self._reload_asked.is_set() or (self.reload_s > 0 and now >= start + self._next_reload)
        ):
            self._reload_asked.clear()
            self._next_reload = now - start + self.reload_s
            self._apply_reload()
        return True

    def _apply_reload(self) -> None:
        """Call ``reload`` and add, remove and restart feeds to match what it gives."""
        assert self.reload is not None
        try:
            wanted = self.reload()
            if wanted is None:
                return
            check_names(wanted, "reloaded feeds")
            new = {display_name(s): s for s in wanted}
            changed = {k: v for k, v in new.items() if self._specs.get(k) != v}
            checked = {k: self._check(v) for k, v in changed.items()}
        except ConfigError as e:  # a bad edit keeps the feeds running as they are
            log.error("feeds not reloaded, the running ones are kept: %s", e)
            return
        for stream in [k for k, v in self._specs.items() if new.get(k) != v]:
            log.info("%s: %s", stream, "settings changed: restarting" if stream in new else "removed")
            self._remove(stream)
        for stream, spec in changed.items():
            log.info("%s: added", stream)
            self._add(spec, checked[stream])

    def _check(self, spec: SourceSpec) -> Any:
        """Check a feed before it is added (a wrong path fails here); what :meth:`_add` takes."""
        return check_source(spec, self.config)

    @abstractmethod
    def _add(self, spec: SourceSpec, checked: Any) -> None:
        """Start a feed, given what :meth:`_check` returned for it."""

    @abstractmethod
    def _remove(self, stream: str) -> None:
        """Stop a feed and flush its tracks (its summary is kept)."""


class Pipeline(FeedRunner):
    """Runs feeds through the signal path into sinks until they end, ``max_seconds`` pass, or
    :meth:`stop` (SIGINT/SIGTERM handlers call it); used by ``realtime-mer`` and ``realtime-mer monitor``.

    Order of work: the sources are checked (files opened: a wrong path fails at once), then the
    recognizer loads and the per-feed stages are built and warmed up, and only then do the
    sources start delivering frames, so a live feed drops nothing while models load.

    Feeds can be added and removed while it runs (``reload``, see :class:`FeedRunner`). The run
    ends when every feed has ended.

    Args:
        specs: the feeds.
        config: the pipeline config (each feed's ``settings`` are merged over it).
        sinks: record and/or frame sinks (see :mod:`realtime_mer.sinks`).
        metrics: where the metrics go (a fresh registry by default).
        monitor: keep going when a live feed does not open at first (retried like a broken one)
            instead of failing the run.
        health_s: log a health line per feed this often, s (0: never).
        reload: gives the feeds wanted now (e.g. a streams file read again), ``None`` when unchanged.
        reload_s: how often ``reload`` is called without being asked, s (0: only when asked).
    """

    def __init__(
        self,
        specs: Sequence[SourceSpec],
        config: PipelineConfig,
        sinks: Sequence[Any] = (),
        *,
        metrics: Metrics | None = None,
        monitor: bool = False,
        health_s: float = 0.0,
        reload: Callable[[], Sequence[SourceSpec] | None] | None = None,
        reload_s: float = 2.0,
    ) -> None:
        super().__init__(
            specs, config, sinks, metrics=metrics, monitor=monitor, health_s=health_s, reload=reload, reload_s=reload_s
        )
        self.frame_sinks = [GuardedFrameSink(s) for s in sinks if isinstance(s, FrameSink)]
        self._pollers = [s for s in sinks if callable(getattr(s, "poll", None))]
        self.workers: dict[str, StreamWorker] = {}  # the feeds of the run by stream id
        self._ended: list[StreamWorker] = []  # feeds removed while running

    def run(self, max_seconds: float | None = None) -> RunSummary:
        """Run until every feed ended (or failed), ``max_seconds`` passed since the feeds were started
        (the recognizer's preparation is not counted), or :meth:`stop`; flush every event and sink;
        return the summary (its ``exit_code`` tells failures)."""
        start = time.monotonic()
        feeds = [(spec, self._check(spec)) for spec in self.specs]
        recognizer: Recognizer | None = None
        try:
            recognizer = prepare(self.config)
            self.stage = stage = EventStage(self.record_sinks, recognizer, self.metrics, self.config.event_queue)
            for sink in self.record_sinks:
                self.metrics.watch_queue(f"sink:{sink.name}", sink.pending)
            self.metrics.watch_queue("events", stage.pending.qsize)
            stage.start()
            for spec, checked in feeds:
                self._add(spec, checked, start_now=False)
            for w in self.workers.values():
                w.start()
            for w in self.workers.values():
                w.capture.start(open_now=not self.monitor)
            self._wait(time.monotonic(), max_seconds)  # the feeds' time: the recognizer's preparation is not counted
        except KeyboardInterrupt:
            log.info("interrupted: flushing events")
        finally:
            self._shutdown(recognizer)
        workers = [*self._ended, *self.workers.values()]
        for w in workers:
            w.summary.events = self.stage.per_stream[w.summary.stream] if self.stage else 0
            w.summary.state = w.capture.state
            w.summary.error = None if w.capture.error is None else str(w.capture.error)
        return RunSummary(
            streams=[w.summary for w in workers],
            events=self.stage.count if self.stage else 0,
            seconds=time.monotonic() - start,
            sinks=self._sink_counts(),
            recognition_errors=self.stage.recognition_errors if self.stage else 0,
        )

    def _add(self, spec: SourceSpec, checked: tuple[Any, PipelineConfig], start_now: bool = True) -> None:
        """Build a feed's capture thread, processor and worker from its checked source and config
        (and start them with ``start_now``)."""
        assert self.stage is not None
        source, cfg = checked
        capture = CaptureThread(source, cfg.capture).add_listener(self.stage.put_status)
        magnify = StreamProcessor.needs_magnified(cfg, self.frame_sinks)  # EVM only where something shows it
        processor = StreamProcessor(source.name, cfg, _rate_of(capture), self._observer(source.name), magnify)
        worker = StreamWorker(capture, processor, self.stage.pending.put, self.frame_sinks)
        self.metrics.watch_feed(source.name, worker.snapshot)
        self.workers[source.name] = worker
        self._specs[source.name] = spec
        if start_now:
            worker.start()
            capture.start(open_now=False)

    def _remove(self, stream: str) -> None:
        """Stop a feed: its capture ends, its worker flushes its tracks; its summary is kept."""
        worker = self.workers.pop(stream)
        self._specs.pop(stream)
        worker.close()
        self.metrics.unwatch_feed(stream)
        self._ended.append(worker)

    def _sink_counts(self) -> dict[str, dict[str, int]]:
        """Per sink name: records/frames delivered, failures, records still pending (a sink that takes
        both records and frames is counted once, with both)."""
        out: dict[str, dict[str, int]] = {}
        guards: list[GuardedSink | GuardedFrameSink] = [*self.record_sinks, *self.frame_sinks]
        for s in guards:
            c = out.setdefault(s.name, {"delivered": 0, "failed": 0, "pending": 0})
            c["delivered"] += s.delivered
            c["failed"] += s.failed
            c["pending"] += s.pending()
        return out

    def _observer(self, stream: str) -> Callable[[str, float], None]:
        return stage_observer(self.metrics, stream)

    def _wait(self, start: float, max_seconds: float | None) -> None:
        next_health = start + self.health_s
        self._next_reload = self.reload_s
        while any(w.is_alive() for w in self.workers.values()):
            now = time.monotonic()
            if not self._go_on(now, start, max_seconds):
                return
            for w in self.workers.values():
                w.capture.check_stall(now)
            if self.health_s and now >= next_health and self.stage is not None:
                for name, w in self.workers.items():
                    log.info("%s", health_line(name, w.snapshot(), self.stage.per_stream[name]))
                next_health = now + self.health_s
            for sink in self._pollers:
                if not sink.poll():
                    log.info("display closed: stopping")
                    return
            self._stop.wait(0.03 if self._pollers else 0.2)

    def _shutdown(self, recognizer: Recognizer | None) -> None:
        workers = list(self.workers.values())
        for w in workers:
            w.capture.stop(timeout=0)
        for w in workers:
            w.stop()
        for w in workers:
            if w.ident is not None:  # started
                w.join()
        stage = self.stage
        if stage is not None and stage.is_alive():
            stage.pending.put(None)
            stage.join()
        for sink in self.record_sinks:
            sink.close()
        for frame_sink in self.frame_sinks:
            frame_sink.close()
        if recognizer is not None:
            recognizer.close()
        for w in workers:
            w.capture.stop(timeout=1.0)


def check_source(spec: SourceSpec, config: PipelineConfig) -> tuple[Any, PipelineConfig]:
    """The feed's source, named, with its config (the feed's settings merged over ``config``); a
    file is opened once here to check it, before any model loads, so a wrong path costs no time."""
    cfg = merge_config(config, spec.settings)
    source = open_source(spec.kind, spec.target, cfg.capture)
    if spec.name:
        source.name = spec.name
    if spec.kind in ("video", "replay"):
        source.open()
        source.close()
    return source, cfg


def stage_observer(metrics: Metrics, stream: str) -> Callable[[str, float], None]:
    """``observe(stage, seconds)`` into ``stream``'s per-frame stage histograms."""
    children = {stage: metrics.stage.labels(stream=stream, stage=stage) for stage in ("face", "evm", "spot")}

    def observe(stage: str, seconds: float) -> None:
        child = children.get(stage)
        if child is None:  # a stage only some models have: the region CNN-LSTM's window steps
            child = children[stage] = metrics.stage.labels(stream=stream, stage=stage)
        child.observe(seconds)

    return observe


def health_line(stream: str, s: FeedSnapshot, events: int) -> str:
    """One line of a feed's health: state, rates in and processed, drops, faces, events, reconnects."""
    fps_in, fps_out = ("-" if v is None else f"{v:.1f}" for v in (s.fps_in, s.fps_processed))
    share = 100.0 * s.dropped / s.frames if s.frames else 0.0
    return (
        f"{stream}: {s.state} | in {fps_in} fps, processed {fps_out} fps | dropped {s.dropped} "
        f"({share:.1f} %) | faces {s.faces} | events {events} | reconnects {s.reconnects}"
    )


def _rate_of(capture: CaptureThread) -> Callable[[], float]:
    return lambda: capture.stats().rate


def prepare(config: PipelineConfig) -> Recognizer | None:
    """The one-time work of a run, done before any source starts: load the recognizer (on a first
    run this exports its ONNX file into the cache), call its engine once, and compile the magnifier's
    kernels (Numba, cached on disk). Says so in one line when it took a while; returns the recognizer."""
    t0 = time.monotonic()
    recognizer = Recognizer(config.recognize) if config.recognize.model else None
    if recognizer is not None:
        recognizer.warm_up(config.face.size)
    shape = (*config.face.size[::-1], 3)
    make_magnifier(config.magnify, shape, 30.0).process(np.zeros(shape, np.uint8))
    took = time.monotonic() - t0
    if took > 2.0:
        log.info("prepared in %.1f s (one-time work of a first run: ONNX export, Numba compilation; cached now)", took)
    return recognizer


def run_pipeline(
    specs: Sequence[SourceSpec],
    config: PipelineConfig,
    *,
    events: str | Path = "-",
    max_seconds: float | None = None,
    extra_sinks: Sequence[Any] = (),
    metrics: Metrics | None = None,
) -> RunSummary:
    """Run ``specs`` with a JSON Lines sink on ``events`` (``"-"``: stdout) plus ``extra_sinks``;
    see :class:`Pipeline`."""
    jsonl = JsonlSink(events, from_mapping(JsonlSink.Config, config.sinks.get("jsonl") or {}, "sinks.jsonl"))
    return Pipeline(specs, config, [jsonl, *extra_sinks], metrics=metrics).run(max_seconds)
