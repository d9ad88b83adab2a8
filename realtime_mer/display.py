"""The ``--display`` dashboard: frame with landmarks, aligned face, magnified face, sigma trace."""

from __future__ import annotations

import os
import sys
from typing import Any

import cv2
import numpy as np

from .errors import UserError
from .types import Frame

PANEL = 160  # px, side of the face panels
TRACE_H = 120  # px, height of the sigma trace
FRAME_H = 2 * PANEL  # px, height of the frame panel


def render_dashboard(frame: Frame, found: list, tracks: dict[int, Any]) -> np.ndarray:
    """One BGR image ``(FRAME_H + TRACE_H, W, 3)`` uint8 showing the first track's state.

    Args:
        frame: the current frame.
        found: ``(FaceObs, AlignedFace)`` pairs of this frame.
        tracks: track id -> per-track state with ``last_face``, ``magnified`` and ``spotter``.
    """
    scale = FRAME_H / frame.image.shape[0]
    view = cv2.resize(frame.image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    for obs, _face in found:
        for x, y in obs.points68 * scale:
            cv2.circle(view, (int(round(x)), int(round(y))), 1, (0, 255, 0), -1, cv2.LINE_AA)
        x0, y0 = int(obs.bbox[0] * scale), int(obs.bbox[1] * scale)
        cv2.putText(view, f"track {obs.track}", (x0, max(12, y0 - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (0, 255, 0), 1, cv2.LINE_AA)
    faces = np.zeros((FRAME_H, PANEL, 3), np.uint8)
    trace = np.zeros((TRACE_H, view.shape[1] + PANEL, 3), np.uint8)
    track = tracks.get(found[0][1].track) if found else None
    if track is not None and track.last_face is not None:
        faces[:PANEL] = cv2.resize(track.last_face.image, (PANEL, PANEL))
        if track.magnified is not None:
            mag = np.clip(track.magnified, 0.0, 1.0) * 255.0
            mag = mag.astype(np.uint8) if mag.ndim == 3 else cv2.cvtColor(mag.astype(np.uint8), cv2.COLOR_GRAY2BGR)
            faces[PANEL:] = cv2.resize(mag, (PANEL, PANEL))
        _draw_trace(trace, track.spotter.history(256).sigma)
    cv2.putText(faces, "aligned", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    cv2.putText(faces, "magnified", (4, PANEL + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    cv2.putText(trace, f"{frame.stream}  frame {frame.index}  t {frame.t:.2f} s", (4, 14),
                cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return np.vstack([np.hstack([view, faces]), trace])


def _draw_trace(canvas: np.ndarray, values: np.ndarray) -> None:
    """Plot the recent sigma values (1-D) across ``canvas`` in place."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size < 2:
        return
    h, w = canvas.shape[:2]
    top = float(values.max()) or 1.0
    xs = np.linspace(0, w - 1, values.size)
    ys = (h - 4) - (values / top) * (h - 24)
    pts = np.stack([xs, ys], axis=1).round().astype(np.int32)
    cv2.polylines(canvas, [pts], False, (0, 200, 255), 1, cv2.LINE_AA)
    cv2.putText(canvas, f"sigma (max {top:.4f})", (4, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 200, 255), 1,
                cv2.LINE_AA)


def check_display() -> None:
    """Raise a UserError when no window can be opened (no screen on a Linux machine)."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise UserError("--display needs a screen, and DISPLAY is not set: run it on a desktop session "
                        "(or under Xvfb), or drop --display")


def show(name: str, image: np.ndarray) -> bool:
    """Show ``image`` in window ``name``; False once the user pressed q/Esc or closed the window."""
    cv2.imshow(name, image)
    key = cv2.waitKey(1) & 0xFF
    if key in (ord("q"), 27):
        return False
    return cv2.getWindowProperty(name, cv2.WND_PROP_VISIBLE) >= 1
