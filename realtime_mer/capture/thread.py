"""The capture thread: one per source. It reads frames into a bounded queue, reconnects live
sources, gives every frame its media time, and keeps the feed's state machine.

States (``types.FEED_STATES``)::

    connecting --first frame--> running <--frames again-- stalled
        |                        |   \\--no frame for stall_s--^
        |                        v
        +--open failed--> reconnecting --first frame after reopening--> running
                                 |
    any --gave up / fatal--> failed          a file's end --> ended

Every change is logged and handed to the listeners as a :class:`~realtime_mer.types.Status`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from ..types import FeedPosition, FeedState, Frame, Status, utc_iso
from .base import BadFrame, CaptureConfig, Source, SourceError, read_keyframe

log = logging.getLogger(__name__)

FPS_WINDOW = 30  # frames over which the rate is measured
BACKWARD_JUMP_S = 1.0  # a live source's clock going back this far starts a new session
RATE_AGREE = 0.02  # a measured rate within 2 % of the announced one is the announced one

# the allowed changes of state; anything else is a bug
TRANSITIONS: dict[FeedState | None, frozenset[FeedState]] = {
    None: frozenset({"connecting"}),
    "connecting": frozenset({"running", "reconnecting", "ended", "failed"}),
    "running": frozenset({"stalled", "reconnecting", "ended", "failed"}),
    "stalled": frozenset({"running", "reconnecting", "ended", "failed"}),
    "reconnecting": frozenset({"running", "failed"}),
    "ended": frozenset(),
    "failed": frozenset(),
}


@dataclass(frozen=True)
class CaptureStats:
    """A snapshot of one capture thread.

    Attributes:
        stream: the stream id.
        frames_read: frames decoded and handed on (dropped ones included).
        dropped: frames a live source dropped from the full queue (the oldest ones).
        bad_frames: frames that did not decode and were skipped.
        reconnects: successful reconnections after the stream broke.
        fps: measured rate over the last frames, from their media times (the stream's own
            presentation times where it has them, else the capture clock); ``None`` before two frames.
        nominal_fps: the rate the source announces, if any.
        queued: frames waiting for the consumer.
        finished: the thread has stopped (end of file, stop(), or a fatal error); frames may still
            be queued.
        last_error: the last error or skipped-frame message, credentials removed.
        state: the feed's state (see the module docstring).
        session: the current connection (0 first, +1 per reconnection; -1 before the first frame).
        last_frame_age: seconds since the last frame was read, ``None`` before the first.
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
    state: FeedState | None = None
    session: int = -1
    last_frame_age: float | None = None

    @property
    def rate(self) -> float:
        """The frame rate the stages should use (Hz): the announced rate when the measured one agrees
        with it within ``RATE_AGREE`` (a stable value: a measurement that wanders by 1e-14 must not
        change how many frames a duration spans), else the measured rate (a camera that announces
        30 and delivers 15), else the announced one, else 30."""
        measured, nominal = (
            r if r is not None and np.isfinite(r) and r > 0 else None for r in (self.fps, self.nominal_fps)
        )
        if nominal is not None and (measured is None or abs(measured - nominal) <= RATE_AGREE * nominal):
            return float(nominal)
        return float(measured) if measured is not None else 30.0


