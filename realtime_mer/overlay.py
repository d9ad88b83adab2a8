"""The overlay: face boxes, track ids, event labels with class bars, and the spotting trace.

Drawing on ``(H, W, 3)`` uint8 BGR images with OpenCV, shared by the overlay video sink
(:mod:`realtime_mer.sinks.video`) and the dashboard (:mod:`realtime_mer.display`). The ``draw_*``
functions draw in place on the canvas they are given; :func:`compose` returns a new image. Times
are media seconds of the stream (``Frame.t``, ``Interval.t_onset``...).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence

import cv2
import numpy as np

from .types import Event, FrameView

STRIP_PX = 96  # px, default height of the trace strip under the frame
FONT = cv2.FONT_HERSHEY_SIMPLEX
# BGR, one per track id (cycled): orange, azure, green, magenta, cyan, pink; distinct from the
# green landmarks, the white text and the red of a failed recognition
PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 200, 255), (255, 160, 0), (0, 220, 0), (255, 0, 255), (255, 255, 0), (200, 130, 255),
)  # fmt: skip
TEXT = (255, 255, 255)
FAILED = (80, 80, 255)
STRIP_BG = (24, 24, 24)
THRESHOLD = (170, 170, 170)


def track_color(track: int) -> tuple[int, int, int]:
    """The BGR colour of track ``track``: its box, its label bars and its trace.

    >>> track_color(0) == track_color(len(PALETTE))
    True
    """
    return PALETTE[track % len(PALETTE)]


def event_caption(event: Event) -> str:
    """What an event's label line says: kind, then class and probability, or why there is none.

    >>> from realtime_mer.types import Interval
    >>> iv = Interval(3, 5, 8, 0.1, 0.17, 0.27, "micro", 6.0)
    >>> event_caption(Event("cam", 0, iv, label="positive", probs={"positive": 0.82, "negative": 0.18}))
    'micro  positive 0.82'
    >>> event_caption(Event("cam", 0, iv))
    'micro  unlabelled'
    >>> event_caption(Event("cam", 0, iv, error="timeout"))
    'micro  recognition failed'
    """
    kind = event.interval.kind
    if event.error is not None:
        return f"{kind}  recognition failed"
    if event.label is None:
        return f"{kind}  unlabelled"
    p = event.probs.get(event.label)
    return f"{kind}  {event.label}" + ("" if p is None else f" {p:.2f}")


def shown_events(events: Sequence[Event], t: float, show_s: float) -> list[Event]:
    """The events whose label is on screen at media time ``t`` (s): from onset to ``show_s`` after offset."""
    return [e for e in events if e.interval.t_onset <= t <= e.interval.t_offset + show_s]


def font_scale(image: np.ndarray) -> float:
    """OpenCV font scale for labels on ``image``: grows with its size, 0.4 (small frames) to 1.0 (720p+)."""
    return float(np.clip(min(image.shape[:2]) / 640.0, 0.4, 1.0))


def draw_faces(image: np.ndarray, view: FrameView, events: Sequence[Event], show_s: float) -> None:
    """Draw each track's box and id, and beside it the label of its newest shown event.

    Args:
        image: ``(h, w, 3)`` uint8 BGR, the frame, possibly resized (the boxes are scaled to it),
            drawn on in place.
        view: the processed frame; boxes are in its frame pixels.
        events: events of this stream (any order); those shown at ``view.frame.t`` are drawn.
        show_s: seconds an event stays shown after its offset time.
    """
    fs = font_scale(image)
    shown = shown_events(events, view.frame.t, show_s)
    h, w = view.frame.image.shape[:2]
    scale = (image.shape[1] / w, image.shape[0] / h)
    for track in view.tracks:
        box = _box(image, track.bbox, scale)
        color = track_color(track.track)
        cv2.rectangle(image, box[:2], box[2:], color, max(1, round(2 * fs)))
        tag = f"track {track.track}" + ("  moving" if track.active else "")
        _tag(image, tag, (box[0], max(box[1] - 6, round(16 * fs))), fs, color)
        mine = [e for e in shown if e.track == track.track]
        if mine:
            _draw_label(image, box, max(mine, key=lambda e: e.interval.t_offset), color, fs)


def _box(
    image: np.ndarray, bbox: tuple[float, float, float, float], scale: tuple[float, float]
) -> tuple[int, int, int, int]:
    """``bbox`` (frame pixels) as integer corners in ``image`` pixels (``scale``: x and y factors), inside it."""
    h, w = image.shape[:2]
    x0, x1 = (round(v * scale[0]) for v in bbox[::2])
    y0, y1 = (round(v * scale[1]) for v in bbox[1::2])
    return min(max(x0, 0), w - 1), min(max(y0, 0), h - 1), min(max(x1, 0), w - 1), min(max(y1, 0), h - 1)


def _put(image: np.ndarray, text: str, org: tuple[int, int], fs: float, color: tuple[int, int, int]) -> None:
    """``text`` in ``color``, baseline-left at ``org``."""
    cv2.putText(image, text, org, FONT, fs, color, 1, cv2.LINE_AA)


def _width(text: str, fs: float) -> int:
    """Width of ``text`` in pixels at font scale ``fs``."""
    return cv2.getTextSize(text, FONT, fs, 1)[0][0]


def _darken(image: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> None:
    """Darken the rectangle ``[x0, x1) x [y0, y1)`` (clipped to the image) to a quarter: a backing for text."""
    h, w = image.shape[:2]
    roi = image[max(y0, 0) : min(y1, h), max(x0, 0) : min(x1, w)]
    roi //= 4


def _tag(image: np.ndarray, text: str, org: tuple[int, int], fs: float, color: tuple[int, int, int]) -> None:
    """``text`` on a dark backing (readable on any background), baseline-left at ``org``."""
    (tw, th), below = cv2.getTextSize(text, FONT, fs, 1)
    _darken(image, org[0] - 2, org[1] - th - 2, org[0] + tw + 2, org[1] + below)
    _put(image, text, org, fs, color)


def _draw_label(
    image: np.ndarray, box: tuple[int, int, int, int], event: Event, color: tuple[int, int, int], fs: float
) -> None:
    """The event's caption and one bar per class (length = probability) on a dark panel beside ``box``.

    The panel goes right of the box, or left of it where the frame has no room on the right.
    """
    h, w = image.shape[:2]
    small, pad = 0.8 * fs, max(3, round(6 * fs))
    (_, th), descent = cv2.getTextSize("Ag", FONT, fs, 1)
    line = pad + th + descent
    caption = event_caption(event)
    name_w = max((_width(name, small) for name in event.probs), default=0) + pad
    bar_w, value_w = round(80 * fs), _width("0.00", small)
    pw = 2 * pad + max(_width(caption, fs), name_w + bar_w + pad + value_w if event.probs else 0)
    ph = line * (1 + len(event.probs)) + pad
    x = box[2] + 6 if box[2] + 6 + pw <= w else box[0] - 6 - pw
    x, y = min(max(x, 0), max(w - pw, 0)), min(max(box[1], 0), max(h - ph, 0))
    _darken(image, x, y, x + pw, y + ph)
    _put(image, caption, (x + pad, y + pad + th), fs, FAILED if event.error is not None else TEXT)
    for i, (name, p) in enumerate(event.probs.items()):
        top = y + line * (i + 1)
        baseline, bx = top + pad + th, x + pad + name_w
        _put(image, name, (x + pad, baseline), small, TEXT)
        cv2.rectangle(image, (bx, top + pad), (bx + bar_w, baseline), (90, 90, 90), 1)
        filled = round(bar_w * float(np.clip(p, 0.0, 1.0)))
        if filled:
            cv2.rectangle(
                image, (bx, top + pad), (bx + filled, baseline), color if name == event.label else (160, 160, 160), -1
            )
        _put(image, f"{p:.2f}", (bx + bar_w + pad, baseline), small, TEXT)


def draw_trace(canvas: np.ndarray, view: FrameView, events: Sequence[Event], trace_s: float) -> None:
    """Plot the spotting signal of the last ``trace_s`` seconds over all of ``canvas``, in place.

    One polyline per track of ``sigma`` (noise units) against ``sigma_t``, newest at the right edge
    (``view.frame.t``); a dashed line at each track's threshold, the y scale from 0 to at least twice
    the threshold; the onset..offset spans of ``events`` shaded in their track's colour; the stream,
    frame number and time written at the top left.

    Args:
        canvas: ``(h, w, 3)`` uint8 BGR, typically a strip ``STRIP_PX`` high under the frame.
        view: the processed frame and its tracks.
        events: events of this stream; those overlapping the window are shaded.
        trace_s: seconds of signal across the width.
    """
    h, w = canvas.shape[:2]
    canvas[:] = STRIP_BG
    t1 = view.frame.t
    t0 = t1 - trace_s
    top, bottom = 18, h - 4

    def xs(t: np.ndarray) -> np.ndarray:
        return (np.asarray(t, np.float64) - t0) / trace_s * (w - 1)

    for e in events:
        iv = e.interval
        if iv.t_offset >= t0 and iv.t_onset <= t1:
            a, b = (round(float(v)) for v in np.clip(xs(np.array([iv.t_onset, iv.t_offset])), 0, w - 1))
            span = canvas[top : bottom + 1, a : b + 1]
            span[:] = (0.65 * span + 0.35 * np.array(track_color(e.track))).astype(np.uint8)
    window = [(tr, (tr.sigma_t >= t0) & np.isfinite(tr.sigma)) for tr in view.tracks]
    seen = [float(tr.sigma[m].max()) for tr, m in window if m.any()]
    thresholds = sorted({float(tr.threshold) for tr in view.tracks})
    ymax = max([2.0 * th for th in thresholds] + seen + [1e-6])

    def ys(s: np.ndarray | float) -> np.ndarray:
        return bottom - np.clip(np.asarray(s, np.float64), 0.0, ymax) / ymax * (bottom - top)

    for th in thresholds:
        y = round(float(ys(np.float64(th))))
        for x in range(0, w, 12):
            cv2.line(canvas, (x, y), (min(x + 6, w - 1), y), THRESHOLD, 1)
    for tr, m in window:
        pts = np.stack([xs(tr.sigma_t), ys(np.where(m, tr.sigma, 0.0))], axis=1).round().astype(np.int32)
        runs = np.split(np.arange(m.size), np.flatnonzero(np.diff(m.astype(np.int8))) + 1)
        for run in runs:
            if run.size and m[run[0]]:
                cv2.polylines(canvas, [pts[run]], False, track_color(tr.track), 1, cv2.LINE_AA)
    f = view.frame
    label = f"{f.stream}  frame {f.index}  t {f.t:.2f} s   sigma 0..{ymax:.1f}, dashed: threshold, last {trace_s:g} s"
    cv2.putText(canvas, label, (4, 13), FONT, 0.38, TEXT, 1, cv2.LINE_AA)


def compose(
    view: FrameView,
    events: Sequence[Event],
    *,
    trace_s: float = 4.0,
    show_s: float = 2.0,
    strip_px: int = STRIP_PX,
    size: tuple[int, int] | None = None,
) -> np.ndarray:
    """The overlay frame: boxes, ids and labels on a copy of the frame, the trace strip under it.

    Args:
        view: the processed frame (``view.frame.image`` is ``(H, W, 3)`` uint8 BGR).
        events: the events known for this stream (any order, others are ignored by time).
        trace_s: seconds of spotting signal in the strip.
        show_s: seconds an event's label stays after its offset time.
        strip_px: height of the strip, px.
        size: ``(W, H)`` to resize the frame to first (the overlay is drawn at that size); default
            the frame's own.

    Returns:
        ``(H + strip_px, W, 3)`` uint8 BGR, a new image.

    >>> from realtime_mer.types import Frame
    >>> view = FrameView(Frame("cam", 0, 0.0, 0.0, np.zeros((120, 160, 3), np.uint8)), 30.0, (), ())
    >>> compose(view, []).shape
    (216, 160, 3)
    """
    image = view.frame.image
    w, h = size or (image.shape[1], image.shape[0])
    out = np.empty((h + strip_px, w, 3), np.uint8)
    if (w, h) == (image.shape[1], image.shape[0]):
        out[:h] = image
    else:
        cv2.resize(image, (w, h), dst=out[:h], interpolation=cv2.INTER_AREA)
    draw_faces(out[:h], view, events, show_s)
    draw_trace(out[h:], view, events, trace_s)
    return out


class RecentEvents:
    """The events each stream's overlay can still draw: thread-safe, and bounded however long the run.

    An event is kept while its offset time is at most ``keep_s`` seconds before the newest frame
    time seen of its stream, and at most ``limit`` per stream (the newest arrivals).

    Args:
        keep_s: seconds of media time, the longer of the trace window and the label's showing time.
        limit: most events kept per stream.

    >>> from realtime_mer.types import Interval
    >>> book = RecentEvents(keep_s=4.0)
    >>> book.add(Event("cam", 0, Interval(3, 5, 8, 1.0, 1.2, 1.5, "micro", 6.0)))
    >>> len(book.at("cam", 5.0)), len(book.at("cam", 6.0))
    (1, 0)
    """

    def __init__(self, keep_s: float, limit: int = 64) -> None:
        self.keep_s = keep_s
        self.limit = limit
        self._events: dict[str, deque[Event]] = {}
        self._now: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, event: Event) -> None:
        """Keep ``event`` for its stream, unless already too old to draw."""
        with self._lock:
            now = self._now.get(event.stream)
            if now is None or event.interval.t_offset >= now - self.keep_s:
                self._events.setdefault(event.stream, deque(maxlen=self.limit)).append(event)

    def at(self, stream: str, t: float) -> list[Event]:
        """The events of ``stream`` still drawable at media time ``t`` (s), in arrival order; forgets older ones."""
        with self._lock:
            self._now[stream] = t
            kept = [e for e in self._events.get(stream, ()) if e.interval.t_offset >= t - self.keep_s]
            self._events[stream] = deque(kept, maxlen=self.limit)
            return kept

    def __len__(self) -> int:
        with self._lock:
            return sum(len(q) for q in self._events.values())
