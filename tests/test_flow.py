"""Optical flow, strain and the papers' model inputs, on images with a known motion."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from realtime_mer import flow as F
from realtime_mer.config import ConfigError, from_mapping


def texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """``(h, w)`` float32 in [0, 1]: blurred noise, textured at every scale a face crop has."""
    n = cv2.GaussianBlur(np.random.default_rng(seed).random((h, w)).astype(np.float32), (0, 0), 2.0)
    return (n - n.min()) / (n.max() - n.min())


def warp(img: np.ndarray, dx: float, dy: float, scale: float = 1.0, margin: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """``(a, b)``: the centre of ``img`` and of ``img`` moved by ``p -> scale * (p - c) + c + (dx, dy)``.

    The margin is cropped so that no border artefact of the warp enters either image.
    """
    h, w = img.shape[:2]
    cx, cy = w / 2, h / 2
    m = np.float32([[scale, 0, dx + (1 - scale) * cx], [0, scale, dy + (1 - scale) * cy]])
    b = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    return img[margin:-margin, margin:-margin], b[margin:-margin, margin:-margin]


def to_bgr8(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.round(img * 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)


def interior_mean(flow: np.ndarray, m: int = 8) -> np.ndarray:
    return flow[m:-m, m:-m].reshape(-1, flow.shape[-1]).mean(axis=0)


# ---------------------------------------------------------------- flow


@pytest.mark.parametrize("method", ["dis", "tvl1", "farneback"])
@pytest.mark.parametrize("shift", [(0.5, 0.0), (1.0, -0.5), (1.5, 2.0)])
def test_translation_recovered(method, shift):
    a, b = warp(texture(96, 96), *shift)
    for x, y in ((a, b), (to_bgr8(a), to_bgr8(b))):  # float grey in [0, 1] and uint8 BGR
        flow = F.compute_flow(x, y, method)
        assert flow.shape == (64, 64, 2) and flow.dtype == np.float32
        np.testing.assert_allclose(interior_mean(flow), shift, atol=0.15)


def test_mixed_input_types_agree():
    a, b = warp(texture(96, 96), 0.5, 1.0)
    for method in ("dis", "tvl1", "farneback"):
        ref = F.compute_flow(to_bgr8(a), to_bgr8(b), method)
        mixed = F.compute_flow(to_bgr8(a), b, method)  # uint8 BGR onset, float grey apex
        assert np.abs(interior_mean(mixed) - interior_mean(ref)).max() < 0.02


def test_no_motion_gives_zero_flow():
    a = to_bgr8(texture(64, 64))
    for method in ("dis", "tvl1", "farneback"):  # Farneback's polynomial fit drifts near the border
        assert np.abs(F.compute_flow(a, a.copy(), method)[8:-8, 8:-8]).max() < 0.01


def test_out_buffer_written_in_place():
    a, b = warp(texture(80, 80), 1.0, 0.0)
    out = np.zeros((48, 48, 2), np.float32)
    for method in ("dis", "tvl1", "farneback"):
        out[:] = 0
        res = F.compute_flow(a, b, method, out=out)
        assert res is out and abs(out[..., 0].mean() - 1.0) < 0.15
    with pytest.raises(F.FlowInputError, match="out must be"):
        F.compute_flow(a, b, out=np.zeros((10, 10, 2), np.float32))


def test_buffered_and_unbuffered_calls_alternate_across_sizes():
    """OpenCV 5.0's DIS segfaulted on exactly this pattern when handed the caller's buffer."""
    tex = texture(96, 96)
    for method in ("dis", "tvl1", "farneback"):
        for i, s in enumerate((40, 64, 33, 72, 48, 56)):
            a, b = tex[:s, :s], tex[1 : s + 1, :s]  # b is a moved up by one row: v = -1
            out = np.empty((s, s, 2), np.float32) if i % 2 else None
            flow = F.compute_flow(a, b, method, out=out)
            assert flow.shape == (s, s, 2) and abs(interior_mean(flow)[1] + 1) < 0.15
            del out, flow


def test_cached_estimator_matches_fresh_one_after_other_sizes():
    """DIS adapts its scales to the first small image it sees; that must not leak into other sizes."""
    a, b = warp(texture(160, 160), 0.7, -0.3)
    small_a, small_b = cv2.resize(a, (40, 40)), cv2.resize(b, (40, 40))
    for method in ("dis", "tvl1", "farneback"):
        reused = F.FlowEstimator(method)
        reused(small_a, small_b)
        np.testing.assert_array_equal(reused(a, b), F.FlowEstimator(method)(a, b))


def test_estimator_cached_per_thread():
    e = F.estimator("tvl1")
    assert F.estimator("tvl1", "fast") is e and F.estimator("tvl1", "default") is not e
    other = []
    t = threading.Thread(target=lambda: other.append(F.estimator("tvl1")))
    t.start()
    t.join()
    assert other[0] is not e and other[0].preset == "fast"


def test_bad_inputs_have_clear_errors():
    a = np.zeros((60, 60), np.uint8)
    with pytest.raises(F.FlowInputError, match="differ in size"):
        F.compute_flow(a, np.zeros((60, 61), np.uint8))
    with pytest.raises(F.FlowInputError, match=r"\[0, 1\]"):
        F.compute_flow(np.full((8, 8), 200.0, np.float32), np.zeros((8, 8), np.float32))
    with pytest.raises(F.FlowInputError, match="dtype int32"):
        F.compute_flow(a.astype(np.int32), a.astype(np.int32))
    with pytest.raises(F.FlowInputError, match=r"\(H, W, 3\) BGR"):
        F.compute_flow(np.zeros((8, 8, 2), np.uint8), np.zeros((8, 8, 2), np.uint8))
    with pytest.raises(F.FlowInputError, match="unknown flow method 'lk'"):
        F.compute_flow(a, a, "lk")
    with pytest.raises(F.FlowInputError, match="unknown dis preset 'slow'"):
        F.compute_flow(a, a, "dis", "slow")


def test_config():
    cfg = from_mapping(F.FlowConfig, {"method": "tvl1", "preset": "default", "map_size": [40, 40]})
    assert cfg.map_size == (40, 40) and F.estimator(cfg.method, cfg.preset).preset == "default"
    with pytest.raises(ConfigError, match="unknown farneback preset"):
        from_mapping(F.FlowConfig, {"method": "farneback", "preset": "fast"})
    with pytest.raises(ConfigError, match="normalize: Input should be 'minmax' or 'none'"):
        from_mapping(F.FlowConfig, {"normalize": "zscore"})


# ---------------------------------------------------------------- strain


def linear_flow(h: int, w: int, a: float, b: float, c: float, d: float) -> np.ndarray:
    """u = a x + b y, v = c x + d y (+ a constant translation)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([a * x + b * y + 3.0, c * x + d * y - 1.5], axis=-1)