class CaptureThread:
    """Reads ``source`` on its own thread into a bounded queue of :class:`~realtime_mer.types.Frame`.

    A live source drops the oldest queued frame when the consumer lags (counted); a file source
    waits for room. ``Frame.index`` counts every decoded frame, so drops leave gaps. When a live
    source breaks, it is reopened with capped exponential backoff and jitter, and its frames then
    belong to a new ``Frame.session``.

    Media time (``Frame.t``): a file's presentation times; for a live source that has presentation
    times (RTSP), those of the current session, shifted so that a session starts at the wall-clock
    time since the first opening (an outage shows as a gap) and time never goes back; for a live
    source without them (a camera), the capture clock. Timestamps from the stream, not from arrival,
    keep a live feed's frames as evenly spaced as the recording's, whatever bursts the network makes.

    Use::

        with CaptureThread(open_source("video", "a.mp4")).start() as cap:
            for frame in cap:          # ends at the end of the stream
                ...
        cap.error                      # why it ended, if it failed

    or, polling: ``frame = cap.get(timeout=0.1)``; ``None`` and ``cap.finished``: the end.
    """

    def __init__(self, source: Source, config: CaptureConfig | None = None, resume: FeedPosition | None = None) -> None:
        self.source = source
        self.config = config or CaptureConfig()
        self._frames: deque[Frame] = deque()
        self._cond = threading.Condition()  # an RLock: listeners may read stats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._finished = False
        self._error: BaseException | None = None
        self._t0: float | None = None
        self._times: deque[float] = deque(maxlen=FPS_WINDOW)
        self._read = self._dropped = self._bad = self._reconnects = 0
        self._last_error: str | None = None
        self._attempts, self._delay = 0, self.config.backoff_initial_s  # since the last stable session
        self._session_start = 0.0  # time.monotonic() of the session's first frame
        self._listeners: list[Callable[[Status], None]] = []
        self._state: FeedState | None = None
        # a live feed resumed in a new process goes on numbering frames and sessions from ``resume``
        start = resume if resume is not None and source.live else FeedPosition()
        self._index0, self._t_shift = start.index, start.t
        self._session = start.session - 1
        self._new_session = True
        self._base = 0.0  # media time of the session's first frame, s
        self._pts0: float | None = None  # the source's time at the session's first frame
        self._in_session = 0  # frames read in this session
        self._last_t: float | None = None
        self._last_captured: float | None = None
        self._waiting = False  # a file source waits for room in the queue (back-pressure)

    # ---- consumer side -------------------------------------------------------------------------

    def add_listener(self, listener: Callable[[Status], None]) -> CaptureThread:
        """Call ``listener(status)`` at every change of state (from the capture thread, or from
        :meth:`start` and :meth:`check_stall`); it must be quick and must not raise."""
        self._listeners.append(listener)
        return self

    def start(self, open_now: bool = True) -> CaptureThread:
        """Start reading on the thread; returns ``self``.

        With ``open_now`` the source opens here, so a first open that fails raises SourceError to
        the caller (state ``failed``). Otherwise it opens on the thread, where a live source that
        does not open is retried like a broken one (``reconnecting``), as a monitor wants for a
        camera that is not up yet; a file that does not open fails the feed.
        """
        if self._thread is not None:
            raise RuntimeError(f"capture of {self.source.name} was already started")
        self._transition("connecting", "opening")
        if open_now:
            try:
                self._open()
            except BaseException as e:
                self._error = e
                self._transition("failed", str(e))
                with self._cond:
                    self._finished = True
                raise
        self._thread = threading.Thread(
            target=self._run, args=(not open_now,), name=f"capture {self.source.name}", daemon=True
        )
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

    @property
    def state(self) -> FeedState | None:
        """The feed's state; ``None`` before :meth:`start`."""
        with self._cond:
            return self._state

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
                state=self._state,
                session=self._session,
                last_frame_age=None if self._last_captured is None else time.monotonic() - self._last_captured,
            )

    def position(self) -> FeedPosition:
        """Where the numbering would go on after this point: the next frame number, the next
        session, and a media time after the last frame's (for :class:`CaptureThread` ``resume``)."""
        with self._cond:
            t = 0.0 if self._last_t is None else self._last_t + 1.0 / self._rate()
            return FeedPosition(self._index0 + self._read, max(self._session, 0) + 1, max(t, self._t_shift))

    def check_stall(self, now: float | None = None) -> bool:
        """Mark a running feed ``stalled`` when it has read no frame for ``stall_s``; True if it
        is stalled now. Back-pressure is no stall: a live source keeps reading (and dropping) when
        its consumer lags, and a file source waiting for room in its queue is not checked."""
        now = time.monotonic() if now is None else now
        with self._cond:
            if self._state == "stalled":
                return True
            if self._state != "running" or self._waiting or self._last_captured is None:
                return False
            age = now - self._last_captured
            if age < self.config.stall_s:
                return False
            self._transition("stalled", f"no frame for {age:.1f} s")
            return True

    def fail(self, error: BaseException) -> None:
        """Give the feed up from outside (its consumer cannot process it): state ``failed``, stop reading."""
        with self._cond:
            if self._state in ("ended", "failed"):
                return
            self._error = error
            self._note(str(error))
            self._transition("failed", str(error))
        self.stop(timeout=0)

    def stop(self, timeout: float | None = None) -> None:
        """Stop reading and join the thread (a blocked network read ends within ``read_timeout_s``).
        The state stays what it was: a feed stopped while running was running."""
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

    def _open(self) -> None:
        self.source.open()
        if self._t0 is None:
            self._t0 = time.monotonic()

    def _run(self, open_first: bool) -> None:
        src = self.source
        try:
            if open_first:
                try:
                    self._open()
                except SourceError as e:
                    if not src.live:
                        raise
                    self._reconnect(str(e), close=False)
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
                        self._transition("ended", "end of stream")
                        break
                    self._reconnect(f"{src.name}: the stream ended")
                    continue
                image, t = item
                captured = time.monotonic()
                self._push(image, t, captured, read_keyframe(src))
                if self._attempts and captured - self._session_start >= self.config.backoff_reset_s:
                    self._attempts, self._delay = 0, self.config.backoff_initial_s  # a stable session
        except Exception as e:  # recorded for the consumer, who sees the end of the stream
            self._error = e
            self._note(str(e))
            if isinstance(e, SourceError):
                log.error("capture of %s stopped: %s", src.name, e)
            else:
                log.exception("capture of %s stopped", src.name)
            self._transition("failed", str(e))
        finally:
            try:
                src.close()
            finally:
                with self._cond:
                    self._finished = True
                    self._cond.notify_all()

    def _media_time(self, t_src: float | None, captured: float) -> tuple[float, bool]:
        """``(Frame.t, starts a session)`` of a frame read at ``captured`` with source time ``t_src``."""
        assert self._t0 is not None
        if not self.source.live:
            self._session = 0
            return (captured - self._t0 if t_src is None else t_src), self._read == 0
        dt = 1.0 / self._rate()
        if not self._new_session and t_src is not None and self._pts0 is not None and self._last_t is not None:
            t = self._base + (t_src - self._pts0)
            if t <= self._last_t - BACKWARD_JUMP_S:  # the source's clock restarted (a looping server)
                log.warning(
                    "%s: the stream's clock went back by %.1f s; restarting its tracks",
                    self.source.name,
                    self._last_t - t,
                )
                self._new_session = True
        start = self._new_session
        if start:
            self._new_session = False
            self._session += 1
            base = captured - self._t0 + self._t_shift
            if self._last_t is not None:
                base = max(base, self._last_t + dt)
            self._base, self._pts0, self._in_session = base, None, 0
            self._session_start = captured
        if t_src is None:  # a camera, or a frame without a time in a timed stream
            t = (captured - self._t0) if self._pts0 is None else self._last_t + dt  # type: ignore[operator]
            if start:
                t = self._base
        else:
            if self._pts0 is None:  # the session's first timed frame (RTSP's first frame has none)
                self._pts0 = t_src - self._in_session * dt
            t = self._base + (t_src - self._pts0)
        if self._last_t is not None and t <= self._last_t:
            t = self._last_t + 1e-3  # media time never goes back
        self._in_session += 1
        return t, start

    def _rate(self) -> float:
        """The nominal rate, else the measured one, else 30 Hz (spacing frames without a time)."""
        for r in (self.source.nominal_fps, self._measured()):
            if r is not None and np.isfinite(r) and r > 0:
                return float(r)
        return 30.0

    def _measured(self) -> float | None:
        times = self._times
        span = times[-1] - times[0] if len(times) > 1 else 0.0
        return (len(times) - 1) / span if span > 0 else None

    def _push(self, image: np.ndarray, t_src: float | None, captured: float, key: bool) -> None:
        """Queue one frame: a live source drops the oldest when full, a file source waits."""
        with self._cond:
            t, start = self._media_time(t_src, captured)
            if start and self._session > 0:
                self._times.clear()  # the outage is no frame interval
            frame = Frame(self.source.name, self._index0 + self._read, t, captured, image, max(self._session, 0), key)
            self._read += 1
            self._last_t, self._last_captured = t, captured
            self._times.append(t)
            if self._state != "running":
                reason = {"connecting": "first frame", "stalled": "frames again"}.get(
                    self._state or "", f"frames again after {self._reconnects} reconnection(s)"
                )
                self._transition("running", reason, index=frame.index)
            limit = min(self.config.queue_size, max(1, int(self.config.queue_mb * 1e6 // max(image.nbytes, 1))))
            if self.source.live:
                if len(self._frames) >= limit:
                    self._frames.popleft()
                    self._dropped += 1
            else:
                self._waiting = True
                while len(self._frames) >= limit and not self._stop.is_set():
                    self._cond.wait()
                self._waiting = False
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

    def _transition(self, state: FeedState, reason: str, index: int | None = None) -> None:
        """Enter ``state`` (a no-op if already there): log it and tell the listeners."""
        with self._cond:
            previous = self._state
            if state == previous or previous in ("ended", "failed"):  # final states stay
                return
            if state not in TRANSITIONS[previous]:
                raise RuntimeError(f"{self.source.name}: no transition from {previous} to {state}")
            self._state = state
            status = Status(
                stream=self.source.name,
                state=state,
                previous=previous,
                reason=reason,
                utc=utc_iso(time.time()),
                session=max(self._session, 0),
                index=self._index0 + self._read - 1 if index is None else index,
                frames=self._read,
                dropped=self._dropped,
                bad_frames=self._bad,
                reconnects=self._reconnects,
            )
            level = (
                logging.WARNING
                if state in ("stalled", "reconnecting")
                else (logging.ERROR if state == "failed" else logging.INFO)
            )
            log.log(level, "%s: %s -> %s (%s)", self.source.name, previous or "-", state, reason)
            for listener in self._listeners:
                try:
                    listener(status)
                except Exception:  # a listener must not break capture
                    log.exception("status listener of %s failed", self.source.name)

    def _reconnect(self, cause: str, close: bool = True) -> None:
        """Reopen the source after waiting the backoff; SourceError when the attempts run out.

        Attempts and backoff count from the last session that ran for ``backoff_reset_s``, so a
        server that accepts and at once ends the stream backs off too. The next frame starts a new
        session.
        """
        cfg, src = self.config, self.source
        if close:
            src.close()
        self._note(cause)
        with self._cond:
            self._new_session = True
            self._transition("reconnecting", cause)
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
                self._open()
            except SourceError as e:
                cause = str(e)
                self._note(cause)
                continue
            with self._cond:
                self._reconnects += 1
            log.info("%s: reopened (attempt %d)", src.name, self._attempts)
            return
