"""Capture: sources (camera, video file, RTSP) and the thread that hands their frames on.

``open_source(kind, target, config)`` builds a :class:`Source`; ``CaptureThread(source).start()``
opens it and reads it into a bounded queue of :class:`~realtime_mer.types.Frame`. A new source is
one module with a class following :class:`Source` plus one line in ``SOURCES``.
"""

from __future__ import annotations

from collections.abc import Callable

from .base import BadFrame, CaptureConfig, Source, SourceError, read_keyframe, redact_url
from .camera import CameraSource
from .pyav import RtspSource, VideoFileSource
from .thread import CaptureStats, CaptureThread

__all__ = [
    "SOURCES",
    "BadFrame",
    "CameraSource",
    "CaptureConfig",
    "CaptureStats",
    "CaptureThread",
    "RtspSource",
    "Source",
    "SourceError",
    "VideoFileSource",
    "open_source",
    "read_keyframe",
    "redact_url",
]


def _camera(target: str | int, config: CaptureConfig) -> Source:
    if isinstance(target, str):
        if not target.strip().isdigit():
            raise SourceError(f"camera index must be a whole number >= 0, got {target!r}; e.g. --camera 0")
        target = int(target)
    return CameraSource(target, config)


def _demo(target: str | int, config: CaptureConfig) -> Source:
    """The synthetic live source of ``--demo``; ``target`` is ``"SEED:FPS"`` (either part may be empty)."""
    from realtime_mer.synth import SyntheticSource

    seed, _, fps = str(target).partition(":")
    try:
        return SyntheticSource(fps=float(fps or 30.0), seed=int(seed) if seed else None)
    except ValueError as e:
        raise SourceError(f"bad demo source {target!r}: {e}; use --demo [SEED] [--demo-fps FPS]") from None


# kind -> (target, config) -> Source
SOURCES: dict[str, Callable[[str | int, CaptureConfig], Source]] = {
    "camera": _camera,
    "video": lambda target, config: VideoFileSource(str(target), config),
    "replay": lambda target, config: VideoFileSource(str(target), config, realtime=True),
    "rtsp": lambda target, config: RtspSource(str(target), config),
    "demo": _demo,
}


def open_source(kind: str, target: str | int, config: CaptureConfig | None = None) -> Source:
    """A source of ``kind`` (``'camera'``, ``'video'``, ``'replay'`` (a file at its own rate, live),
    ``'rtsp'``, ``'demo'``) for ``target`` (camera index, file path, URL, ``"SEED:FPS"``). It is
    opened by :meth:`CaptureThread.start` (or its own ``open``)."""
    try:
        make = SOURCES[kind]
    except KeyError:
        raise SourceError(f"unknown source kind {kind!r}; known kinds: {', '.join(SOURCES)}") from None
    return make(target, config or CaptureConfig())
