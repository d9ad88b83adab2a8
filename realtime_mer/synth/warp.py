"""Sparse landmark displacements -> a dense, smooth, local warp of the face image.

A thin-plate spline through the moved control points, with zero displacement on the other
landmarks, on a ring of anchors around the face and on the image border (so the warp stays local),
is evaluated once on a coarse grid and upsampled bilinearly. Images are warped backwards with
``cv2.remap``: ``out(y) = in(y + B(y))``, where ``B`` inverts the forward field ``D`` (a point at ``x``
moves to ``x + D(x)``) by fixed-point iteration.
"""

from __future__ import annotations

import cv2
import numpy as np
import scipy.linalg

from .aus import FaceFrame


def face_ring(points68: np.ndarray, scale: float = 1.25, n: int = 32) -> np.ndarray:
    """``(n, 2)`` points around the face: its outline (jaw points 0-16, then the brows raised by 0.8
    inter-ocular distances for the forehead) scaled by ``scale`` about its centroid, evenly resampled."""
    p = np.asarray(points68, np.float64)
    frame = FaceFrame.of(p)
    outline = np.vstack([p[0:17], p[26:16:-1] - 0.8 * frame.iod * frame.ey])
    centre = outline.mean(0)
    return _resample_closed(centre + scale * (outline - centre), n)


