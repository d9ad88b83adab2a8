"""Eye-centred STRCN crop geometry, similarity fits, and image refinement of the registration."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from realtime_mer.face.align import (
    RIGID_POINTS,
    STRCN_DELTAS,
    TrackAligner,
    apply,
    compose,
    crop_transform,
    rigid_weight,
    similarity,
)
from realtime_mer.face.mapping import MP_TO_68, to68


def eyes68(cl, cr) -> np.ndarray:
    """68 points whose eye rings (36-41, 42-47) are centred on ``cl`` and ``cr``."""
    p = np.zeros((68, 2))
    ring = np.array([[-10, 0], [-4, -3], [4, -3], [10, 0], [4, 3], [-4, 3]], float)
    p[36:42] = ring + cl
    p[42:48] = ring + cr
    return p


@pytest.mark.parametrize("angle", [0.0, 17.0, -40.0])
@pytest.mark.parametrize("size", [(128, 128), (64, 48)])
def test_crop_places_the_eyes_by_the_strcn_constants(angle, size):
    cl = np.array([210.0, 180.0])
    a = np.deg2rad(angle)
    d = 90.0
    cr = cl + d * np.array([np.cos(a), np.sin(a)])
    m = crop_transform(eyes68(cl, cr), size)
    left, top, height, width = STRCN_DELTAS
    w, h = size
    got = apply(m, np.stack([cl, cr]))
    np.testing.assert_allclose(got[0], [left / width * w, top / height * h], atol=1e-4)
    np.testing.assert_allclose(got[1], [(left + 1) / width * w, top / height * h], atol=1e-4)
    # the crop's far corner is 1.8 d right of (cl - 0.4 d) and 2.2 d below (eye line - 0.6 d)
    u = np.array([np.cos(a), np.sin(a)])
    n = np.array([-np.sin(a), np.cos(a)])
    corner = cl + (width - left) * d * u + (height - top) * d * n
    np.testing.assert_allclose(apply(m, corner[None])[0], [w, h], atol=1e-3)


def test_crop_rejects_a_degenerate_face():
    with pytest.raises(ValueError, match="eye centres coincide"):
        crop_transform(eyes68([5.0, 5.0], [5.0, 5.0]), (128, 128))


def test_similarity_recovers_a_known_map_and_compose_applies_in_order():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 500, (30, 2))
    s, a = 1.3, np.deg2rad(12)
    true = np.array([[s * np.cos(a), -s * np.sin(a), 14.0], [s * np.sin(a), s * np.cos(a), -7.5]])
    np.testing.assert_allclose(similarity(src, apply(true, src)), true, atol=1e-4)
    shift = np.array([[1.0, 0.0, 3.0], [0.0, 1.0, 4.0]])
    np.testing.assert_allclose(apply(compose(shift, true), src), apply(true, src) + [3, 4], atol=1e-3)
    with pytest.raises(ValueError, match="all the same"):
        similarity(np.ones((5, 2)), src[:5])


def test_rigid_points_avoid_brows_and_mouth():
    moving = set(MP_TO_68[17:27].tolist()) | set(MP_TO_68[48:68].tolist())
    assert not moving & set(RIGID_POINTS.tolist())


def ecc_shift(ref: np.ndarray, crop: np.ndarray) -> float:
    """Translation (px) between two BGR crops by ECC: a method independent of the aligner's own."""
    g0, g1 = (cv2.cvtColor(x, cv2.COLOR_BGR2GRAY).astype(np.float32) for x in (ref, crop))
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-5)
    _, w = cv2.findTransformECC(g0, g1, np.eye(2, 3, dtype=np.float32), cv2.MOTION_TRANSLATION, criteria, None, 3)
    return float(np.hypot(w[0, 2], w[1, 2]))


@pytest.mark.realdata
def test_refinement_undoes_a_shift_the_landmarks_missed(shared_data, face_model):
    """Landmarks that did not follow a small move: phase correlation must put the crop back."""
    import av

    from realtime_mer.face.landmarker import Landmarker

    with av.open(str(shared_data / "video" / "smile_d19.mp4")) as c:
        image = next(c.decode(video=0)).to_ndarray(format="bgr24")
    with Landmarker(face_model) as lm:
        (landmarks,) = lm.detect(image, 0)
    plain, refined = TrackAligner(refine=False), TrackAligner(refine=True)
    ref = plain.set_reference(image, landmarks)
    refined.set_reference(image, landmarks)
    moved = cv2.warpAffine(image, np.float32([[1, 0, 1.5], [0, 1, -1.0]]), image.shape[1::-1], flags=cv2.INTER_CUBIC)
    crop, m = plain.align(moved, landmarks)
    expected = np.hypot(*(m[:, :2] @ [1.5, -1.0]))  # the move in crop pixels, about 1.2
    assert ecc_shift(ref, crop) == pytest.approx(expected, abs=0.05)
    assert ecc_shift(ref, refined.align(moved, landmarks)[0]) < 0.15
    assert np.hypot(*refined.last_shift) == pytest.approx(expected, abs=0.15)


