"""Rendering frames: planted expression warps, head motion, lighting and sensor noise.

Each face is a :class:`FaceLayer` over its subject's canvas; a :class:`Scene` puts one or more
layers side by side and adds the global lighting gain and Gaussian sensor noise. The warp field of
an event is computed once (at its apex) and scaled per frame by the event's profile; the head motion
(drift, jitter, and planted nods and turns) is folded into the same ``cv2.remap``, so each frame is
resampled once.
"""

from __future__ import annotations

import cv2
import numpy as np

from .aus import FaceFrame, displacements
from .config import NuisanceConfig
from .faces import Subject
from .nuisance import HeadMotion, Illumination
from .timeline import PlantedEvent
from .warp import anchor_points, backward_field, face_window, forward_field

_REPLICATE, _REFLECT = cv2.BORDER_REPLICATE, cv2.BORDER_REFLECT101
MERGE_IOD = 0.04  # landmarks closer than this (inter-ocular distances) act as one skin point


def event_field(points68: np.ndarray, event: PlantedEvent, shape: tuple[int, int]) -> np.ndarray:
    """The apex forward field ``(H, W, 2)`` float32 (pixels) of ``event`` on a face with ``points68``,
    zero outside the face (:func:`~.warp.face_window`)."""
    pts, disp = displacements(points68, event.aus, event.amplitude_px)
    merge = MERGE_IOD * FaceFrame.of(points68).iod
    field = forward_field(pts, disp, anchor_points(points68, shape), shape, merge_px=merge)
    return field * face_window(points68, shape)[..., None]


class FaceLayer:
    """One face canvas over time: its subject, optional head motion and planted events.

    Args:
        subject: the face's identity and neutral canvas frames.
        motion: head motion, or ``None`` for a still head.
    """

    def __init__(self, subject: Subject, motion: HeadMotion | None = None):
        self.subject = subject
        self.motion = motion if motion is not None and not motion.still else None
        self._centre = face_centre(subject.points68[0])
        self._heads: list[PlantedEvent] = []  # planted nods and turns
        h, w = subject.frames.shape[1:3]
        self.shape = (h, w)
        self._gx, self._gy = (a.astype(np.float32) for a in np.meshgrid(np.arange(w), np.arange(h)))
        self._mapx = np.empty((h, w), np.float32)
        self._mapy = np.empty((h, w), np.float32)
        self._tmp = np.empty((h, w), np.float32)
        self._tmp2 = np.empty((h, w), np.float32)
        self._fx = np.empty((h, w), np.float32)
        self._fy = np.empty((h, w), np.float32)
        self._ox = np.empty((h, w), np.float32)
        self._oy = np.empty((h, w), np.float32)
        self._out = np.empty((h, w, 3), np.uint8)
        self._events: list[tuple[PlantedEvent, int, np.ndarray, np.ndarray]] = []

    def add(self, event: PlantedEvent) -> None:
        """Plant ``event``: its backward field is computed now, on the landmarks at its apex (a nod
        or a turn moves the whole face instead)."""
        if event.kind == "head":
            self._heads.append(event)
            return
        b = self.subject.base_index(event.t_apex)
        back = backward_field(event_field(self.subject.points68[b], event, self.shape))
        self._events.append((event, b, np.ascontiguousarray(back[..., 0]), np.ascontiguousarray(back[..., 1])))

    def drop_before(self, frame: int) -> None:
        """Forget events that ended before ``frame`` (a live source's memory stays bounded)."""
        self._events = [e for e in self._events if e[0].offset >= frame]
        self._heads = [e for e in self._heads if e.offset >= frame]

    def render(self, frame: int, t: float) -> np.ndarray:
        """The face canvas at ``frame`` (time ``t`` s): ``(H, W, 3)`` uint8, valid until the next call."""
        b = self.subject.base_index(t)
        image = self.subject.frames[b]
        active = [(e, e.weight(frame), bx, by, b_apex) for e, b_apex, bx, by in self._events]
        active = [a for a in active if a[1] > 0]
        heads = [(e, e.weight(frame)) for e in self._heads]
        heads = [h for h in heads if h[1] > 0]
        if self.motion is None and not active and not heads:
            return image
        if self.motion is not None or heads:
            m = self.motion.matrix(t) if self.motion is not None else np.eye(2, 3)
            for e, weight in heads:
                m = _compose(m, head_matrix(e, weight, self._centre))
            inv = cv2.invertAffineTransform(m)
            cv2.addWeighted(self._gx, inv[0, 0], self._gy, inv[0, 1], inv[0, 2], dst=self._mapx)
            cv2.addWeighted(self._gx, inv[1, 0], self._gy, inv[1, 1], inv[1, 2], dst=self._mapy)
        else:
            np.copyto(self._mapx, self._gx)
            np.copyto(self._mapy, self._gy)
        self._ox.fill(0.0)
        self._oy.fill(0.0)
        for _, weight, bx, by, b_apex in active:  # each field sampled where the head motion maps to
            if b != b_apex:  # a video base: carry the apex field along with the face
                bx, by = self._follow(bx, by, b_apex, b)
            if self.motion is not None or heads:
                bx = cv2.remap(bx, self._mapx, self._mapy, cv2.INTER_LINEAR, dst=self._tmp, borderMode=_REPLICATE)
                by = cv2.remap(by, self._mapx, self._mapy, cv2.INTER_LINEAR, dst=self._tmp2, borderMode=_REPLICATE)
            cv2.scaleAdd(bx, weight, self._ox, dst=self._ox)
            cv2.scaleAdd(by, weight, self._oy, dst=self._oy)
        cv2.add(self._mapx, self._ox, dst=self._mapx)
        cv2.add(self._mapy, self._oy, dst=self._mapy)
        return cv2.remap(image, self._mapx, self._mapy, cv2.INTER_CUBIC, dst=self._out, borderMode=_REFLECT)

    def _follow(self, bx: np.ndarray, by: np.ndarray, b_from: int, b_to: int) -> tuple[np.ndarray, np.ndarray]:
        """An event field moved from base frame ``b_from`` to ``b_to`` by the landmarks' similarity transform."""
        p = self.subject.points68
        m, _ = cv2.estimateAffinePartial2D(p[b_from], p[b_to])
        h, w = self.shape
        wx = cv2.warpAffine(bx, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=_REPLICATE)
        wy = cv2.warpAffine(by, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=_REPLICATE)
        cv2.addWeighted(wx, m[0, 0], wy, m[0, 1], 0.0, dst=self._fx)
        cv2.addWeighted(wx, m[1, 0], wy, m[1, 1], 0.0, dst=self._fy)
        return self._fx, self._fy


