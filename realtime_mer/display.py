"""The ``--display`` dashboard: frame with landmarks and overlay, aligned face, magnified face, sigma trace."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping, Sequence

import cv2
import numpy as np

from .errors import UserError
from .overlay import draw_faces, draw_trace
from .types import Event, FrameView

PANEL = 160  # px, side of the face panels
TRACE_H = 120  # px, height of the sigma trace
FRAME_H = 2 * PANEL  # px, height of the frame panel


def render_dashboard(
    view: FrameView, events: Sequence[Event], *, trace_s: float = 4.0, show_s: float = 2.0
) -> np.ndarray:
    """One BGR image ``(FRAME_H + TRACE_H, w + PANEL, 3)`` uint8 of one processed frame.

    Top left the frame scaled to ``FRAME_H`` px high (``w`` px wide) with the landmarks, the
    overlay's boxes, ids and labels; top right the first track's aligned and magnified face; below,
    the overlay's trace of every track over the last ``trace_s`` seconds.

    Args:
        view: the processed frame.
        events: the events known for its stream.
        trace_s: seconds of spotting signal in the trace.
        show_s: seconds an event's label stays after its offset time.

    >>> from realtime_mer.types import Frame
    >>> view = FrameView(Frame("cam", 0, 0.0, 0.0, np.zeros((240, 320, 3), np.uint8)), 30.0, (), ())
    >>> render_dashboard(view, []).shape
    (440, 587, 3)
    """
    image = view.frame.image
    scale = FRAME_H / image.shape[0]
    frame = cv2.resize(image, (round(image.shape[1] * scale), FRAME_H), interpolation=cv2.INTER_AREA)
    for points in view.points:
        for x, y in points * scale:
            cv2.circle(frame, (round(float(x)), round(float(y))), 1, (0, 255, 0), -1, cv2.LINE_AA)
    draw_faces(frame, view, events, show_s)
    faces = np.zeros((FRAME_H, PANEL, 3), np.uint8)
    first = view.tracks[0] if view.tracks else None
    if first is not None and first.face is not None:
        faces[:PANEL] = cv2.resize(first.face.image, (PANEL, PANEL))
    if first is not None and first.magnified is not None:
        mag = (np.clip(first.magnified, 0.0, 1.0) * 255.0).astype(np.uint8)
        faces[PANEL:] = cv2.resize(mag, (PANEL, PANEL))
    for y, name in ((14, "aligned"), (PANEL + 14, "magnified")):
        cv2.putText(faces, name, (4, y), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    trace = np.empty((TRACE_H, frame.shape[1] + PANEL, 3), np.uint8)
    draw_trace(trace, view, events, trace_s)
    return np.vstack([np.hstack([frame, faces]), trace])


def check_display() -> None:
    """Raise a UserError when no window can be opened (no screen on a Linux machine)."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise UserError(
            "--display needs a screen, and DISPLAY is not set: run it on a desktop session "
            "(or under Xvfb), or drop --display"
        )


def show(images: Mapping[str, np.ndarray], windows: Iterable[str]) -> bool:
    """Show each image in its window (name -> image) and handle the window events once (main thread).

    Returns False once the user pressed q/Esc or closed one of ``windows`` (names already shown).
    """
    for name, image in images.items():
        cv2.imshow(name, image)
    key = cv2.waitKey(1) & 0xFF
    if key in (ord("q"), 27):
        return False
    return all(cv2.getWindowProperty(name, cv2.WND_PROP_VISIBLE) >= 1 for name in windows)


def close_windows(windows: Iterable[str]) -> None:
    """Close the named windows."""
    for name in windows:
        cv2.destroyWindow(name)
    cv2.waitKey(1)