def test_strain_of_analytic_fields():
    np.testing.assert_allclose(F.optical_strain(linear_flow(20, 30, 0, 0, 0, 0)), 0, atol=1e-6)  # translation
    np.testing.assert_allclose(F.optical_strain(linear_flow(20, 30, 0, -0.1, 0.1, 0)), 0, atol=1e-6)  # rotation
    np.testing.assert_allclose(F.optical_strain(linear_flow(20, 30, 0.05, 0, 0, 0.05)), 0.05 * np.sqrt(2), rtol=1e-5)
    np.testing.assert_allclose(F.optical_strain(linear_flow(20, 30, 0, 0.2, 0, 0)), 0.2 / np.sqrt(2), rtol=1e-5)
    stretch = F.optical_strain(linear_flow(20, 30, 0.03, 0, 0, -0.01))
    np.testing.assert_allclose(stretch, np.hypot(0.03, 0.01), rtol=1e-5)
    out = np.empty((20, 30), np.float32)
    assert F.optical_strain(linear_flow(20, 30, 0.1, 0, 0, 0), out=out) is out
    with pytest.raises(F.FlowInputError, match=r"\(H, W, 2\)"):
        F.optical_strain(np.zeros((20, 30, 3), np.float32))


def test_strain_of_real_flow():
    """Estimated flow of a translated image has ~0 strain; of a 4 % zoom, ~ sqrt(2) * 0.04."""
    tex = texture(160, 160)
    for method in ("tvl1", "dis"):
        shifted = F.optical_strain(F.compute_flow(*warp(tex, 1.0, 0.5), method))[8:-8, 8:-8]
        zoomed = F.optical_strain(F.compute_flow(*warp(tex, 0.0, 0.0, 1.04), method))[8:-8, 8:-8]
        assert np.median(shifted) < 0.02
        assert abs(np.median(zoomed) - 0.04 * np.sqrt(2)) < 0.015


