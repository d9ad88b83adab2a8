"""Where records and frames go, behind a registry.

``make_sink(kind, target, options)`` builds a sink of a registered kind:

- ``jsonl``: JSON Lines to stdout or a file, with rotation (``--events``);
- ``webhook``: HTTP POST in batches, retried, spilled to disk while the endpoint is down (``--webhook``);
- ``video``: the overlay burnt into a video file (``--output-video``);
- ``display``: the live dashboard window (``--display``).

Any of them is also ``--sink KIND=TARGET``. A new sink is one module with a class that has a
``Config`` dataclass and takes ``(target, config)``, following :class:`Sink` (records) and/or
:class:`FrameSink` (frames), plus one line in ``SINKS``. Its settings come from the pipeline
config's ``sinks.<kind>`` mapping.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from ..config import from_mapping
from .base import CollectSink, FrameSink, GuardedFrameSink, GuardedSink, Sink, SinkError
from .jsonl import JsonlConfig, JsonlSink

# kind -> "module:Class", imported when first used (the video and display sinks need OpenCV/PyAV)
SINKS: dict[str, str] = {
    "jsonl": "realtime_mer.sinks.jsonl:JsonlSink",
    "webhook": "realtime_mer.sinks.webhook:WebhookSink",
    "video": "realtime_mer.sinks.video:OverlayVideoSink",
    "display": "realtime_mer.sinks.display:DisplaySink",
}

__all__ = [
    "SINKS",
    "CollectSink",
    "FrameSink",
    "GuardedFrameSink",
    "GuardedSink",
    "JsonlConfig",
    "JsonlSink",
    "Sink",
    "SinkError",
    "make_sink",
    "sink_class",
]


def sink_class(kind: str) -> Any:
    """The class registered for ``kind``; SinkError naming the known kinds otherwise."""
    try:
        module, _, name = SINKS[kind].partition(":")
    except KeyError:
        raise SinkError(f"unknown sink {kind!r}; known sinks: {', '.join(SINKS)}") from None
    return getattr(importlib.import_module(module), name)


def make_sink(kind: str, target: str, options: Mapping[str, Any] | None = None) -> Any:
    """A sink of ``kind`` writing to ``target`` (a path, URL, or ``"-"``), configured by
    ``options`` (validated against the sink's ``Config``; bad keys raise ConfigError naming them)."""
    cls = sink_class(kind)
    return cls(target, from_mapping(cls.Config, dict(options or {}), f"sinks.{kind}"))
