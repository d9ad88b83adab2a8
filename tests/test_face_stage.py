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
    return run(FaceConfig(model_path=str(face_model), landmark_every=1), evm)


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


# ---------------------------------------------------------------- registration between landmark frames


def _texture(rng: np.random.Generator, h: int, w: int, pad: int = 20) -> np.ndarray:
    return cv2.GaussianBlur(rng.random((h + 2 * pad, w + 2 * pad)).astype(np.float32), (0, 0), 2.5)


@pytest.mark.parametrize("size", [(128, 128), (96, 112), (127, 127)])
def test_phase_correlator_matches_opencv(size):
    """Same shift and response as cv2.phaseCorrelate (the reference's spectrum kept, no allocation)."""
    import tracemalloc

    from realtime_mer.face.phase import PhaseCorrelator

    w, h = size
    rng = np.random.default_rng(w)
    win = cv2.createHanningWindow((w, h), cv2.CV_32F)
    for _ in range(10):
        tex = _texture(rng, h, w)
        ref = np.ascontiguousarray(tex[20 : 20 + h, 20 : 20 + w] * win)
        sx, sy = rng.uniform(-6, 6, 2)
        cur = cv2.warpAffine(tex, np.float32([[1, 0, -20 - sx], [0, 1, -20 - sy]]), (w, h)) * win
        pc = PhaseCorrelator((w, h))
        pc.set_reference(ref)
        (dx, dy), response = pc.shift(cur)
        (ox, oy), o_response = cv2.phaseCorrelate(ref, cur)
        assert abs(dx - ox) < 2e-3 and abs(dy - oy) < 2e-3, ((dx, dy), (ox, oy))
        assert abs(response - o_response) < 0.01
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for _ in range(20):
        pc.shift(cur)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    assert peak < 1024, f"{peak} bytes allocated per correlation"


def test_phase_correlator_on_odd_sizes_reads_no_half_pixel():
    """OpenCV's quadrant swap reads odd DFT sizes half a pixel off; the circular reading does not."""
    from realtime_mer.face.phase import PhaseCorrelator

    w, h = 75, 45  # DFT sizes 75 and 45: odd
    rng = np.random.default_rng(1)
    tex = _texture(rng, h, w)
    win = cv2.createHanningWindow((w, h), cv2.CV_32F)
    ref = np.ascontiguousarray(tex[20 : 20 + h, 20 : 20 + w] * win)
    pc = PhaseCorrelator((w, h))
    pc.set_reference(ref)
    (dx, dy), _ = pc.shift(ref)
    assert abs(dx) < 1e-6 and abs(dy) < 1e-6
    (ox, oy), _ = cv2.phaseCorrelate(ref, ref)
    assert abs(ox - 0.5) < 1e-6 and abs(oy - 0.5) < 1e-6  # what this replaces
    cur = cv2.warpAffine(tex, np.float32([[1, 0, -22.0], [0, 1, -17.0]]), (w, h)) * win
    (dx, dy), _ = pc.shift(cur)
    (ox, oy), _ = cv2.phaseCorrelate(ref, cur)
    assert abs(dx - (ox - 0.5)) < 2e-3 and abs(dy - (oy - 0.5)) < 2e-3


@pytest.mark.realdata
@pytest.mark.parametrize("every", [2, 3])
def test_landmarks_every_few_frames_stay_sub_pixel(evm, face_model, every):
    """The registered crops between landmark frames are as well aligned as the landmark frames'."""
    outs = run(FaceConfig(model_path=str(face_model), landmark_every=every), evm)
    assert all(len(out) == 1 for out in outs)
    pc, ecc = registration_errors([out[0][1].image for out in outs])
    print(
        f"\nlandmark_every={every} registration, px: phase corr median {np.median(pc):.3f} max {pc.max():.3f}; "
        f"ECC median {np.median(ecc):.3f} max {ecc.max():.3f}"
    )
    assert pc.max() <= 0.5 and ecc.max() <= 0.5
    assert np.median(pc) <= 0.1 and np.median(ecc) <= 0.1


@pytest.mark.realdata
def test_crops_go_into_the_buffers_given(evm, face_model):
    """``into`` names where each crop is written (a ring slot): the same crops, no new arrays."""
    cfg = FaceConfig(model_path=str(face_model), landmark_every=3)
    stream = evm[:9]
    plain = run(cfg, stream)
    buffers = [np.zeros((128, 128, 3), np.uint8) for _ in stream]
    with FaceStage(cfg) as stage:
        given = [stage.process(f, lambda track, i=i: buffers[i]) for i, f in enumerate(stream)]
    for i, (a, b) in enumerate(zip(plain, given)):
        ((_, fa),), ((_, fb),) = a, b
        assert fb.image is buffers[i]
        np.testing.assert_array_equal(fa.image, fb.image)
        np.testing.assert_allclose(fa.points68, fb.points68, atol=1e-3)
    with FaceStage(cfg) as stage, pytest.raises(ValueError, match="C-contiguous uint8"):
        stage.process(stream[0], lambda track: np.zeros((64, 64, 3), np.uint8))


@pytest.mark.realdata
def test_registered_frames_allocate_no_image(evm, face_model):
    """Between landmark frames, registering a crop into a given buffer allocates no image-sized array
    (a crop is 49,152 bytes, a float grey crop 65,536)."""
    import tracemalloc

    with FaceStage(FaceConfig(model_path=str(face_model), landmark_every=1000)) as stage:
        buf = np.empty((128, 128, 3), np.uint8)
        for f in evm[:5]:
            stage.process(f, lambda track: buf)
        aligner = next(iter(stage._tracks.values())).aligner
        tracemalloc.start()
        peaks = []
        for f in evm[5:35]:
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            aligner.align(f.image, None, buf)
            peaks.append(tracemalloc.get_traced_memory()[1] - base)
        tracemalloc.stop()
    assert max(peaks) < 4096, f"registration allocated up to {max(peaks)} bytes a frame"
