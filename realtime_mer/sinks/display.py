"""The live dashboard as a sink: each stream's newest processed frame in its own window."""

from __future__ import annotations

import threading

import numpy as np

from ..config import settings
from ..display import check_display, close_windows, render_dashboard, show
from ..errors import UserError
from ..overlay import RecentEvents
from ..types import Event, FrameView, Record
from .base import SinkError


@settings
class DisplayConfig:
    """Settings of the dashboard (``sinks.display`` in the pipeline config).

    Attributes:
        trace_s: seconds of spotting signal in the trace.
        show_s: seconds an event's label stays on screen after its offset time.
    """

    trace_s: float = 4.0
    show_s: float = 2.0

    def __post_init__(self) -> None:
        if self.trace_s <= 0 or self.show_s < 0:
            raise ValueError(f"trace_s must be > 0 and show_s >= 0 seconds, got {self.trace_s}, {self.show_s}")


class DisplaySink:
    """Renders every processed frame (:func:`realtime_mer.display.render_dashboard`) and shows them.

    ``frame`` (any stream's worker thread) renders into a slot per stream that keeps only the
    newest image; ``poll`` (the main thread, every few tens of ms) shows the new images, one window
    per stream, and says whether the user still wants them. ``emit`` keeps the events so the
    dashboard can show their labels.

    Args:
        target: ignored (there is nothing to name).
        config: what the dashboard shows.

    Raises:
        SinkError: no screen to open a window on.
    """

    Config = DisplayConfig

    def __init__(self, target: str = "", config: DisplayConfig | None = None) -> None:
        try:
            check_display()
        except UserError as e:
            raise SinkError(str(e)) from e
        self.config = config or DisplayConfig()
        self.name = "display"
        self.events = RecentEvents(max(self.config.trace_s, self.config.show_s))
        self._fresh: dict[str, np.ndarray] = {}
        self._windows: dict[str, None] = {}  # window names shown so far, in order
        self._lock = threading.Lock()
        self._open = True

    def emit(self, record: Record) -> None:
        """Keep an event for its stream's dashboard; status records are ignored."""
        if isinstance(record, Event):
            self.events.add(record)

    def flush(self) -> None:
        """Nothing to make durable."""

    def pending(self) -> int:
        return 0

    def frame(self, view: FrameView) -> None:
        """Render ``view`` and make it its stream's newest image (an older one not shown yet is dropped)."""
        stream = view.frame.stream
        image = render_dashboard(
            view, self.events.at(stream, view.frame.t), trace_s=self.config.trace_s, show_s=self.config.show_s
        )
        with self._lock:
            self._fresh[stream] = image

    def poll(self) -> bool:
        """Show each stream's newest image (main thread); False once the user pressed q/Esc or closed a window."""
        with self._lock:
            fresh, self._fresh = self._fresh, {}
        if not self._open:
            return False
        images = {f"realtime-mer: {stream}": image for stream, image in fresh.items()}
        self._windows.update(dict.fromkeys(images))
        self._open = show(images, self._windows)
        return self._open

    def close(self) -> None:
        """Close the windows (main thread); safe to call twice."""
        self._open = False
        windows, self._windows = list(self._windows), {}
        if windows:
            close_windows(windows)
