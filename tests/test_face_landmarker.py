"""MediaPipe landmarks on real footage, and the order of the 478 -> 68 mapping."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from realtime_mer.face.landmarker import Landmarker
from realtime_mer.face.mapping import MP_TO_68, to68


def decode(path: Path, n: int, step: int = 1) -> list[np.ndarray]:
    """The first ``n * step`` frames of a video, every ``step``-th, as BGR arrays."""
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="bgr24") for i, f in zip(range(n * step), c.decode(video=0))]
    return frames[::step]


def test_table_is_68_distinct_mesh_points():
    assert MP_TO_68.shape == (68,)
    assert len(set(MP_TO_68.tolist())) == 68
    assert MP_TO_68.min() >= 0 and MP_TO_68.max() < 468


def test_to68_rejects_wrong_shapes():
    with pytest.raises(ValueError, match="478"):
        to68(np.zeros((68, 2)))
    out = np.empty((68, 2), np.float32)
    pts = np.arange(478 * 3, dtype=np.float32).reshape(478, 3)
    assert to68(pts, out=out) is out
    np.testing.assert_array_equal(out, pts[MP_TO_68, :2])


def test_bad_arguments(face_model):
    with pytest.raises(ValueError, match="num_faces"):
        Landmarker(face_model, num_faces=0)
    with Landmarker(face_model) as lm, pytest.raises(ValueError, match="uint8 BGR"):
        lm.detect(np.zeros((64, 64), np.uint8), 0)
    with pytest.raises(RuntimeError, match="closed"):
        lm.detect(np.zeros((64, 64, 3), np.uint8), 1)
    lm.close()  # twice is fine


def _ring_in_order(x: np.ndarray, y: np.ndarray, ring: list[int], tol: float) -> bool:
    """A lid or lip ring: left corner, upper points left -> right, right corner, lower points back.

    x must rise along the upper half and fall along the lower half; each upper point lies above
    (up to ``tol``, for closed eyes and lips) the lower point below it.
    """
    n = len(ring) // 2
    upper, lower = ring[: n + 1], ring[n:] + ring[:1]
    upper_above = all(y[u] <= y[v] + tol for u, v in zip(upper[1:n], lower[n - 1 : 0 : -1]))
    return bool(np.all(np.diff(x[upper]) > 0) and np.all(np.diff(x[lower]) < 0) and upper_above)


def assert_dlib_order(p: np.ndarray) -> None:
    """Geometric relations of the iBUG 68-point order on a frontal face, in the eye-levelled frame."""
    v = p[42:48].mean(0) - p[36:42].mean(0)
    d = np.hypot(*v)  # eye distance
    c, s = v / d
    q = p @ np.array([[c, -s], [s, c]])  # rotate so the eye line is horizontal (head roll removed)
    x, y = q[:, 0], q[:, 1]
    jaw = np.arctan2(y[:17] - y[30], x[:17] - x[30])
    jaw[jaw < -np.pi / 2] += 2 * np.pi
    assert np.all(np.diff(jaw) < 0)  # jaw sweeps image left -> chin -> image right around the nose tip
    assert np.all(np.hypot(x[:17] - x[30], y[:17] - y[30]) > 0.5 * d)  # ... on the face outline
    assert x[0] < x[17] and x[16] > x[26]  # jaw ends outside the brows
    assert np.argmax(y[:17]) in (7, 8, 9) and np.argmax(y) in (7, 8, 9)  # chin lowest
    assert np.all(np.diff(x[17:22]) > 0) and np.all(np.diff(x[22:27]) > 0)  # brows left -> right
    assert x[21] < x[22] and y[17:27].max() < y[36:48].min()  # brows apart, above the eyes
    assert np.all(np.diff(y[27:31]) > 0) and y[27] < y[36:48].max()  # nose ridge from eye height to tip
    assert x[39] < x[27] < x[42] and x[39] < x[28] < x[42]  # ridge between the inner eye corners
    assert np.all(np.diff(x[31:36]) > 0) and y[31:36].min() > y[29] and y[33] > y[30]  # nostrils: left -> right, low
    assert y[31:36].max() < y[49:54].min()  # nostrils above the upper lip
    assert x[36] < x[39] < x[42] < x[45]  # eye corners
    for ring in (range(36, 42), range(42, 48), range(48, 60), range(60, 68)):
        assert _ring_in_order(x, y, list(ring), 0.03 * d), f"points {ring} are out of order"
    assert x[48] == x[48:68].min() and x[54] == x[48:68].max()  # mouth corners
    assert y[51] < y[62] <= y[66] + 0.02 * d and y[66] < y[57]  # lips top -> bottom in the middle
    assert y[48:68].min() > y[33] and y[48:68].max() < y[6:11].min()  # mouth between nose and chin
    assert x[54] - x[48] < 1.2 * d  # the mouth corners are not jaw points


@pytest.mark.realdata
@pytest.mark.parametrize("name", ["smile_d19.mp4", "evm_face.mp4", "frown_surprise_d3.mp4"])
def test_68_point_order_on_real_faces(face_model, shared_data, name):
    frames = decode(shared_data / "video" / name, 12, step=20)
    with Landmarker(face_model) as lm:
        for i, image in enumerate(frames):
            faces = lm.detect(image, i * 667)
            assert len(faces) == 1, f"{name} frame {i * 20}: {len(faces)} faces"
            pts = faces[0]
            assert pts.shape == (478, 3) and pts.dtype == np.float32
            h, w = image.shape[:2]
            assert np.all(np.abs(pts[:, :2].mean(0) - (w / 2, h / 2)) < (w / 2, h / 2))  # pixels, not [0, 1]
            assert_dlib_order(to68(pts))


@pytest.mark.realdata
def test_repeated_timestamps_are_bumped(face_model, shared_data):
    frames = decode(shared_data / "video" / "smile_d19.mp4", 3)
    with Landmarker(face_model) as lm:
        for image in frames:  # all at t = 5 ms: MediaPipe would reject the 2nd without the bump
            assert len(lm.detect(image, 5)) == 1
        assert len(lm.detect(frames[0], 0)) == 1  # going back in time too


def test_landmarkers_built_at_once_in_threads_leave_stderr_alone(face_model):
    """Streams that restart together build their landmarkers at once; stderr (where the logs go)
    must still be the process's own afterwards, not /dev/null."""
    import os
    import threading

    before = os.fstat(2)
    made: list = []
    threads = [threading.Thread(target=lambda: made.append(Landmarker(face_model))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for lm in made:
        lm.close()
    after = os.fstat(2)
    assert len(made) == 4 and (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
