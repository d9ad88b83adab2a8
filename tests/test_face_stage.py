"""The face stage on real footage: a face in every frame, sub-pixel registration, ids, ROIs."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from realtime_mer.config import ConfigError, from_mapping
from realtime_mer.face import FaceConfig, FaceStage, crop_regions, regions
from realtime_mer.face.align import eye_centres
from realtime_mer.face.regions import REGION_NAMES, region_sizes
from realtime_mer.types import AlignedFace, FaceObs, Frame


def frames(path: Path, n: int | None = None) -> list[Frame]:
    """Up to ``n`` decoded frames of a real video as ``Frame`` records (PyAV, BGR)."""
    out = []
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if n is not None and i >= n:
                break
            out.append(Frame(path.name, i, float(f.time), 0.0, f.to_ndarray(format="bgr24")))
    return out


def run(config: FaceConfig, stream: list[Frame]) -> list[list[tuple[FaceObs, AlignedFace]]]:
    with FaceStage(config) as stage:
        return [stage.process(f) for f in stream]


def registration_errors(crops: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Shift (px) of every crop against the first: phase correlation of Hann-windowed grey crops, and ECC."""
    h, w = crops[0].shape[:2]
    win = cv2.createHanningWindow((w, h), cv2.CV_32F)
    grey = [cv2.cvtColor(c, cv2.COLOR_BGR2GRAY).astype(np.float32) for c in crops]
    ref = grey[0] * win
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-5)
    pc, ecc = [], []
    for g in grey[1:]:
        pc.append(np.hypot(*cv2.phaseCorrelate(ref - ref.mean(), g * win - (g * win).mean())[0]))
        eye = np.eye(2, 3, dtype=np.float32)
        _, m = cv2.findTransformECC(grey[0], g, eye, cv2.MOTION_TRANSLATION, criteria, None, 3)
        ecc.append(np.hypot(m[0, 2], m[1, 2]))
    return np.array(pc), np.array(ecc)


@pytest.fixture(scope="module")
def evm(shared_data) -> list[Frame]:
    return frames(shared_data / "video" / "evm_face.mp4")


@pytest.fixture(scope="module")
def evm_every_frame(evm, face_model):
    return run(FaceConfig(model_path=str(face_model)), evm)


@pytest.mark.realdata
def test_every_frame_has_the_face_registered_to_the_reference(evm, evm_every_frame):
    assert len(evm) == 301
    assert all(len(out) == 1 for out in evm_every_frame), "a frame without a face"
    assert {out[0][0].track for out in evm_every_frame} == {0}
    obs, first = evm_every_frame[0][0]
    assert obs.landmarks.shape == (478, 3) and obs.points68.shape == (68, 2)
    assert first.image.shape == (128, 128, 3) and first.image.dtype == np.uint8
    assert first.transform.shape == (2, 3) and first.transform.dtype == np.float32
    assert [out[0][1].index for out in evm_every_frame] == list(range(301))
    pc, ecc = registration_errors([out[0][1].image for out in evm_every_frame])
    print(
        f"\nevm_face registration, px: phase corr median {np.median(pc):.3f} max {pc.max():.3f}; "
        f"ECC median {np.median(ecc):.3f} max {ecc.max():.3f}"
    )
    assert pc.max() <= 0.5 and ecc.max() <= 0.5


@pytest.mark.realdata
def test_landmarks_every_fifth_frame(evm, evm_every_frame, face_model):
    outs = run(FaceConfig(model_path=str(face_model), landmark_every=5), evm)
    assert all(len(out) == 1 for out in outs)
    pc, ecc = registration_errors([out[0][1].image for out in outs])
    print(
        f"\nlandmark_every=5 registration, px: phase corr median {np.median(pc):.3f} max {pc.max():.3f}; "
        f"ECC median {np.median(ecc):.3f} max {ecc.max():.3f}"
    )
    assert pc.max() <= 0.5 and ecc.max() <= 0.5
    # landmarks carried over to the frames between agree with MediaPipe's own on those frames
    gap = [np.abs(a[0][0].points68 - b[0][0].points68).mean() for a, b in zip(outs, evm_every_frame)]
    assert max(gap) < 3.0