# ---------------------------------------------------------------- RCN and STRCN-G


def test_flow_strain_map_shapes_and_ranges():
    a, b = warp(texture(160, 160), 2.0, -1.0)  # 128x128 crops
    m = F.flow_strain_map(to_bgr8(a), to_bgr8(b))
    assert m.shape == (60, 60, 3) and m.dtype == np.float32
    np.testing.assert_allclose(m.reshape(-1, 3).min(0), 0, atol=1e-6)
    np.testing.assert_allclose(m.reshape(-1, 3).max(0), 1, atol=1e-6)
    raw = F.flow_strain_map(a, b, size=(30, 45), normalize="none")
    assert raw.shape == (30, 45, 3)
    u, v = interior_mean(raw[..., :2], 4)
    assert abs(u - 2.0 * 45 / 128) < 0.1 and abs(v + 1.0 * 30 / 128) < 0.05  # rescaled to the new grid
    assert np.median(raw[..., 2]) < 0.02
    with pytest.raises(F.FlowInputError, match="differ in size"):
        F.flow_strain_map(a, b[:-1])


def test_normalize_map_constant_channel_is_zero():
    m = np.zeros((4, 4, 3), np.float32)
    m[..., 1] = np.arange(16).reshape(4, 4)
    out = F.normalize_map(m.copy())
    assert out[..., 0].max() == 0 and out[..., 1].min() == 0 and out[..., 1].max() == 1
    with pytest.raises(F.FlowInputError, match="unknown normalisation"):
        F.normalize_map(m, "zscore")


def test_resize_flow_scales_vectors():
    flow = np.ones((100, 80, 2), np.float32)
    small = F.resize_flow(flow, (50, 20))
    assert small.shape == (50, 20, 2)
    np.testing.assert_allclose(small[..., 0], 0.25)
    np.testing.assert_allclose(small[..., 1], 0.5)


def test_strcn_g_input():
    a, b = warp(texture(160, 160), 1.0, 0.5)
    x = F.strcn_g_input(to_bgr8(a), to_bgr8(b))
    assert x.shape == (2, 300, 245) and x.dtype == np.float32 and x.flags.c_contiguous
    u, v = x[:, 20:-20, 20:-20].mean(axis=(1, 2))
    assert abs(u - 245 / 128) < 0.3 and abs(v - 0.5 * 300 / 128) < 0.3  # pixels of the 300x245 grid


# ---------------------------------------------------------------- sequences


