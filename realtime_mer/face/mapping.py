"""The 478 MediaPipe face-mesh points mapped to the 68-point iBUG/dlib layout the papers use.

How the table was chosen: every dlib point is taken from the MediaPipe contour that carries the same
feature (face oval, brow upper edge, nose ridge, nostrils, eye lids, outer and inner lips), and each
subject-right index is paired with its mirror index on the subject's left, so the map is left-right
symmetric. Along a contour the indices were placed where dlib puts its points: eye and mouth corners
at the corner indices, lid points at about 1/3 and 2/3 of the lid, the 17 jaw points spread by arc
length from the ear at eye height (127 / 356) over the chin (152), checked against the point heights
of a frontal face (evm_face.mp4: jaw 0 near the eye line, 2 near the nose, 4 near the mouth). The
order is verified on real faces by the geometric tests in tests/test_face_mapping.py.
"""

from __future__ import annotations

import numpy as np

# 0-based dlib index -> MediaPipe face-mesh index. "Right" is the subject's right (image left).
MP_TO_68 = np.array(
    [
        # 0-16 jaw, image left -> chin (8) -> image right
        127,
        234,
        93,
        132,
        58,
        136,
        150,
        176,
        152,
        400,
        379,
        365,
        288,
        361,
        323,
        454,
        356,
        # 17-21 right brow (outer -> inner), 22-26 left brow (inner -> outer)
        70,
        63,
        105,
        66,
        107,
        336,
        296,
        334,
        293,
        300,
        # 27-30 nose ridge (nasion -> tip), 31-35 nostrils (image left -> right, 33 subnasale)
        168,
        197,
        5,
        1,
        98,
        97,
        2,
        326,
        327,
        # 36-41 right eye: outer corner, upper lid x2, inner corner, lower lid x2
        33,
        160,
        158,
        133,
        153,
        144,
        # 42-47 left eye: inner corner, upper lid x2, outer corner, lower lid x2
        362,
        385,
        387,
        263,
        373,
        380,
        # 48-59 outer lip: right corner, upper lip -> left corner (54), lower lip back
        61,
        40,
        37,
        0,
        267,
        270,
        291,
        321,
        314,
        17,
        84,
        91,
        # 60-67 inner lip: right corner, upper -> left corner (64), lower back
        78,
        81,
        13,
        311,
        308,
        402,
        14,
        178,
    ],
    dtype=np.intp,
)
assert MP_TO_68.shape == (68,)


def to68(landmarks: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The 68 iBUG points of one face.

    Args:
        landmarks: ``(478, 2+)`` MediaPipe points (x, y first), any float dtype.
        out: optional ``(68, 2)`` float32 array to write into.

    Returns:
        ``(68, 2)`` float32 x, y in the units of ``landmarks`` (pixels for Landmarker output).
    """
    if landmarks.ndim != 2 or landmarks.shape[0] < 468 or landmarks.shape[1] < 2:
        raise ValueError(f"expected (478, 2 or 3) MediaPipe landmarks, got shape {landmarks.shape}")
    if out is None:
        out = np.empty((68, 2), dtype=np.float32)
    out[:] = landmarks[MP_TO_68, :2]
    return out