@pytest.mark.realdata
def test_two_faces_get_two_stable_ids(shared_data, face_model):
    left = frames(shared_data / "video" / "evm_face.mp4", 8)
    right = frames(shared_data / "video" / "smile_d19.mp4", 8)
    stream = []
    for i, (a, b) in enumerate(zip(left, right)):
        pad = np.zeros((a.image.shape[0], b.image.shape[1], 3), np.uint8)
        pad[: b.image.shape[0]] = b.image
        stream.append(Frame("two", i, a.t, 0.0, np.hstack([a.image, pad])))
    outs = run(FaceConfig(model_path=str(face_model), num_faces=2), stream)
    split = left[0].image.shape[1]
    sides = []
    for out in outs:
        assert len(out) == 2
        by_side = {obs.bbox[0] >= split: obs.track for obs, _ in out}
        assert len(by_side) == 2
        sides.append(by_side)
        assert {a.track for _, a in out} == {o.track for o, _ in out}
    assert sides[0][False] != sides[0][True]
    assert all(s == sides[0] for s in sides), f"ids changed: {sides}"


@pytest.mark.realdata
def test_reset_reference(shared_data, face_model):
    stream = frames(shared_data / "video" / "smile_d19.mp4", 6)
    with FaceStage(FaceConfig(model_path=str(face_model), landmark_every=3)) as stage:
        outs = [stage.process(f) for f in stream[:4]]
        tid = outs[0][0][0].track
        with pytest.raises(KeyError, match="no live track"):
            stage.reset_reference(tid + 1)
        stage.reset_reference(tid)
        ((obs, aligned),) = stage.process(stream[4])  # landmarks run although 4 % 3 != 0
    # a reference frame is cut from its own eyes: they sit exactly at the STRCN positions
    cl, cr = eye_centres(aligned.points68)
    np.testing.assert_allclose(cl, [0.4 / 1.8 * 128, 0.6 / 2.2 * 128], atol=1e-3)
    np.testing.assert_allclose(cr, [1.4 / 1.8 * 128, 0.6 / 2.2 * 128], atol=1e-3)
    assert aligned.index == 4 and aligned.track == tid


@pytest.mark.realdata
@pytest.mark.parametrize("size", [(128, 128), (96, 112)])
def test_six_regions_on_a_real_crop(shared_data, face_model, size):
    stream = frames(shared_data / "video" / "smile_d19.mp4", 1)
    ((_, aligned),) = run(FaceConfig(model_path=str(face_model), size=size), stream)[0]
    boxes = regions(aligned.points68, size)
    assert [b[0] for b in boxes] == list(REGION_NAMES)
    box = {name: (x0, y0, x1, y1) for name, x0, y0, x1, y1 in boxes}
    sizes = region_sizes(size)
    for name, (x0, y0, x1, y1) in box.items():
        assert 0 <= x0 < x1 <= size[0] and 0 <= y0 < y1 <= size[1]
        assert (x1 - x0, y1 - y0) == sizes[name]
    p = aligned.points68

    def inside(points, b):
        return np.all((points[:, 0] >= b[0]) & (points[:, 0] <= b[2]) & (points[:, 1] >= b[1]) & (points[:, 1] <= b[3]))

    assert inside(p[36:42], box["right_eye_brow"]) and inside(p[42:48], box["left_eye_brow"])
    assert inside(p[48:68], box["mouth"]) and inside(p[30:31], box["nose"])
    centre = {n: ((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for n, b in box.items()}
    assert centre["right_eye_brow"][0] < centre["nose"][0] < centre["left_eye_brow"][0]
    assert centre["right_cheek"][0] < centre["nose"][0] < centre["left_cheek"][0]
    assert centre["right_eye_brow"][1] < centre["nose"][1] < centre["mouth"][1]
    crops = crop_regions(aligned.image, boxes)
    assert crops["mouth"].shape == (sizes["mouth"][1], sizes["mouth"][0], 3)


def test_config_from_mapping_validates():
    cfg = from_mapping(FaceConfig, {"size": [96, 112], "landmark_every": 3, "deltas": [0.4, 0.6, 2.2, 1.8]})
    assert cfg.size == (96, 112) and cfg.landmark_every == 3
    with pytest.raises(ConfigError, match="landmark_every"):
        from_mapping(FaceConfig, {"landmark_every": 0})
    with pytest.raises(ConfigError, match="size"):
        from_mapping(FaceConfig, {"size": [128]})
    with pytest.raises(ConfigError, match="unknown key"):
        from_mapping(FaceConfig, {"landmarks_every": 2})
