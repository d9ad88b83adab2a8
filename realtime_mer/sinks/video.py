"""The overlay burnt into video files: one H.264 file per stream, frames with boxes, labels and trace."""

from __future__ import annotations

import logging
import math
import os
import re
import threading
from pathlib import Path

import cv2
import numpy as np

from ..config import settings
from ..media import VIDEO_SUFFIXES, Mp4Writer
from ..overlay import RecentEvents, compose
from ..types import Event, FrameView, Record
from .base import SinkError

log = logging.getLogger(__name__)

STREAM = "{stream}"


@settings
class OverlayVideoConfig:
    """Settings of the overlay video sink (``sinks.video`` in the pipeline config).

    Attributes:
        crf: libx264 constant rate factor (0 lossless, 23 default, 51 worst).
        trace_s: seconds of spotting signal in the trace strip.
        show_s: seconds an event's label stays on screen after its offset time.
        strip_px: height of the trace strip under the frame, px.
    """

    crf: int = 23
    trace_s: float = 4.0
    show_s: float = 2.0
    strip_px: int = 96

    def __post_init__(self) -> None:
        if not 0 <= self.crf <= 51:
            raise ValueError(f"crf must be in 0..51, got {self.crf}")
        if self.trace_s <= 0 or self.show_s < 0:
            raise ValueError(f"trace_s must be > 0 and show_s >= 0 seconds, got {self.trace_s}, {self.show_s}")
        if self.strip_px < 32:
            raise ValueError(f"strip_px must be at least 32, got {self.strip_px}")


def safe_name(stream: str) -> str:
    """``stream`` as a file-name part: runs of characters other than letters, digits, ``._-`` become ``_``.

    >>> safe_name("rtsp://cam-1:554/live")
    'rtsp_cam-1_554_live'
    """
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stream).strip("._")[:100] or "stream"


class _Output:
    """One stream's file, and the frame size all its frames are brought to.

    Args:
        frame_size: ``(width, height)`` of the stream's first frame.
        strip_px: height of the trace strip under it; the file's height is their sum, and both
            sides are padded to even numbers (H.264 in yuv420p).
    """

    def __init__(self, path: Path, fps: float, frame_size: tuple[int, int], strip_px: int, crf: int) -> None:
        self.frame_size = frame_size
        w, h = frame_size[0], frame_size[1] + strip_px
        self.pad = (w % 2, h % 2)
        self.writer = Mp4Writer(path, fps, (w + self.pad[0], h + self.pad[1]), crf)
        self.closed = False
        self.lock = threading.Lock()

    def write(self, image: np.ndarray) -> None:
        """Append one overlay frame of ``frame_size`` plus the strip."""
        if any(self.pad):
            image = cv2.copyMakeBorder(image, 0, self.pad[1], 0, self.pad[0], cv2.BORDER_CONSTANT)
        self.writer.write(image)