class Scene:
    """Face layers side by side under one light, seen by one noisy sensor.

    Args:
        layers: the faces, left to right (canvases of equal height).
        fps: frame rate, for the time of each frame.
        nuisance: lighting and noise settings.
        rng: random stream of the lighting and the sensor-noise seed.
    """

    def __init__(self, layers: list[FaceLayer], fps: float, nuisance: NuisanceConfig, rng: np.random.Generator):
        heights = {layer.shape[0] for layer in layers}
        if len(heights) != 1:
            raise ValueError(f"face canvases must share one height, got {sorted(heights)}")
        self.layers = layers
        self.fps = fps
        self.light = Illumination(fps, nuisance, rng)
        self.noise_std = nuisance.noise_std
        self._noise_seed = int(rng.integers(2**31))
        h = heights.pop()
        w = sum(layer.shape[1] for layer in layers)
        self.size = (w, h)  # (width, height)
        self.x0 = tuple(int(x) for x in np.cumsum([0] + [layer.shape[1] for layer in layers[:-1]]))
        self._f = np.empty((h, w, 3), np.float32)
        self._noise = np.zeros((h, w * 3), np.float32)  # one channel: cv2.randn's scalars fill channel 0 only
        self._out = np.empty((h, w, 3), np.uint8)

    def render(self, frame: int) -> np.ndarray:
        """Frame ``frame``: ``(H, W, 3)`` uint8 BGR, valid until the next call (copy it to keep it).

        The noise of a frame depends only on the scene's seed and ``frame`` (OpenCV's generator,
        reseeded per frame, several times faster than NumPy's here).
        """
        t = frame / self.fps
        gain = self.light.gain(t)
        faces = [layer.render(frame, t) for layer in self.layers]
        if gain == 1.0 and self.noise_std == 0:
            for x0, img in zip(self.x0, faces):
                self._out[:, x0 : x0 + img.shape[1]] = img
            return self._out
        for x0, img in zip(self.x0, faces):
            np.copyto(self._f[:, x0 : x0 + img.shape[1]], img, casting="unsafe")
        if self.noise_std > 0:
            cv2.setRNGSeed(int(np.random.SeedSequence([self._noise_seed, frame]).generate_state(1)[0] >> 1))
            cv2.randn(self._noise, 0.0, self.noise_std)  # type: ignore[call-overload]  # scalars: one channel
        noise = self._noise.reshape(self._f.shape)
        return cv2.addWeighted(self._f, gain, noise, 1.0, 0.0, dst=self._out, dtype=cv2.CV_8U)


def head_matrix(event: PlantedEvent, weight: float, centre: np.ndarray) -> np.ndarray:
    """``(2, 3)`` map of a nod (``aus == "nod"``: the face moves down and shortens) or a turn (it moves
    sideways and narrows) at ``weight`` of its peak, about ``centre``: a 2-D view of a head rotation."""
    shift = weight * event.amplitude_px
    width = event.amplitude_px / event.amplitude_200 * 200.0
    squash = 1.0 - 0.5 * shift / width
    axis = 1 if event.aus == "nod" else 0
    lin = np.eye(2)
    lin[axis, axis] = squash
    move = np.zeros(2)
    move[axis] = shift
    return np.c_[lin, centre + move - lin @ centre]


def _compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """``(2, 3)`` affine map ``outer(inner(x))``."""
    return np.c_[outer[:, :2] @ inner[:, :2], outer[:, :2] @ inner[:, 2] + outer[:, 2]]


def face_centre(points68: np.ndarray) -> np.ndarray:
    """``(2,)`` centre of the 68 points (the pivot of the head motion)."""
    return np.asarray(points68, np.float64).mean(0)


def build_scene(
    subjects: list[Subject],
    events: list[PlantedEvent],
    fps: float,
    nuisance: NuisanceConfig,
    rngs: tuple[np.random.Generator, np.random.Generator],
) -> Scene:
    """A scene of ``subjects`` side by side with ``events`` planted (each on its ``face``).

    Args:
        rngs: the head-motion stream and the lighting/noise stream.
    """
    motion_rng, scene_rng = rngs
    layers = [
        FaceLayer(s, HeadMotion(face_centre(s.points68[0]), s.face_width, nuisance, motion_rng)) for s in subjects
    ]
    for e in events:
        layers[e.face].add(e)
    return Scene(layers, fps, nuisance, scene_rng)
