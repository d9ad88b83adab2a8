"""Synthetic test faces: a rendered face crop, and sequences with planted local movements.

The face is drawn with OpenCV (skin ellipse, brows, eyes, nose, lips) with skin texture, at a
working size such as 128x128, BGR. A movement is a smooth displacement field around the two
mouth corners (Gaussian, radius 6 % of the crop; corners pulled up and out, like AU12), applied
with ``cv2.remap``, with an onset -> apex -> (hold) -> offset amplitude profile. Every frame gets
its own sensor noise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from realtime_mer.types import EventKind, Interval


@dataclass(frozen=True)
class Face:
    """A rendered face.

    Attributes:
        image: ``(S, S, 3)`` float32 BGR in grey levels 0..255 (no sensor noise).
        mouth_corners: ``(2, 2)`` float32 pixels ``(x, y)`` of the left and right mouth corners.
    """

    image: np.ndarray
    mouth_corners: np.ndarray


@dataclass(frozen=True)
class Movement:
    """A planted mouth-corner movement: amplitude profile in seconds, amplitude in pixels.

    The amplitude rises smoothly (half cosine) over ``rise_s``, holds its peak for ``hold_s``
    and falls smoothly over ``fall_s``; it starts at ``start_s``.
    """

    start_s: float
    rise_s: float = 0.08
    hold_s: float = 0.0
    fall_s: float = 0.12
    amplitude_px: float = 1.5

    def __post_init__(self) -> None:
        if self.amplitude_px <= 0 or min(self.rise_s, self.fall_s) <= 0 or self.hold_s < 0:
            raise ValueError(f"a movement needs amplitude_px, rise_s, fall_s > 0 and hold_s >= 0, got {self}")

    def amplitude(self, t: np.ndarray) -> np.ndarray:
        """Displacement in pixels at times ``t`` (seconds), 0 outside the movement."""
        t = np.asarray(t, dtype=np.float64)
        u = t - self.start_s
        a = np.zeros_like(t)
        rise = (u > 0) & (u < self.rise_s)
        a[rise] = 0.5 - 0.5 * np.cos(np.pi * u[rise] / self.rise_s)
        a[(u >= self.rise_s) & (u <= self.rise_s + self.hold_s)] = 1.0
        v = u - self.rise_s - self.hold_s
        fall = (v > 0) & (v < self.fall_s)
        a[fall] = 0.5 + 0.5 * np.cos(np.pi * v[fall] / self.fall_s)
        return a * self.amplitude_px


@dataclass(frozen=True)
class Sequence:
    """Frames of one synthetic track and the truth of its planted movement (if any).

    Attributes:
        frames: ``(N, S, S, 3)`` uint8 BGR.
        times: ``(N,)`` float64 seconds, ``index / fps``.
        fps: frame rate.
        amplitude: ``(N,)`` float64 planted displacement per frame, pixels (movements add up).
        spans: ``(onset, apex, offset)`` inclusive frame numbers of each planted movement: the
            frames where its displacement is > 0; apex = the first frame of its peak.
    """

    frames: np.ndarray
    times: np.ndarray
    fps: float
    amplitude: np.ndarray
    spans: tuple[tuple[int, int, int], ...]

    def truth(self, kind: EventKind = "micro", which: int = 0) -> Interval:
        """Planted movement number ``which`` as an :class:`Interval` (score 1)."""
        if not self.spans:
            raise ValueError("this sequence has no planted movement")
        on, apex, off = self.spans[which]
        return Interval(
            on, apex, off, float(self.times[on]), float(self.times[apex]), float(self.times[off]), kind, 1.0
        )


def render_face(size: int = 128, seed: int = 0) -> Face:
    """Draw a frontal face filling an aligned crop of ``size`` x ``size`` pixels."""
    if size < 32:
        raise ValueError(f"face size must be at least 32 pixels, got {size}")
    rng = np.random.default_rng(seed)
    s = size / 128.0
    img = np.empty((size, size, 3), np.float32)
    img[:] = (60, 70, 80)  # background
    skin = (120, 150, 200)
    c = (size // 2, int(size * 0.52))

    def pt(x: float, y: float) -> tuple[int, int]:
        return int(round(x * s)), int(round(y * s))

    def ax(a: float, b: float) -> tuple[int, int]:
        return max(1, int(round(a * s))), max(1, int(round(b * s)))

    cv2.ellipse(img, c, ax(52, 64), 0, 0, 360, skin, -1, cv2.LINE_AA)
    for side in (-1, 1):
        x = 64 + side * 24
        cv2.ellipse(img, pt(x, 40), ax(14, 5), 0, 180, 360, (40, 50, 70), max(1, int(3 * s)), cv2.LINE_AA)  # brow
        cv2.ellipse(img, pt(x, 52), ax(11, 5), 0, 0, 360, (235, 235, 240), -1, cv2.LINE_AA)  # eye white
        cv2.circle(img, pt(x, 52), max(2, int(4 * s)), (60, 50, 40), -1, cv2.LINE_AA)  # iris
        cv2.circle(img, pt(x, 52), max(1, int(2 * s)), (15, 15, 15), -1, cv2.LINE_AA)  # pupil
        cv2.ellipse(img, pt(x, 50), ax(12, 6), 0, 180, 360, (70, 90, 120), 1, cv2.LINE_AA)  # lid
    cv2.line(img, pt(64, 56), pt(61, 76), (95, 120, 170), max(1, int(2 * s)), cv2.LINE_AA)  # nose ridge
    cv2.ellipse(img, pt(64, 79), ax(9, 4), 0, 0, 180, (80, 100, 150), max(1, int(2 * s)), cv2.LINE_AA)
    left, right = pt(46, 96), pt(82, 96)
    lips = np.array([left, pt(55, 91), pt(64, 93), pt(73, 91), right, pt(73, 103), pt(64, 105), pt(55, 103)], np.int32)
    cv2.fillPoly(img, [lips], (80, 80, 170), cv2.LINE_AA)
    cv2.line(img, left, right, (40, 40, 90), max(1, int(2 * s)), cv2.LINE_AA)  # lip line
    # skin texture: low-frequency shading plus fine pores, fixed in the face (not sensor noise)
    low = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), 6 * s)
    fine = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), 0.8)
    img += (low / (low.std() + 1e-6) * 6 + fine / (fine.std() + 1e-6) * 3)[..., None]
    img = cv2.GaussianBlur(img, (0, 0), 0.6)
    np.clip(img, 0, 255, out=img)
    return Face(img, np.array([left, right], np.float32))


def _corner_field(face: Face, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Unit displacement field ``(dx, dy)`` (H, W) float32: corners pulled outward and up."""
    h, w = face.image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dx = np.zeros((h, w), np.float32)
    dy = np.zeros((h, w), np.float32)
    for (cx, cy), out in zip(face.mouth_corners, (-1.0, 1.0)):
        g = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * radius**2))
        dx += out * 0.8 * g
        dy += -0.6 * g
    return dx, dy