class OverlayVideoSink:
    """Writes each stream's processed frames with the overlay (:func:`realtime_mer.overlay.compose`).

    A record sink (``emit`` keeps each stream's events for the overlay) and a frame sink
    (``frame`` renders and encodes), safe to call from the event thread and the streams' workers at
    once. Each stream gets one file at its ``view.fps``, sized by its first frame (later frames of
    another size are resized to it; an odd width or height is padded by one black pixel).

    Args:
        target: the file to write, ending in a video suffix (``.mp4``, ``.mkv``, ``.mov``, ``.avi``).
            ``{stream}`` in the file name is replaced by each stream's :func:`safe_name`; without
            it the first stream to send a frame writes ``target`` and each other stream
            ``<stem>.<safe name><suffix>`` beside it.
        config: encoding and overlay settings.

    Attributes:
        paths: stream -> the file it writes, once it sent a frame.
        events: the events kept for the overlay (bounded; see :class:`RecentEvents`).
    """

    Config = OverlayVideoConfig

    uses_magnified = False  # the overlay draws boxes, labels and the trace, not the EVM crops

    def __init__(self, target: str | Path, config: OverlayVideoConfig | None = None) -> None:
        self.config = config or OverlayVideoConfig()
        self.target = Path(target)
        self.name = f"video:{self.target}"
        self.events = RecentEvents(max(self.config.trace_s, self.config.show_s))
        self.paths: dict[str, Path] = {}
        self._outputs: dict[str, _Output] = {}
        self._lock = threading.Lock()
        self._warned = False
        self._closed = False
        self._check_target()

    def _check_target(self) -> None:
        t = self.target
        if t.suffix.lower() not in VIDEO_SUFFIXES:
            raise SinkError(
                f"cannot write video to {t}: the file name must end in one of "
                f"{', '.join(VIDEO_SUFFIXES)}, e.g. overlay.mp4"
            )
        if STREAM in str(t.parent):
            raise SinkError(
                f"cannot write video to {t}: put {STREAM} in the file name, not in a folder "
                f"name (e.g. out/overlay-{STREAM}.mp4)"
            )
        if t.is_dir():
            raise SinkError(f"cannot write video to {t}: it is a folder; give a file name such as {t / 'overlay.mp4'}")
        try:
            t.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SinkError(
                f"cannot write video to {t}: cannot create folder {t.parent} ({e.strerror}); "
                "pass a path in a writable folder"
            ) from e
        if not os.access(t.parent, os.W_OK):
            raise SinkError(
                f"cannot write video to {t}: folder {t.parent} is not writable; pass a path in a writable folder"
            )

    def emit(self, record: Record) -> None:
        """Keep an event for its stream's overlay; status records are ignored."""
        if isinstance(record, Event):
            self.events.add(record)

    def flush(self) -> None:
        """Nothing to do: frames are encoded as they come, and ``close`` finishes the files."""

    def pending(self) -> int:
        return 0

    def frame(self, view: FrameView) -> None:
        """Render ``view`` with its stream's events and append it to the stream's file (ignored after close)."""
        cfg = self.config
        stream, image = view.frame.stream, view.frame.image
        out = self._output(stream, view.fps, (image.shape[1], image.shape[0]))
        if out is None:
            return
        overlay = compose(
            view,
            self.events.at(stream, view.frame.t),
            trace_s=cfg.trace_s,
            show_s=cfg.show_s,
            strip_px=cfg.strip_px,
            size=out.frame_size,
        )
        with out.lock:
            if not out.closed:
                out.write(overlay)

    def _output(self, stream: str, fps: float, frame_size: tuple[int, int]) -> _Output | None:
        """The stream's file, opened on its first frame; None once the sink is closed."""
        with self._lock:
            if self._closed:
                return None
            out = self._outputs.get(stream)
            if out is None:
                if not (math.isfinite(fps) and fps > 0):
                    log.warning("stream %s reports no frame rate (%s): writing its video at 30 fps", stream, fps)
                    fps = 30.0
                path = self._path_for(stream)
                try:
                    out = _Output(path, fps, frame_size, self.config.strip_px, self.config.crf)
                except OSError as e:
                    raise SinkError(f"cannot write video to {path}: {e}") from e
                self._outputs[stream] = out
                self.paths[stream] = path
                log.info("stream %s: writing the overlay video to %s", stream, path)
            return out

    def _path_for(self, stream: str) -> Path:
        """A file for a new stream, distinct from the other streams' (called under the lock)."""
        t, safe = self.target, safe_name(stream)
        taken = set(self.paths.values())
        if not taken and STREAM not in t.name:
            return t
        if STREAM not in t.name and not self._warned:
            self._warned = True
            log.warning(
                "%s has no %s: the first stream writes it and each other stream <stem>.<stream>%s "
                "beside it; put %s in the path (e.g. overlay-%s%s) to name every file by its stream",
                t,
                STREAM,
                t.suffix,
                STREAM,
                STREAM,
                t.suffix,
            )
        n = 1
        while True:
            part = safe if n == 1 else f"{safe}-{n}"
            path = t.with_name(t.name.replace(STREAM, part) if STREAM in t.name else f"{t.stem}.{part}{t.suffix}")
            if path not in taken:
                return path
            n += 1

    def close(self) -> None:
        """Finish every stream's file; later frames are ignored. Safe to call twice."""
        with self._lock:
            self._closed = True
            outputs = list(self._outputs.values())
        for out in outputs:
            with out.lock:
                if not out.closed:
                    out.closed = True
                    out.writer.close()