def anchor_points(points68: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Zero-displacement anchors: the :func:`face_ring` and points about 20 px apart on the image border
    (ring points within 8 px of the border or outside the image are left to the border anchors).

    Args:
        points68: ``(68, 2)`` pixels.
        shape: ``(H, W)`` of the image.

    Returns:
        ``(M, 2)`` float64 pixels.
    """
    ring = face_ring(points68)
    h, w = shape
    inside = (ring[:, 0] > 8) & (ring[:, 0] < w - 9) & (ring[:, 1] > 8) & (ring[:, 1] < h - 9)
    corners = np.array([[0.0, 0.0], [w - 1, 0.0], [w - 1, h - 1], [0.0, h - 1]])
    return np.vstack([ring[inside], _resample_closed(corners, max(4, round(2 * (w + h) / 20)))])


def face_window(points68: np.ndarray, shape: tuple[int, int], taper_iod: float = 0.3) -> np.ndarray:
    """``(H, W)`` float32 weight: 1 inside the :func:`face_ring`, falling smoothly to 0 within
    ``taper_iod`` inter-ocular distances outside it. Multiplying a warp by it keeps the warp local."""
    h, w = shape
    outside = np.ones((h, w), np.uint8)
    cv2.fillPoly(outside, [np.round(face_ring(points68)).astype(np.int32)], 0)
    dist = cv2.distanceTransform(outside, cv2.DIST_L2, 5)
    x = np.clip(1.0 - dist / (taper_iod * FaceFrame.of(points68).iod), 0.0, 1.0)
    return (x * x * (3.0 - 2.0 * x)).astype(np.float32)


def _resample_closed(poly: np.ndarray, n: int) -> np.ndarray:
    """``n`` points evenly spaced by arc length along the closed polygon ``poly`` ``(K, 2)``."""
    closed = np.vstack([poly, poly[:1]])
    seg = np.hypot(*np.diff(closed, axis=0).T)
    s = np.r_[0.0, np.cumsum(seg)]
    u = np.linspace(0.0, s[-1], n, endpoint=False)
    return np.c_[np.interp(u, s, closed[:, 0]), np.interp(u, s, closed[:, 1])]


class ThinPlateSpline:
    """The 2-D thin-plate spline (kernel ``r^2 log r`` plus an affine part) through ``(N, 2)`` points
    with ``(N, C)`` values; coordinates are scaled to unit size first for a well-conditioned solve
    (SciPy's LAPACK: NumPy's threaded OpenBLAS takes ~0.3 s for this 100x100 solve on 2 busy cores)."""

    def __init__(self, points: np.ndarray, values: np.ndarray) -> None:
        self._centre = points.mean(0)
        self._scale = float(np.abs(points - self._centre).max()) or 1.0
        self._src = (points - self._centre) / self._scale
        n = len(points)
        system = np.zeros((n + 3, n + 3))
        system[:n, :n] = self._kernel(self._src)
        system[:n, n] = system[n, :n] = 1.0
        system[:n, n + 1 :] = self._src
        system[n + 1 :, :n] = self._src.T
        rhs = np.zeros((n + 3, values.shape[1]))
        rhs[:n] = values
        try:
            self._coef = scipy.linalg.solve(system, rhs, assume_a="sym")
        except scipy.linalg.LinAlgError:
            raise ValueError("thin-plate spline: two control points coincide") from None

    def _kernel(self, q: np.ndarray) -> np.ndarray:
        dx = q[:, 0, None] - self._src[None, :, 0]
        dy = q[:, 1, None] - self._src[None, :, 1]
        r2 = dx * dx + dy * dy
        return 0.5 * r2 * np.log(np.maximum(r2, 1e-300))

    def __call__(self, q: np.ndarray) -> np.ndarray:
        """Values at ``(M, 2)`` query points -> ``(M, C)``."""
        q = (q - self._centre) / self._scale
        n = len(self._src)
        # einsum, not BLAS: NumPy's threaded OpenBLAS stalls on small products on a busy machine
        return np.einsum("ij,jk->ik", self._kernel(q), self._coef[:n]) + self._coef[n] + q @ self._coef[n + 1 :]


def merge_close(points: np.ndarray, values: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Points within ``radius`` of an earlier unmerged point join its group; a group becomes its mean point and value.

    A spline through nearly coincident points with different values oscillates wildly; landmarks do
    coincide, e.g. the inner lip points of a closed mouth.
    """
    diff = points[:, None, :] - points[None, :, :]
    close = (diff * diff).sum(-1) < radius * radius
    free = np.ones(len(points), bool)
    merged_p, merged_v = [], []
    for i in range(len(points)):
        if free[i]:
            group = close[i] & free
            free &= ~group
            merged_p.append(points[group].mean(0))
            merged_v.append(values[group].mean(0))
    return np.array(merged_p), np.array(merged_v)


def forward_field(
    points: np.ndarray,
    disp: np.ndarray,
    anchors: np.ndarray,
    shape: tuple[int, int],
    step: int = 4,
    merge_px: float = 2.0,
) -> np.ndarray:
    """Dense forward displacement ``D`` from control points (thin-plate spline, coarse grid + bilinear).

    Args:
        points: ``(N, 2)`` control points, pixels.
        disp: ``(N, 2)`` their displacements, pixels.
        anchors: ``(M, 2)`` points held still.
        shape: ``(H, W)`` of the output field.
        step: coarse-grid spacing, pixels.
        merge_px: control points closer than this are merged (see :func:`merge_close`).

    Returns:
        ``(H, W, 2)`` float32 ``(dx, dy)`` pixels.
    """
    h, w = shape
    src, val = merge_close(np.vstack([points, anchors]), np.vstack([disp, np.zeros_like(anchors)]), merge_px)
    spline = ThinPlateSpline(src, val)
    gx = np.arange(0, w + step, step, dtype=np.float64)
    gy = np.arange(0, h + step, step, dtype=np.float64)
    grid = np.stack(np.meshgrid(gx, gy), -1).reshape(-1, 2)
    coarse = spline(grid).reshape(len(gy), len(gx), 2).astype(np.float32)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32) / step
    return cv2.remap(coarse, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def backward_field(forward: np.ndarray, iterations: int = 4) -> np.ndarray:
    """``B`` with ``B(y) = -D(y + B(y))``: the remap offsets that realise the forward field ``D``.

    Args:
        forward: ``(H, W, 2)`` float32 forward field, pixels.

    Returns:
        ``(H, W, 2)`` float32 backward field, pixels.
    """
    h, w = forward.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    back = -forward
    for _ in range(iterations):
        at = (xs + back[..., 0], ys + back[..., 1])
        back = -cv2.remap(forward, *at, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return back


def warp_image(image: np.ndarray, back: np.ndarray, interpolation: int = cv2.INTER_CUBIC) -> np.ndarray:
    """``image`` warped by the backward field ``back`` ``(H, W, 2)``: ``out(y) = image(y + back(y))``."""
    h, w = image.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return cv2.remap(image, xs + back[..., 0], ys + back[..., 1], interpolation, borderMode=cv2.BORDER_REFLECT101)
