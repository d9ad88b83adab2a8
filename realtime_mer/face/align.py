"""Eye-centred face crops registered to a track's reference frame.

The crop follows STRCN (Xia et al., TMM 2019, eq. 1, deltas 0.4, 0.6, 2.2, 1.8): with the eye
centres ``c_l`` (image left, mean of points 36-41) and ``c_r`` (mean of 42-47) at distance ``d``, in
the frame rotated so the eyes are level the crop spans x in ``[c_l - 0.4 d, c_l + 1.4 d]`` (width
1.8 d) and y in ``[eye line - 0.6 d, eye line + 1.6 d]`` (height 2.2 d); it is resized to the
working size.

Every later frame of the track is mapped into the REFERENCE crop: a least-squares similarity from
rigid MediaPipe points (forehead, nose, eye corners) of the frame to the same points of the
reference frame, composed with the reference crop. The landmark fit is off by up to about a
crop pixel (MediaPipe jitter, and the reference frame's own landmark error, which shifts and turns
every later crop the same way), so each crop is then registered to the reference crop on the
images: phase correlation (translation), then one Gauss-Newton similarity step. On the still face
of evm_face.mp4 this takes the error from 0.6-0.9 px to under 0.05 px. Between landmark frames
the previous transform is refined the same way.

The image registration weighs only the rigid parts of the face (:func:`rigid_weight`: nose,
cheeks, temples, forehead; eyes, brows and mouth are left out, with a margin): registered on the
whole crop, a blink or a mouth movement pulls the crop by 0.1-0.2 px, which lights up the brows
and mouth corners of a spotter watching the crop.
"""

from __future__ import annotations

import cv2
import numpy as np

from realtime_mer.face.mapping import to68
from realtime_mer.face.phase import PhaseCorrelator

CropDeltas = tuple[float, float, float, float]
STRCN_DELTAS: CropDeltas = (0.4, 0.6, 2.2, 1.8)

# MediaPipe face-mesh points that barely move with facial expressions: forehead, nose ridge and
# base, eye corners. The similarity to the reference frame is fitted on these.
RIGID_POINTS = np.array(
    [
        10,
        151,
        9,
        8,
        109,
        338,
        67,
        297,
        108,
        337,
        69,
        299,
        168,
        6,
        197,
        195,
        5,
        4,
        1,
        2,
        98,
        327,
        48,
        278,
        133,
        362,
        33,
        263,
    ],
    dtype=np.intp,
)