def face_sequence(
    fps: float,
    duration_s: float,
    *,
    movements: tuple[Movement, ...] = (),
    size: int = 128,
    noise: float = 2.0,
    gain: Callable[[float], float] | None = None,
    seed: int = 0,
) -> Sequence:
    """Frames of a still face at ``fps`` for ``duration_s`` seconds with Gaussian sensor noise
    (std ``noise`` grey levels, fresh each frame), the planted ``movements`` (their displacements
    add up) and, optionally, a lighting ``gain(t)`` multiplying the face at time ``t`` s."""
    if fps <= 0 or duration_s <= 0:
        raise ValueError(f"fps and duration must be positive, got {fps} and {duration_s}")
    face = render_face(size, seed)
    n = int(round(duration_s * fps))
    times = np.arange(n) / fps
    per = [m.amplitude(times) for m in movements]
    amp = np.sum(per, axis=0) if per else np.zeros(n)
    rng = np.random.default_rng(seed + 1)
    frames = np.empty((n, size, size, 3), np.uint8)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    if movements:
        dx, dy = _corner_field(face, 0.06 * size)
    buf = np.empty_like(face.image)
    for i in range(n):
        if amp[i] > 0:
            a = float(amp[i])
            # backward map: the content at p moves to p + a * d(p)
            cv2.remap(face.image, xx - a * dx, yy - a * dy, cv2.INTER_CUBIC, dst=buf, borderMode=cv2.BORDER_REFLECT)
        else:
            buf[:] = face.image
        if gain is not None:
            buf *= gain(float(times[i]))
        buf += rng.normal(0.0, noise, buf.shape).astype(np.float32)
        np.clip(buf, 0, 255, out=buf)
        np.rint(buf, out=buf)
        frames[i] = buf
    spans = []
    for a in per:
        moving = np.flatnonzero(a > 0)
        if moving.size:
            spans.append((int(moving[0]), int(np.argmax(a)), int(moving[-1])))
    return Sequence(frames, times, float(fps), amp, tuple(spans))