def test_temporal_interpolate_exact_on_ramps():
    base, slope = np.random.default_rng(1).random((2, 3, 4)).astype(np.float32)
    for t, n in ((7, 30), (30, 7), (2, 5), (5, 5)):
        seq = base + slope * np.arange(t, dtype=np.float32)[:, None, None]
        res = F.temporal_interpolate(seq, n)
        want = base + slope * np.linspace(0, t - 1, n, dtype=np.float32)[:, None, None]
        assert res.shape == (n, 3, 4) and res.dtype == np.float32
        np.testing.assert_allclose(res, want, atol=1e-5)
        np.testing.assert_array_equal(res[[0, -1]], seq[[0, -1]])
    single = F.temporal_interpolate(np.arange(3, dtype=np.uint8)[None], 4)
    np.testing.assert_array_equal(single, np.tile([0, 1, 2], (4, 1)))
    out = np.empty((6, 2), np.float32)
    assert F.temporal_interpolate(np.zeros((3, 2)), 6, out=out) is out
    with pytest.raises(F.FlowInputError, match="length must be a positive integer"):
        F.temporal_interpolate(np.zeros((3, 2)), 0)


def moving_patch_clip(t: int = 12, h: int = 64, w: int = 48) -> np.ndarray:
    """``(t, h, w)`` uint8: a static texture whose block rows 10-20, cols 8-30 brightens over time."""
    clip = np.repeat((texture(h, w)[None] * 120).astype(np.uint8), t, axis=0)
    for i in range(t):
        clip[i, 10:20, 8:30] += np.uint8(10 * i)
    return clip


def test_difference_heatmap_and_mask():
    clip = moving_patch_clip()
    heat = F.difference_heatmap(clip)
    assert heat.shape == (64, 48)
    np.testing.assert_allclose(heat[15, 10], sum(10 * i for i in range(12)) / 255, rtol=1e-5)
    assert heat[40, 40] == 0
    mask = F.top_fraction_mask(heat, 0.05)
    assert mask.sum() == round(0.05 * 64 * 48) and mask[10:20, 8:30].sum() == mask.sum()
    np.testing.assert_allclose(F.difference_heatmap(np.repeat(clip[..., None], 3, -1)), 3 * heat, rtol=1e-6)


def test_strcn_a_input():
    clip = moving_patch_clip()  # already 64x48
    x = F.strcn_a_input(clip)
    d2 = round(0.3 * 64 * 48)
    assert x.shape == (1, d2, 30) and x.dtype == np.float32
    mask = F.top_fraction_mask(F.difference_heatmap(clip))
    assert mask.mean() == pytest.approx(0.3, abs=1e-3)
    np.testing.assert_allclose(x[0, :, 0], clip[0][mask] / 255, rtol=1e-6)  # first column = first frame, raster order
    np.testing.assert_allclose(x[0, :, -1], clip[-1][mask] / 255, rtol=1e-6)
    big = np.stack([cv2.resize(f, (96, 128)) for f in clip])
    colour = F.strcn_a_input(np.repeat(big[..., None], 3, axis=-1))
    assert colour.shape == (3, d2, 30)  # a 128x96 colour clip is resized to 64x48 first
    given = np.zeros((64, 48), bool)
    given[:10, :10] = True
    assert F.strcn_a_input(clip, mask=given, length=12).shape == (1, 100, 12)
    with pytest.raises(F.FlowInputError, match=r"mask must be a \(64, 48\) bool"):
        F.strcn_a_input(clip, mask=np.ones((48, 64), bool))
    with pytest.raises(F.FlowInputError, match=r"\(T, H, W\)"):
        F.strcn_a_input(clip[0])


def test_dtscnn_input_shapes_and_displacement():
    tex = texture(160, 160)
    clip = np.stack([to_bgr8(warp(tex, 0.25 * i, 0.0)[1]) for i in range(9)])  # 9 frames of 128x128, 2 px in all
    a = F.dtscnn_input(clip, 64, method="farneback")
    b = F.dtscnn_input(clip, 128, method="farneback", interpolate="flows")
    assert a.shape == (2, 64, 112, 96) and b.shape == (2, 128, 112, 96) and a.dtype == np.float32
    for x in (a, b):
        total_u = x[0, :, 8:-8, 8:-8].mean(axis=(1, 2)).sum()
        assert abs(total_u - 2.0 * 96 / 128) < 0.2 and abs(x[1].mean(axis=(1, 2)).sum()) < 0.1
    assert F.dtscnn_input(clip[:3], 64).shape == (2, 64, 112, 96)  # dis
    with pytest.raises(F.FlowInputError, match="at least 2 frame"):
        F.dtscnn_input(clip[:1])
    with pytest.raises(F.FlowInputError, match="interpolate must be"):
        F.dtscnn_input(clip, interpolate="nearest")