def rigid_weight(points68: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(h, w)`` float32 weight in [0, 1] of the crop pixels that do not move with expressions.

    A Hann window over the crop of ``size`` (w, h) with the eyes, brows and mouth (``points68``
    ``(68, 2)`` in crop pixels) cut out: the eye fissures (36-47) grown by 0.12, the brows (17-26)
    by 0.12 and the lips (48-67) by 0.2 inter-ocular distances; the cut is blurred by 0.05 of the
    distance so no hard edge is left for the registration to lock onto.
    """
    pts = np.asarray(points68, np.float64)
    w, h = size
    d = float(np.hypot(*np.subtract(*eye_centres(pts))))
    cut = np.zeros((h, w), np.uint8)
    for idx, grow in (((36, 42), 0.12), ((42, 48), 0.12), ((48, 60), 0.2)):
        part = np.zeros_like(cut)
        cv2.fillPoly(part, [np.round(pts[idx[0] : idx[1]]).astype(np.int32)], 1)
        r = max(1, round(grow * d))
        np.bitwise_or(
            cut, cv2.dilate(part, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))), out=cut
        )
    r = max(1, round(0.12 * d))
    brows = np.zeros_like(cut)
    for a, b in ((17, 22), (22, 27)):
        cv2.polylines(brows, [np.round(pts[a:b]).astype(np.int32)], False, 1, thickness=2 * r + 1)
    cut |= brows
    keep = 1.0 - cut.astype(np.float32)
    cv2.GaussianBlur(keep, (0, 0), max(0.5, 0.05 * d), dst=keep)
    return keep * cv2.createHanningWindow((w, h), cv2.CV_32F)


def eye_centres(points68: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres ``(2,)`` of the image-left eye (points 36-41) and the image-right eye (42-47)."""
    return points68[36:42].mean(axis=0), points68[42:48].mean(axis=0)


def crop_transform(points68: np.ndarray, size: tuple[int, int], deltas: CropDeltas = STRCN_DELTAS) -> np.ndarray:
    """``(2, 3)`` float64 affine map from frame pixels to the eye-centred crop of ``size`` (w, h).

    ``deltas`` = (left margin, top margin, height, width) in units of the eye distance.
    """
    left, top, height, width = deltas
    cl, cr = eye_centres(np.asarray(points68, dtype=np.float64))
    v = cr - cl
    d = float(np.hypot(v[0], v[1]))
    if d < 1e-3:
        raise ValueError("the two eye centres coincide: not a usable face")
    c, s = v / d
    sx, sy = size[0] / (width * d), size[1] / (height * d)
    # rotate about c_l so the eyes are level, shift by the margins, scale to the working size
    rot = np.array([[c, s], [-s, c]])
    lin = np.diag([sx, sy]) @ rot
    off = np.array([sx * left * d, sy * top * d]) - lin @ cl
    return np.hstack([lin, off[:, None]])


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) taking ``src`` to ``dst``.

    Args:
        src, dst: ``(N, 2)`` matching points, N >= 2.

    Returns:
        ``(2, 3)`` float64 matrix ``A`` with ``dst ~ A @ [x, y, 1]``.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    ms, md = src.mean(axis=0), dst.mean(axis=0)
    s, t = src - ms, dst - md
    var = float((s * s).sum())
    if var < 1e-9:
        raise ValueError("similarity: source points are all the same")
    # complex-number form of the 2-D Procrustes fit: a + ib = sum(conj(s) * t) / sum(|s|^2)
    a = float((s[:, 0] * t[:, 0] + s[:, 1] * t[:, 1]).sum()) / var
    b = float((s[:, 0] * t[:, 1] - s[:, 1] * t[:, 0]).sum()) / var
    lin = np.array([[a, -b], [b, a]])
    return np.hstack([lin, (md - lin @ ms)[:, None]])


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The ``(2, 3)`` affine map ``outer(inner(p))``."""
    return np.hstack([outer[:, :2] @ inner[:, :2], (outer[:, :2] @ inner[:, 2] + outer[:, 2])[:, None]])


def invert(m: np.ndarray) -> np.ndarray:
    """The inverse ``(2, 3)`` of the invertible ``(2, 3)`` affine map ``m``."""
    (a, b, tx), (c, d, ty) = m.tolist()
    det = a * d - b * c
    ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
    return np.array([[ia, ib, -(ia * tx + ib * ty)], [ic, id_, -(ic * tx + id_ * ty)]])


def apply(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``(N, 2)`` float32 points mapped by the ``(2, 3)`` affine ``m``."""
    p = np.asarray(points, dtype=np.float64)[:, :2]
    return (p @ m[:, :2].T + m[:, 2]).astype(np.float32)


