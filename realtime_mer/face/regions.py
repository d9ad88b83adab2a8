"""The six facial regions of the MEGC 2019 CNN-LSTM paper (seed 002, section 3.1), in crop pixels.

The paper fixes six boxes from the first frame's 68 landmarks and crops every frame of the
sequence with them: two eye + brow regions, the nose, two cheeks, the mouth, of sizes
[100, 80], [100, 80], [120, 80], [60, 60], [60, 60], [160, 60]. They are read as (width, height):
the mouth box, the only unambiguous one, is wider than tall.

Scaling: the paper's sizes are canvas sizes for its databases' faces. We take them as relative to
an eye-centre distance of ``paper_eye_distance`` = 100 px (the two 100-px eye boxes then sit side
by side, each centred on its eye) and scale them by the crop's eye distance, separately along x
and y because the STRCN crop (1.8 x 2.2 eye distances) is resized to the working size. For the
default 128x128 crop that is 71x47 px (eyes), 85x47 (nose), 43x35 (cheeks), 114x35 (mouth).

Placement follows REFERENCE.md section 3: each box is centred on the bounding box of its point group
of the reference (first) frame's 68 points, then shifted (never shrunk) to lie inside the crop.
"Right" and "left" are the subject's, as in the dlib layout (the right eye is on the image left).
"""

from __future__ import annotations

import numpy as np

from realtime_mer.face.align import STRCN_DELTAS, CropDeltas

Region = tuple[str, int, int, int, int]

PAPER_SIZES: dict[str, tuple[int, int]] = {
    "right_eye_brow": (100, 80),
    "left_eye_brow": (100, 80),
    "nose": (120, 80),
    "right_cheek": (60, 60),
    "left_cheek": (60, 60),
    "mouth": (160, 60),
}

POINT_GROUPS: dict[str, tuple[int, ...]] = {
    "right_eye_brow": (*range(17, 22), *range(36, 42)),
    "left_eye_brow": (*range(22, 27), *range(42, 48)),
    "nose": (*range(27, 36), 39, 42),
    "right_cheek": (1, 2, 3, 4, 31, 40, 41, 48),
    "left_cheek": (12, 13, 14, 15, 35, 46, 47, 54),
    "mouth": tuple(range(48, 68)),
}

REGION_NAMES = tuple(PAPER_SIZES)


def region_sizes(
    size: tuple[int, int], deltas: CropDeltas = STRCN_DELTAS, paper_eye_distance: float = 100.0
) -> dict[str, tuple[int, int]]:
    """Region name -> ``(width, height)`` in pixels of a crop of ``size`` (w, h) cut with ``deltas``."""
    px_per_eye_x = size[0] / deltas[3]
    px_per_eye_y = size[1] / deltas[2]
    return {
        name: (
            min(size[0], max(1, round(w / paper_eye_distance * px_per_eye_x))),
            min(size[1], max(1, round(h / paper_eye_distance * px_per_eye_y))),
        )
        for name, (w, h) in PAPER_SIZES.items()
    }


def regions(
    points68: np.ndarray,
    size: tuple[int, int] = (128, 128),
    deltas: CropDeltas = STRCN_DELTAS,
    paper_eye_distance: float = 100.0,
) -> list[Region]:
    """The six regions ``(name, x0, y0, x1, y1)`` (integer crop pixels, x1/y1 exclusive).

    Args:
        points68: ``(68, 2)`` points of the track's reference frame in crop pixels
            (``AlignedFace.points68`` of its first frame).
        size: the crop's ``(width, height)``.
        deltas: the crop constants the crop was cut with (they set its eye distance in pixels).
        paper_eye_distance: the eye distance, in the paper's pixels, its region sizes refer to.
    """
    pts = np.asarray(points68, dtype=np.float64)
    if pts.shape != (68, 2):
        raise ValueError(f"expected (68, 2) points, got {pts.shape}")
    out: list[Region] = []
    for name, (w, h) in region_sizes(size, deltas, paper_eye_distance).items():
        group = pts[list(POINT_GROUPS[name])]
        cx, cy = (group.min(axis=0) + group.max(axis=0)) / 2
        x0 = int(np.clip(round(cx - w / 2), 0, size[0] - w))
        y0 = int(np.clip(round(cy - h / 2), 0, size[1] - h))
        out.append((name, x0, y0, x0 + w, y0 + h))
    return out


def crop_regions(image: np.ndarray, boxes: list[Region]) -> dict[str, np.ndarray]:
    """Region name -> view ``(h, w, ...)`` of ``image`` (no copy) for boxes from :func:`regions`."""
    return {name: image[y0:y1, x0:x1] for name, x0, y0, x1, y1 in boxes}
