"""What every sink is, and the guard that keeps a failing sink from losing events silently.

A *record sink* receives every record of the run once, in order, from the event thread: the
events (:class:`~realtime_mer.types.Event`) and the feeds' changes of state
(:class:`~realtime_mer.types.Status`). A *frame sink* also sees every processed frame
(:class:`~realtime_mer.types.FrameView`) from its stream's worker thread. A sink class may be both.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol, runtime_checkable

from ..errors import UserError
from ..types import Event, FrameView, Record, Status

log = logging.getLogger(__name__)


class SinkError(UserError):
    """A sink cannot be made (bad target or settings); the message says which and what to do."""


@runtime_checkable
class Sink(Protocol):
    """Receives every record once, in order, from one thread (the event stage).

    Attributes:
        name: how logs, metrics and the summary name this sink (never with credentials).
    """

    name: str

    def emit(self, record: Record) -> None:
        """Deliver or queue one record; raise on failure (the guard retries and reports)."""
        ...

    def flush(self) -> None:
        """Make what was emitted durable (write, fsync); called periodically and on shutdown."""
        ...

    def pending(self) -> int:
        """Records accepted but not delivered yet (a webhook's queue and spill file)."""
        ...

    def close(self) -> None:
        """Deliver or persist what is pending, flush, release; safe to call twice."""
        ...


@runtime_checkable
class FrameSink(Protocol):
    """Sees every processed frame of the run, from the stream's worker thread (one per stream).

    A sink that never shows the EVM-magnified crops (``TrackView.magnified``) says so with a class
    attribute ``uses_magnified = False``, so that EVM is not run for it; without the attribute a
    sink is taken to use them.
    """

    name: str

    def frame(self, view: FrameView) -> None:
        """Take one processed frame (render it, write it, show it)."""
        ...

    def close(self) -> None:
        """Finish (close files); safe to call twice."""
        ...


class GuardedSink:
    """A record sink whose failures are retried, then counted and reported, never raised.

    ``emit`` tries ``attempts`` times with a doubling pause from ``pause_s``; a record that still
    fails is counted in ``failed`` (and logged, with the sink's message) and the run goes on with
    the next record, so that one broken sink does not stop the others. The run's exit status
    tells the failure (see ``realtime-mer --help``).
    """

    def __init__(self, sink: Sink, attempts: int = 3, pause_s: float = 0.05) -> None:
        self.sink = sink
        self.name = sink.name
        self.attempts = attempts
        self.pause_s = pause_s
        self.delivered = 0
        self.failed = 0
        self.last_error: str | None = None

    def emit(self, record: Record) -> None:
        pause = self.pause_s
        for attempt in range(1, self.attempts + 1):
            try:
                self.sink.emit(record)
                self.delivered += 1
                return
            except Exception as e:  # reported below; the run goes on
                self.last_error = f"{type(e).__name__}: {e}"
                if attempt < self.attempts:
                    time.sleep(pause)
                    pause *= 2
        self.failed += 1
        log.error(
            "sink %s failed to take a record after %d attempts (%d failed so far): %s",
            self.name,
            self.attempts,
            self.failed,
            self.last_error,
        )

    def flush(self) -> None:
        self._call("flush")

    def pending(self) -> int:
        try:
            return int(self.sink.pending())
        except Exception:
            return 0

    def close(self) -> None:
        self._call("close")

    def _call(self, method: str) -> None:
        try:
            getattr(self.sink, method)()
        except Exception as e:
            self.failed += 1
            self.last_error = f"{type(e).__name__}: {e}"
            log.error("sink %s: %s failed: %s", self.name, method, self.last_error)


class CollectSink:
    """Keeps records in memory (``events``, ``statuses``), of every stream or of ``streams`` only:
    for tests and short reports (the demo's score) only."""

    name = "collect"

    def __init__(self, streams: set[str] | None = None) -> None:
        self.streams = streams
        self.events: list[Event] = []
        self.statuses: list[Status] = []

    def emit(self, record: Record) -> None:
        if self.streams is not None and record.stream not in self.streams:
            return
        if isinstance(record, Status):
            self.statuses.append(record)
        else:
            self.events.append(record)

    def flush(self) -> None:
        pass

    def pending(self) -> int:
        return 0

    def close(self) -> None:
        pass


class GuardedFrameSink:
    """A frame sink whose failures are counted and reported, never raised into the stream's worker.

    After ``max_in_a_row`` failures in a row it is switched off for the rest of the run (a disk
    that filled up), and the run's exit status tells it.
    """

    def __init__(self, sink: FrameSink, max_in_a_row: int = 50) -> None:
        self.sink = sink
        self.name = sink.name
        self.uses_magnified: bool = getattr(sink, "uses_magnified", True)
        self.max_in_a_row = max_in_a_row
        self.delivered = 0
        self.failed = 0
        self.last_error: str | None = None
        self._in_a_row = 0
        self._off = False
        self._lock = threading.Lock()

    def frame(self, view: FrameView) -> None:
        if self._off:
            return
        try:
            self.sink.frame(view)
        except Exception as e:  # counted and reported; the stream goes on
            with self._lock:
                self.failed += 1
                self._in_a_row += 1
                self.last_error = f"{type(e).__name__}: {e}"
                if self.failed <= 3:
                    log.exception("sink %s failed on frame %d of %s", self.name, view.frame.index, view.frame.stream)
                if self._in_a_row >= self.max_in_a_row and not self._off:
                    self._off = True
                    log.error(
                        "sink %s failed on %d frames in a row; switched off for this run (last: %s)",
                        self.name,
                        self._in_a_row,
                        self.last_error,
                    )
            return
        with self._lock:
            self.delivered += 1
            self._in_a_row = 0

    def pending(self) -> int:
        return 0

    def close(self) -> None:
        try:
            self.sink.close()
        except Exception as e:
            self.failed += 1
            self.last_error = f"{type(e).__name__}: {e}"
            log.error("sink %s: close failed: %s", self.name, self.last_error)