def test_align_without_reference_or_landmarks_is_an_error():
    with pytest.raises(RuntimeError, match="no reference"):
        TrackAligner().align(np.zeros((64, 64, 3), np.uint8), None)
    with pytest.raises(ValueError, match="16x16"):
        TrackAligner(size=(8, 8))


@pytest.mark.realdata
def test_refinement_undoes_a_small_rotation_the_landmarks_missed(shared_data, face_model):
    """A 0.6 degree head roll the landmarks did not see: the Gauss-Newton step must turn the crop back."""
    import av

    from realtime_mer.face.landmarker import Landmarker

    with av.open(str(shared_data / "video" / "evm_face.mp4")) as c:
        image = next(c.decode(video=0)).to_ndarray(format="bgr24")
    with Landmarker(face_model) as lm:
        (landmarks,) = lm.detect(image, 0)
    aligner = TrackAligner()
    ref = cv2.cvtColor(aligner.set_reference(image, landmarks), cv2.COLOR_BGR2GRAY).astype(np.float32)
    nose = tuple(float(v) for v in landmarks[1, :2])
    roll = cv2.getRotationMatrix2D(nose, 0.6, 1.0)
    turned = cv2.warpAffine(image, roll, image.shape[1::-1], flags=cv2.INTER_CUBIC)

    def roll_deg(crop):
        g = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY).astype(np.float32)
        criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-6)
        _, w = cv2.findTransformECC(ref, g, np.eye(2, 3, dtype=np.float32), cv2.MOTION_EUCLIDEAN, criteria, None, 3)
        return abs(np.degrees(np.arctan2(w[1, 0], w[0, 0])))

    plain = TrackAligner(refine=False)
    plain.set_reference(image, landmarks)
    assert roll_deg(plain.align(turned, landmarks)[0]) > 0.5
    assert roll_deg(aligner.align(turned, landmarks)[0]) < 0.05


@pytest.mark.realdata
def test_registration_ignores_moving_eyes_and_mouth(shared_data, face_model):
    """Eyes shut and the mouth corners pulled in the frame, landmarks unchanged: the registration,
    which weighs only the rigid face, must not move the crop (whole-crop registration moved it by
    0.1-0.2 px on a blink, lighting up the brows and mouth of the spotter's difference image)."""
    import av

    from realtime_mer.face.landmarker import Landmarker

    with av.open(str(shared_data / "video" / "smile_d19.mp4")) as c:
        image = next(c.decode(video=0)).to_ndarray(format="bgr24")
    with Landmarker(face_model) as lm:
        (landmarks,) = lm.detect(image, 0)
    aligner = TrackAligner()
    aligner.set_reference(image, landmarks)
    p68 = to68(landmarks)
    moved = image.copy()
    for idx, dy in ((slice(36, 42), 3), (slice(42, 48), 3), (slice(48, 60), -2)):  # lids down, lips up
        x0, y0 = np.floor(p68[idx].min(axis=0)).astype(int) - 4
        x1, y1 = np.ceil(p68[idx].max(axis=0)).astype(int) + 4
        moved[y0 + dy : y1 + dy, x0:x1] = image[y0:y1, x0:x1]
    aligner.align(moved, landmarks)
    assert np.hypot(*aligner.last_shift) < 0.05

    w = rigid_weight(apply(aligner.ref_transform, p68), aligner.size)
    crop68 = apply(aligner.ref_transform, p68)

    def at(points):
        xy = np.round(crop68[points]).astype(int)
        inside = (xy >= 0).all(axis=1) & (xy < aligner.size).all(axis=1)
        return w[xy[inside, 1], xy[inside, 0]]

    assert w.shape == aligner.size[::-1] and w.min() >= 0 and w.max() <= 1
    assert at([*range(17, 27), *range(36, 48), *range(48, 68)]).max() < 0.1  # brows, eyes, lips
    assert at([27, 28, 29]).min() > 0.3  # the nose ridge carries the registration
