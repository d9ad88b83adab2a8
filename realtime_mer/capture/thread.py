"""The capture thread: one per source; reads frames into a bounded queue, reconnects live sources."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..types import Frame
from .base import BadFrame, CaptureConfig, Source, SourceError

log = logging.getLogger(__name__)

FPS_WINDOW = 30  # frames over which the rate is measured


@dataclass(frozen=True)
class CaptureStats:
    """A snapshot of one capture thread.

    Attributes:
        stream: the stream id.
        frames_read: frames decoded and handed on (dropped ones included).
        dropped: frames a live source dropped from the full queue (the oldest ones).
        bad_frames: frames that did not decode and were skipped.
        reconnects: successful reconnections after the stream broke.
        fps: measured rate over the last frames: media times for files (the stream's own rate),
            capture times for live sources (the real rate); ``None`` before two frames.
        nominal_fps: the rate the source announces, if any.
        queued: frames waiting for the consumer.
        finished: the thread has stopped (end of file, stop(), or a fatal error); frames may still
            be queued.
        last_error: the last error or skipped-frame message, credentials removed.
    """

    stream: str
    frames_read: int
    dropped: int
    bad_frames: int
    reconnects: int
    fps: float | None
    nominal_fps: float | None
    queued: int
    finished: bool
    last_error: str | None


class CaptureThread:
    """Reads ``source`` on its own thread into a bounded queue of :class:`~realtime_mer.types.Frame`.

    A live source drops the oldest queued frame when the consumer lags (counted); a file source
    waits for room. ``Frame.index`` counts every decoded frame, so drops leave gaps. When a live
    source breaks after it was once up, it is reopened with capped exponential backoff and jitter.

    Use::

        with CaptureThread(open_source("video", "a.mp4")).start() as cap:
            for frame in cap:          # ends at the end of the stream
                ...
        cap.error                      # why it ended, if it failed

    or, polling: ``frame = cap.get(timeout=0.1)``; ``None`` and ``cap.finished``: the end.
    """

    def __init__(self, source: Source, config: CaptureConfig | None = None) -> None:
        self.source = source
        self.config = config or CaptureConfig()
        self._frames: deque[Frame] = deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._finished = False
        self._error: BaseException | None = None
        self._t0 = 0.0
        self._times: deque[float] = deque(maxlen=FPS_WINDOW)
        self._read = self._dropped = self._bad = self._reconnects = 0
        self._last_error: str | None = None
        self._attempts, self._delay = 0, self.config.backoff_initial_s  # reconnects since the last frame

    # ---- consumer side -------------------------------------------------------------------------

    def start(self) -> CaptureThread:
        """Open the source here, so a first open that fails raises SourceError to the caller; then
        start reading on the thread. Returns ``self``."""
        if self._thread is not None:
            raise RuntimeError(f"capture of {self.source.name} was already started")
        self.source.open()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"capture {self.source.name}", daemon=True)
        self._thread.start()
        return self

    def get(self, timeout: float | None = None) -> Frame | None:
        """The oldest queued frame, waiting up to ``timeout`` s (``None``: until one comes or the
        stream ends). ``None`` when none came in time or the stream has ended: :attr:`finished`
        tells which."""
        with self._cond:
            self._cond.wait_for(self._ready, timeout)
            if not self._frames:
                return None
            frame = self._frames.popleft()
            self._cond.notify_all()
            return frame

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.get()) is not None:
            yield frame

    @property
    def stream(self) -> str:
        """The stream id of every frame (credentials removed)."""
        return self.source.name

    @property
    def finished(self) -> bool:
        """The stream has ended and every frame was taken: :meth:`get` returns only ``None`` now."""
        with self._cond:
            return self._finished and not self._frames

    @property
    def error(self) -> BaseException | None:
        """Why the thread stopped early (e.g. SourceError after the reconnect attempts ran out)."""
        return self._error

    def stats(self) -> CaptureStats:
        """A consistent snapshot of the counters and the measured rate."""
        with self._cond:
            times = self._times
            span = times[-1] - times[0] if len(times) > 1 else 0.0
            return CaptureStats(
                stream=self.source.name,
                frames_read=self._read,
                dropped=self._dropped,
                bad_frames=self._bad,
                reconnects=self._reconnects,
                fps=(len(times) - 1) / span if span > 0 else None,
                nominal_fps=self.source.nominal_fps,
                queued=len(self._frames),
                finished=self._finished,
                last_error=self._last_error,
            )

    def stop(self, timeout: float | None = None) -> None:
        """Stop reading and join the thread (a blocked network read ends within ``read_timeout_s``)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> CaptureThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- capture thread ------------------------------------------------------------------------

    def _ready(self) -> bool:
        return bool(self._frames) or self._finished

    def _run(self) -> None:
        src = self.source
        try:
            while not self._stop.is_set():
                try:
                    item = src.read()
                except BadFrame as e:
                    self._note(str(e), bad=True)
                    continue
                except SourceError as e:
                    if not src.live:
                        raise
                    self._reconnect(str(e))
                    continue
                if item is None:
                    if not src.live:
                        break
                    self._reconnect(f"{src.name}: the stream ended")
                    continue
                image, t = item
                captured = time.monotonic()
                self._attempts, self._delay = 0, self.config.backoff_initial_s
                self._push(image, captured - self._t0 if t is None else t, captured)
        except Exception as e:  # recorded for the consumer, who sees the end of the stream
            self._error = e
            self._note(str(e))
            if isinstance(e, SourceError):
                log.error("capture of %s stopped: %s", src.name, e)
            else:
                log.exception("capture of %s stopped", src.name)
        finally:
            try:
                src.close()
            finally:
                with self._cond:
                    self._finished = True
                    self._cond.notify_all()

    def _push(self, image: np.ndarray, t: float, captured: float) -> None:
        """Queue one frame: a live source drops the oldest when full, a file source waits."""
        with self._cond:
            frame = Frame(self.source.name, self._read, t, captured, image)
            self._read += 1
            self._times.append(captured if self.source.live else t)
            if self.source.live:
                if len(self._frames) >= self.config.queue_size:
                    self._frames.popleft()
                    self._dropped += 1
            else:
                while len(self._frames) >= self.config.queue_size and not self._stop.is_set():
                    self._cond.wait()
                if self._stop.is_set():
                    return
            self._frames.append(frame)
            self._cond.notify_all()

    def _note(self, message: str, bad: bool = False) -> None:
        """Remember ``message`` as the last error; ``bad`` counts one skipped frame."""
        with self._cond:
            self._last_error = message
            if bad:
                self._bad += 1

    def _reconnect(self, cause: str) -> None:
        """Reopen the source after waiting the backoff; SourceError when the attempts run out.

        Attempts and backoff count from the last frame that arrived, so a server that accepts and
        at once ends the stream backs off too.
        """
        cfg, src = self.config, self.source
        src.close()
        self._note(cause)
        with self._cond:
            self._times.clear()  # the outage is no frame interval
        while not self._stop.is_set():
            if cfg.max_reconnect_attempts is not None and self._attempts >= cfg.max_reconnect_attempts:
                raise SourceError(
                    f"{src.name}: gave up after {self._attempts} reconnect attempt(s); last error: {cause}"
                )
            wait = self._delay * (1.0 - cfg.backoff_jitter * random.random())
            self._delay = min(2.0 * self._delay, cfg.backoff_max_s)
            log.warning("%s; reconnecting in %.2f s (attempt %d)", cause, wait, self._attempts + 1)
            if self._stop.wait(wait):
                return
            self._attempts += 1
            try:
                src.open()
            except SourceError as e:
                cause = str(e)
                self._note(cause)
                continue
            with self._cond:
                self._reconnects += 1
            log.info("%s: reopened (attempt %d)", src.name, self._attempts)
            return