# ---------------------------------------------------------------- regions

BOXES = [
    ("right_eye", 10, 20, 60, 50),
    ("left_eye", 68, 20, 118, 50),
    ("nose", 45, 45, 83, 85),
    ("right_cheek", 12.4, 60, 42.6, 95),
    ("left_cheek", 86, 60, 116, 95),
    ("mouth", 35, 90, 93, 118),
]


def test_region_crops_paper_sizes():
    crop = to_bgr8(texture(128, 128))
    regions = F.region_crops(crop, BOXES)
    assert list(regions) == [b[0] for b in BOXES]
    for (name, *_), (h, w) in zip(BOXES, F.REGION_SIZES):
        assert regions[name].shape == (3, h, w) and regions[name].dtype == np.float32
    mouth = regions["mouth"]  # 58x28 box into 160x60: fit scales by 60/28 to 124x60, black bars left and right
    assert mouth[:, :, :17].max() == 0 and mouth[:, :, 19:141].min() > 0 and mouth[:, :, 143:].max() == 0
    padded = F.region_crops(crop, BOXES, mode="pad")["mouth"]  # paper: black background, no scaling
    np.testing.assert_allclose(padded[:, 16:44, 51:109], crop[90:118, 35:93].transpose(2, 0, 1) / 255, rtol=1e-6)
    assert padded[:, :16].max() == 0 and padded[:, 44:].max() == 0
    stretched = F.region_crops(crop[..., 0], BOXES, mode="resize")["nose"]
    assert stretched.shape == (1, 80, 120) and stretched.min() > 0


def test_region_sequences():
    clip = np.stack([to_bgr8(texture(128, 128, seed=i)) for i in range(4)])
    seqs = F.region_sequences(clip, BOXES[:2], sizes=[(32, 32), (16, 48)])
    assert seqs["right_eye"].shape == (4, 3, 32, 32) and seqs["left_eye"].shape == (4, 3, 16, 48)
    one = F.region_crops(clip[2], BOXES[:2], [(32, 32), (16, 48)])
    np.testing.assert_allclose(seqs["left_eye"][2], one["left_eye"])
    with pytest.raises(F.FlowInputError, match="six regions"):
        F.region_sequences(clip, BOXES[:2])
    with pytest.raises(F.FlowInputError, match="is empty"):
        F.region_crops(clip[0], [("x", 200, 0, 220, 10)], [(8, 8)])
    with pytest.raises(F.FlowInputError, match="appears twice"):
        F.region_crops(clip[0], [BOXES[0], BOXES[0]], [(8, 8), (8, 8)])


# ---------------------------------------------------------------- real frames


@pytest.mark.realdata
def test_real_casme2_frames(shared_data):
    files = sorted((shared_data / "me_samples" / "casme2_10frames").glob("*.jpg"))
    assert len(files) == 10
    frames = [cv2.imread(str(f)) for f in files]
    assert frames[0].shape == (340, 280, 3)
    for method in ("dis", "tvl1", "farneback"):
        flow = F.compute_flow(frames[0], frames[9], method)
        strain = F.optical_strain(flow)
        assert np.isfinite(flow).all() and np.isfinite(strain).all()
        mag = np.hypot(flow[..., 0], flow[..., 1])
        assert mag.mean() < 1.5 and np.percentile(mag, 99) < 5  # 10 frames at 200 fps: small motion
        assert np.median(strain) < 0.1
    m = F.flow_strain_map(frames[0], frames[9])
    assert m.shape == (60, 60, 3) and np.isfinite(m).all()