class TrackAligner:
    """Registers the frames of one face track to its reference crop.

    Refinement (``refine=True``), after the landmark similarity (or, between landmark frames, the
    previous frame's transform): phase correlation of Hann-windowed grey crops against the
    reference crop fixes the translation over a wide range, then one inverse-compositional
    Gauss-Newton step (Lucas-Kanade, similarity: rotation, scale, shift, Hann-weighted, on grey
    crops blurred with sigma 1 px) removes the remaining sub-pixel shift and small rotation. Both
    weigh the crop by :func:`rigid_weight` of the reference crop's landmarks, so expressions do
    not pull the registration.

    Args:
        size: working size ``(width, height)`` of the crops, pixels.
        deltas: STRCN crop constants (left, top, height, width) in eye distances.
        refine: refine each transform against the reference crop by image registration.
        max_refine: largest accepted translation correction, in crop pixels; larger ones (a face
            that moved too far for a landmark-free update, or a badly matched image) are not applied.
    """

    def __init__(
        self,
        size: tuple[int, int] = (128, 128),
        deltas: CropDeltas = STRCN_DELTAS,
        refine: bool = True,
        max_refine: float = 8.0,
    ):
        w, h = size
        if w < 16 or h < 16:
            raise ValueError(f"crop size must be at least 16x16, got {size}")
        self.size = (int(w), int(h))
        self.deltas = deltas
        self.refine = refine
        self.max_refine = max_refine
        self.reference: np.ndarray | None = None  # (N, 2) rigid points of the reference frame
        self.ref_transform: np.ndarray | None = None  # (2, 3) frame -> crop of the reference frame
        self.transform: np.ndarray | None = None  # (2, 3) last frame -> crop
        self.last_shift = (0.0, 0.0)  # translation found by the last refinement, crop pixels
        self._window = cv2.createHanningWindow(self.size, cv2.CV_32F)  # rigid_weight once a reference is set
        self._window_sum = float(self._window.sum())
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        self._centre = np.array([(w - 1) / 2, (h - 1) / 2])
        self._xs, self._ys = xs - self._centre[0], ys - self._centre[1]
        self._phase = PhaseCorrelator(self.size)  # against the windowed grey reference, spectrum kept
        self._ref_smooth = np.empty((h, w), np.float32)  # blurred grey reference, for Gauss-Newton
        self._sd_weighted = np.empty((4, h * w), np.float32)  # Hann-weighted steepest-descent images
        self._hessian_inv: np.ndarray = np.eye(4)
        self._grey8 = np.empty((h, w), np.uint8)
        self._grey = np.empty((h, w), np.float32)
        self._work = np.empty((h, w, 3), np.uint8)

    @property
    def has_reference(self) -> bool:
        return self.reference is not None

    def reset(self) -> None:
        """Forget the reference: the next aligned frame with landmarks becomes the new one."""
        self.reference = None
        self.ref_transform = None
        self.transform = None

    def _windowed(self, crop: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Grey crop less its weighted mean, times the weight (phase correlation input): the
        weight's own outline carries no brightness, so it cannot pull the shift towards zero."""
        cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY, dst=self._grey8)
        np.copyto(out, self._grey8)
        out -= float(np.dot(out.ravel(), self._window.ravel())) / self._window_sum
        out *= self._window
        return out

    def _smooth(self, crop: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Grey crop blurred with sigma 1 px, zero window-weighted mean (Gauss-Newton input)."""
        cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY, dst=self._grey8)
        np.copyto(out, self._grey8)
        cv2.GaussianBlur(out, (0, 0), 1.0, dst=out)
        out -= float(np.dot(out.ravel(), self._window.ravel())) / self._window_sum
        return out

    def _warp(self, image: np.ndarray, m: np.ndarray, out: np.ndarray) -> np.ndarray:
        return cv2.warpAffine(image, m, self.size, dst=out, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def set_reference(self, image: np.ndarray, landmarks: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Make this frame the reference; returns its crop ``(h, w, 3)`` uint8 (in ``out`` if given).

        Args:
            image: ``(H, W, 3)`` uint8 BGR frame.
            landmarks: ``(478, 2+)`` MediaPipe points of the face, frame pixels.
            out: ``(h, w, 3)`` uint8 array to write the crop into (a new one if ``None``).
        """
        self.reference = np.asarray(landmarks[RIGID_POINTS, :2], dtype=np.float64)
        self.ref_transform = crop_transform(to68(landmarks), self.size, self.deltas)
        self.transform = self.ref_transform
        self.last_shift = (0.0, 0.0)
        self._window = rigid_weight(apply(self.ref_transform, to68(landmarks)), self.size)
        self._window_sum = float(self._window.sum())
        crop = self._warp(image, self.ref_transform, self._crop_out(out))
        self._phase.set_reference(self._windowed(crop, self._grey))
        t = self._smooth(crop, self._ref_smooth)
        gx = cv2.Sobel(t, cv2.CV_32F, 1, 0, ksize=3, scale=1 / 8)
        gy = cv2.Sobel(t, cv2.CV_32F, 0, 1, ksize=3, scale=1 / 8)
        # d(warp)/d(a, b, tx, ty) for x' = (1 + a) x - b y + tx, y' = b x + (1 + a) y + ty about the centre
        sd = np.stack([gx * self._xs + gy * self._ys, gy * self._xs - gx * self._ys, gx, gy]).reshape(4, -1)
        np.multiply(sd, self._window.reshape(1, -1), out=self._sd_weighted)
        self._hessian_inv = np.linalg.inv(self._sd_weighted.astype(np.float64) @ sd.T.astype(np.float64))
        return crop

    def _refine(self, image: np.ndarray, m: np.ndarray) -> np.ndarray:
        """``m`` corrected by phase correlation, then one Gauss-Newton similarity step."""
        self._warp(image, m, self._work)
        (dx, dy), response = self._phase.shift(self._windowed(self._work, self._grey))
        if np.hypot(dx, dy) > self.max_refine or response < 0.05:
            self.last_shift = (0.0, 0.0)
            return m
        m = m.copy()
        m[0, 2] -= dx
        m[1, 2] -= dy
        self._warp(image, m, self._work)
        err = self._smooth(self._work, self._grey)
        err -= self._ref_smooth
        a, b, tx, ty = self._hessian_inv @ (self._sd_weighted @ err.reshape(-1))
        if abs(a) > 0.05 or abs(b) > 0.05 or np.hypot(tx, ty) > 2.0:
            self.last_shift = (dx, dy)
            return m  # a step this large means the linearisation does not hold: keep the translation
        # inverse compositional: the template->frame warp m^-1 becomes m^-1 o step^-1, so m <- step o m
        lin = np.array([[1 + a, -b], [b, 1 + a]])
        upd = np.hstack([lin, (self._centre + (tx, ty) - lin @ self._centre)[:, None]])
        self.last_shift = (dx - tx, dy - ty)  # the step moves the crop by +t where the correlation moved it by -d
        return compose(upd, m)

    def _crop_out(self, out: np.ndarray | None) -> np.ndarray:
        """``out`` checked as a crop buffer, or a new one."""
        shape = (self.size[1], self.size[0], 3)
        if out is None:
            return np.empty(shape, np.uint8)
        if out.shape != shape or out.dtype != np.uint8 or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous uint8 array of shape {shape}, got {out.dtype} {out.shape}")
        return out

    def align(
        self, image: np.ndarray, landmarks: np.ndarray | None, out: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Crop of this frame registered to the reference crop.

        Args:
            image: ``(H, W, 3)`` uint8 BGR frame.
            landmarks: ``(478, 2+)`` MediaPipe points of this frame, or ``None`` on a frame without
                landmarks (the previous transform is refined by image registration only).
            out: ``(h, w, 3)`` uint8 C-contiguous array to write the crop into (e.g. the next slot
                of the track's ring buffer, so that no crop is allocated per frame); a new array
                if ``None``.

        Returns:
            crop ``(h, w, 3)`` uint8 (``out``, or a new array) and the ``(2, 3)`` float64 frame -> crop map.
        """
        if self.reference is None or self.ref_transform is None or self.transform is None:
            if landmarks is None:
                raise RuntimeError("TrackAligner.align: no reference yet and no landmarks to make one")
            crop = self.set_reference(image, landmarks, out)
            assert self.ref_transform is not None
            return crop, self.ref_transform
        if landmarks is not None:
            m = compose(self.ref_transform, similarity(landmarks[RIGID_POINTS, :2], self.reference))
        else:
            m = self.transform
        if self.refine:
            m = self._refine(image, m)
        crop = self._warp(image, m, self._crop_out(out))
        self.transform = m
        return crop, m
