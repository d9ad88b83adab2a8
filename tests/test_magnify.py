"""EVM stage: config, plan (pyramid, gains, coefficients), reference vs Numba, streaming behaviour, CUDA."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
import tracemalloc
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from realtime_mer.config import ConfigError, from_mapping
from realtime_mer.magnify import (
    MagnifyConfig,
    MagnifyError,
    auto_levels,
    coefficient_from_hz,
    hz_from_coefficient,
    make_magnifier,
    make_plan,
)
from realtime_mer.magnify.core import INV255
from realtime_mer.magnify.reference import collapse, laplacian_pyramid, pyr_down, pyr_up, to_planar

ROOT = Path(__file__).resolve().parent.parent


def moving_video(shape: tuple[int, int, int], n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` uint8 frames of a smooth random texture drifting and wobbling by sub-pixel amounts."""
    rng = np.random.default_rng(seed)
    h, w, c = shape
    tex = cv2.GaussianBlur(rng.random((h, w, c)).astype(np.float32), (0, 0), 2.0) * 600.0 - 170.0
    frames = []
    for k in range(n):
        m = np.float32([[1, 0, 0.3 * math.sin(0.9 * k)], [0, 1, 0.1 * k]])
        f = cv2.warpAffine(tex, m, (w, h), borderMode=cv2.BORDER_REFLECT_101).reshape(h, w, c)
        frames.append(np.clip(f + rng.normal(0, 2, f.shape), 0, 255).astype(np.uint8))
    return frames


def both(config: MagnifyConfig, shape: tuple[int, int, int], fps: float = 30.0):
    return (
        make_magnifier(replace(config, backend="reference"), shape, fps),
        make_magnifier(replace(config, backend="numba"), shape, fps),
    )


def assert_close(got: np.ndarray, want: np.ndarray, rel: float = 1e-4) -> None:
    """Max abs difference within ``rel`` of the largest magnitude (the brief's relative error)."""
    err = float(np.max(np.abs(got.astype(np.float64) - want)))
    assert err <= rel * max(float(np.max(np.abs(want))), 1e-12), f"max abs error {err:.3g}"


# ---------------------------------------------------------------- config and plan


def test_config_rejects_bad_values_with_the_key_named():
    with pytest.raises(ValueError, match="low_hz < high_hz"):
        MagnifyConfig(low_hz=5.0, high_hz=1.0)
    with pytest.raises(ValueError, match="levels"):
        MagnifyConfig(levels=1)
    with pytest.raises(ValueError, match="backend"):
        MagnifyConfig(backend="opencl")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="high_hz"):
        from_mapping(MagnifyConfig, {"low_hz": 2.0, "high_hz": 1.0})
    cfg = from_mapping(MagnifyConfig, {"alpha": 20, "levels": None, "color": "luma"})
    assert cfg.alpha == 20.0 and cfg.levels is None and cfg.color == "luma"


def test_coefficients_follow_the_measured_fps_and_invert_mit_r():
    assert hz_from_coefficient(0.4, 30.0) == pytest.approx(2.439, abs=1e-3)
    assert hz_from_coefficient(0.05, 30.0) == pytest.approx(0.2449, abs=1e-4)
    assert coefficient_from_hz(hz_from_coefficient(0.4, 30.0), 30.0) == pytest.approx(0.4, abs=1e-12)
    # The defaults are STRCN's r2 = 0.05, r1 = 0.4 at CASME II's 200 fps.
    cfg = MagnifyConfig()
    assert coefficient_from_hz(cfg.low_hz, 200.0) == pytest.approx(0.05, abs=2e-4)
    assert coefficient_from_hz(cfg.high_hz, 200.0) == pytest.approx(0.4, abs=2e-4)
    with pytest.raises(MagnifyError):
        hz_from_coefficient(1.0, 30.0)


def test_auto_levels_and_band_gains_follow_mit():
    assert auto_levels(128, 128) == 6 and auto_levels(64, 64) == 5 and auto_levels(592, 528) == 8
    cfg = MagnifyConfig(alpha=10.0, lambda_c=16.0, exaggeration=2.0, chrom_attenuation=0.1)
    plan = make_plan(cfg, (128, 128, 3))
    assert plan.sizes.tolist() == [[128, 128], [64, 64], [32, 32], [16, 16], [8, 8], [4, 4]]
    lam_res = math.hypot(128, 128) / 3.0
    for level in range(1, plan.levels - 1):
        lam = lam_res / 2 ** (plan.levels - 1 - level)
        # REFERENCE 5.1: alpha_eff = min(alpha, 2 (lambda (1 + alpha) / lambda_c - 1))
        want = min(10.0, 2.0 * (lam * 11.0 / 16.0 - 1.0))
        assert plan.gains[level, 0] == pytest.approx(want, rel=1e-6)
        assert plan.gains[level, 1:] == pytest.approx([0.1 * want] * 2, rel=1e-6)
    assert not plan.gains[0].any() and not plan.gains[-1].any()  # finest band and residual: 0
    lowpass = make_plan(replace(cfg, amplify_lowpass=True), (128, 128, 3))
    assert lowpass.gains[-1, 0] == 10.0
    with pytest.raises(MagnifyError, match="too deep"):
        make_plan(replace(cfg, levels=7), (128, 128, 3))


@pytest.mark.parametrize("shape", [(128, 128, 3), (37, 50, 3), (19, 17, 3)])
def test_pyramid_matches_opencv_and_reconstructs(shape):
    plan = make_plan(MagnifyConfig(), shape)
    x = np.random.default_rng(0).random((3, *shape[:2])).astype(np.float32)
    down = pyr_down(plan, x, 0)
    cv_down = np.stack([cv2.pyrDown(x[c], borderType=cv2.BORDER_REFLECT_101) for c in range(3)])
    np.testing.assert_allclose(down, cv_down, atol=1e-6)
    up = pyr_up(plan, down, 0)
    cv_up = np.stack([cv2.pyrUp(down[c], dstsize=shape[1::-1]) for c in range(3)])
    inner = up if shape[0] % 2 == 0 and shape[1] % 2 == 0 else up[:, 2:-2, 2:-2]  # OpenCV's odd edges differ
    np.testing.assert_allclose(inner, cv_up if inner is up else cv_up[:, 2:-2, 2:-2], atol=1e-6)
    np.testing.assert_allclose(collapse(plan, laplacian_pyramid(plan, x)), x, atol=1e-6)


# ---------------------------------------------------------------- numba vs reference


@pytest.mark.parametrize(
    "config, shape",
    [
        (MagnifyConfig(), (64, 64, 3)),
        (MagnifyConfig(alpha=30, lambda_c=8, amplify_lowpass=True, chrom_attenuation=1.0, levels=4), (45, 38, 3)),
        (MagnifyConfig(color="luma", clip=False, alpha=20), (40, 56, 3)),
        (MagnifyConfig(color="luma", channel_order="rgb"), (33, 33, 1)),
    ],
)
def test_numba_matches_reference(config, shape):
    ref, fast = both(config, shape)
    for frame in moving_video(shape, 8):
        want = ref.process(frame)
        assert_close(fast.process(frame), want)
    assert np.ptp(want) > 0.1


def test_float_and_uint8_inputs_agree():
    shape = (32, 32, 3)
    a = make_magnifier(MagnifyConfig(alpha=20), shape, 30.0)
    b = make_magnifier(MagnifyConfig(alpha=20), shape, 30.0)
    for frame in moving_video(shape, 5):
        np.testing.assert_allclose(a.process(frame), b.process(frame.astype(np.float32) * INV255), atol=1e-6)


# ---------------------------------------------------------------- streaming behaviour


@pytest.mark.parametrize("backend", ["reference", "numba"])
def test_first_frame_passes_unmodified_and_reset_starts_over(backend):
    shape = (48, 40, 3)
    frames = moving_video(shape, 4)
    m = make_magnifier(MagnifyConfig(alpha=50, backend=backend), shape, 30.0)
    np.testing.assert_array_equal(m.process(frames[0]), frames[0].astype(np.float32) * INV255)
    assert not np.allclose(m.process(frames[3]), frames[3] * INV255, atol=1e-3)  # magnified
    m.reset()
    np.testing.assert_array_equal(m.process(frames[3]), frames[3].astype(np.float32) * INV255)
    luma = make_magnifier(MagnifyConfig(color="luma", backend=backend), shape, 30.0)
    y = to_planar(luma.plan, frames[0])[0]
    np.testing.assert_array_equal(luma.process(frames[0])[:, :, 0], np.clip(y, 0, 1))


@pytest.mark.parametrize("backend", ["reference", "numba"])
def test_constant_video_stays_constant(backend):
    shape = (64, 48, 3)
    frame = moving_video(shape, 1)[0]
    cfg = MagnifyConfig(alpha=100, amplify_lowpass=True, chrom_attenuation=1.0, backend=backend)
    m = make_magnifier(cfg, shape, 30.0)
    for _ in range(20):
        out = m.process(frame)
    np.testing.assert_allclose(out, frame * INV255, atol=1e-5)  # float32 rounding x alpha: 1/400 grey level


def test_fps_change_rederives_coefficients_and_keeps_state():
    shape = (32, 32, 3)
    frames = moving_video(shape, 10)
    cfg = MagnifyConfig(alpha=20, low_hz=0.5, high_hz=4.0)
    ref, fast = both(cfg, shape)
    steady = make_magnifier(cfg, shape, 30.0)
    for f in frames[:6]:
        for m in (ref, fast, steady):
            m.process(f)
    for m in (ref, fast):
        m.set_fps(60.0)
        assert m.r1 == np.float32(1 - math.exp(-2 * math.pi * 4.0 / 60.0))
        assert m.r2 == np.float32(1 - math.exp(-2 * math.pi * 0.5 / 60.0))
    for f in frames[6:]:
        want = ref.process(f)
        assert_close(fast.process(f), want)
        unchanged = steady.process(f)
    assert not np.allclose(want, unchanged, atol=1e-4)  # the new coefficients act
    assert not np.allclose(want, frames[-1] * INV255, atol=1e-3)  # the state was kept (no restart)
    with pytest.raises(MagnifyError, match="fps"):
        fast.set_fps(0.0)


def test_luma_mode_is_the_luminance_of_yiq_mode():
    shape = (40, 40, 3)
    yiq, luma = (make_magnifier(MagnifyConfig(alpha=20, clip=False, color=c), shape, 30.0) for c in ("yiq", "luma"))
    for frame in moving_video(shape, 6):
        bgr, y = yiq.process(frame), luma.process(frame)
    assert y.shape == (40, 40, 1)
    np.testing.assert_allclose(bgr @ yiq.plan.fwd[0], y[:, :, 0], atol=1e-5)


def test_bad_inputs_get_clear_errors():
    m = make_magnifier(MagnifyConfig(), (32, 32, 3), 30.0)
    with pytest.raises(MagnifyError, match="shape"):
        m.process(np.zeros((32, 31, 3), np.uint8))
    with pytest.raises(MagnifyError, match="float32"):
        m.process(np.zeros((32, 32, 3), np.float64))
    with pytest.raises(MagnifyError, match="numpy array"):
        m.process([[0]])  # type: ignore[arg-type]
    with pytest.raises(MagnifyError, match="out must be"):
        m.process(np.zeros((32, 32, 3), np.uint8), out=np.zeros((32, 32, 3), np.float64))
    with pytest.raises(MagnifyError, match="input channels"):
        make_magnifier(MagnifyConfig(), (32, 32, 1), 30.0)
    with pytest.raises(MagnifyError, match="at least 5x5"):
        make_magnifier(MagnifyConfig(), (4, 32, 3), 30.0)
    grey = make_magnifier(MagnifyConfig(color="luma"), (32, 32, 1), 30.0)
    assert grey.process(np.zeros((32, 32), np.uint8)).shape == (32, 32, 1)


def test_numba_does_not_allocate_per_frame_once_warm():
    shape = (128, 128, 3)
    frames = moving_video(shape, 4)
    m = make_magnifier(MagnifyConfig(), shape, 30.0)
    first = m.process(frames[0])
    assert m.process(frames[1]) is first  # the magnifier's own buffer, reused
    out = np.empty(m.out_shape, np.float32)
    assert m.process(frames[2], out=out) is out
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for k in range(30):
        m.process(frames[k % 4])
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    assert peak < 16_000, f"{peak} bytes allocated while processing warm frames (one output is 196,608)"


# ---------------------------------------------------------------- CUDA

_SIM_SCRIPT = textwrap.dedent(
    """
    import os
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
    import numpy as np
    from dataclasses import replace
    from realtime_mer.magnify import MagnifyConfig, make_magnifier
    from realtime_mer.magnify.numba_cuda import CudaMagnifier

    rng = np.random.default_rng(1)
    shape = (10, 12, 3)
    for cfg in (
        MagnifyConfig(alpha=10, lambda_c=4, amplify_lowpass=True, chrom_attenuation=0.5, low_hz=0.5, high_hz=3),
        MagnifyConfig(color="luma", alpha=10, lambda_c=4, low_hz=0.5, high_hz=3),
    ):
        refs = [make_magnifier(replace(cfg, backend="reference"), shape, 30.0) for _ in range(3)]
        cuda_m = CudaMagnifier(cfg, shape, 30.0, capacity=3)
        worst = 0.0
        for k, slots in enumerate(([2, 0], [0, 2], [2, 0])):
            imgs = rng.integers(0, 256, (2, *shape), dtype=np.uint8)
            got = cuda_m.process_batch(imgs, slots)
            for j, s in enumerate(slots):
                want = refs[s].process(imgs[j])
                assert got[j].shape == want.shape, (got.shape, want.shape)
                worst = max(worst, float(np.abs(got[j] - want).max()))
        print("max abs error", worst)
        assert worst <= 1e-4, worst
        assert not np.allclose(want, imgs[-1, ..., :want.shape[2]] / 255.0, atol=1e-3)
    print("OK")
    """
)


def test_cuda_kernels_match_reference_under_the_simulator():
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    r = subprocess.run(
        [sys.executable, "-c", _SIM_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0 and "OK" in r.stdout, r.stdout + r.stderr


def test_cuda_backend_without_gpu_says_what_to_do():
    from numba import cuda

    if cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    with pytest.raises(MagnifyError, match="backend 'numba'"):
        make_magnifier(MagnifyConfig(backend="cuda"), (32, 32, 3), 30.0)


@pytest.mark.gpu
def test_cuda_batch_matches_reference():
    from realtime_mer.magnify.numba_cuda import CudaMagnifier

    shape = (128, 128, 3)
    cfg = MagnifyConfig(alpha=20, amplify_lowpass=True)
    refs = [make_magnifier(replace(cfg, backend="reference"), shape, 30.0) for _ in range(4)]
    gpu = CudaMagnifier(cfg, shape, 30.0, capacity=4)
    videos = [moving_video(shape, 6, seed=s) for s in range(4)]
    for k in range(6):
        slots = [3, 1, 0, 2] if k % 2 else [0, 1, 2, 3]
        got = gpu.process_batch(np.stack([videos[s][k] for s in slots]), slots)
        for j, s in enumerate(slots):
            assert_close(got[j], refs[s].process(videos[s][k]))
    single = make_magnifier(cfg, shape, 30.0)
    one = make_magnifier(replace(cfg, backend="cuda"), shape, 30.0)
    for frame in videos[0]:
        assert_close(one.process(frame), single.process(frame))


# ---------------------------------------------------------------- a stream's tracks


def test_track_magnifiers_give_each_track_its_own_filter():
    """TrackMagnifiers (CPU) gives what one magnifier per track gives; tracks come and go, and a
    track's new rate changes its coefficients only."""
    from realtime_mer.magnify import TrackMagnifiers

    shape = (64, 64, 3)
    cfg = MagnifyConfig(alpha=20)
    videos = [moving_video(shape, 8, seed=s) for s in range(3)]
    mags = TrackMagnifiers(cfg, shape, batch=2)
    own = {t: make_magnifier(cfg, shape, 30.0) for t in (4, 9)}
    for t in own:
        mags.add(t, 30.0)
    with pytest.raises(ValueError, match="already"):
        mags.add(4, 30.0)
    with pytest.raises(MagnifyError, match="fps"):
        mags.add(5, 0.0)
    for k in range(8):
        if k == 3:  # track 9 ends, track 2 starts
            mags.remove(9)
            del own[9]
            mags.add(2, 25.0)
            own[2] = make_magnifier(cfg, shape, 25.0)
        if k == 5:
            mags.set_fps(4, 15.0)
            own[4].set_fps(15.0)
        tracks = sorted(own)
        got = mags.process(tracks, [videos[t % 3][k] for t in tracks])
        for t, g in zip(tracks, got):
            np.testing.assert_array_equal(g, own[t].process(videos[t % 3][k]))
    assert 9 not in mags and len(mags) == 2


_SIM_TRACKS_SCRIPT = textwrap.dedent(
    """
    import os
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
    import numpy as np
    from dataclasses import replace
    from realtime_mer.magnify import MagnifyConfig, TrackMagnifiers, make_magnifier

    rng = np.random.default_rng(2)
    shape = (10, 12, 3)
    cfg = MagnifyConfig(alpha=10, lambda_c=4, amplify_lowpass=True, low_hz=0.5, high_hz=3, backend="cuda")
    mags = TrackMagnifiers(cfg, shape, batch=2)
    refs = {}
    for t, fps in ((0, 30.0), (1, 30.0), (2, 20.0)):  # three tracks: two CUDA magnifiers, two rates
        mags.add(t, fps)
        refs[t] = make_magnifier(replace(cfg, backend="reference"), shape, fps)
    assert len(mags._pools) == 2
    worst = 0.0
    for k in range(5):
        if k == 2:  # track 1 ends; track 3 takes its slot and starts afresh
            mags.remove(1)
            del refs[1]
            mags.add(3, 30.0)
            refs[3] = make_magnifier(replace(cfg, backend="reference"), shape, 30.0)
            assert len(mags._pools) == 2
        if k == 3:  # track 0 follows a new rate; its pool mate keeps the old one
            mags.set_fps(0, 20.0)
            refs[0].set_fps(20.0)
        tracks = sorted(refs)
        imgs = [rng.integers(0, 256, shape, dtype=np.uint8) for _ in tracks]
        got = mags.process(tracks, imgs)
        for t, img, g in zip(tracks, imgs, got):
            worst = max(worst, float(np.abs(g - refs[t].process(img)).max()))
    print("max abs error", worst)
    assert worst <= 1e-4, worst
    print("OK")
    """
)


def test_track_magnifiers_batch_tracks_on_cuda_under_the_simulator():
    """With backend cuda the tracks share CudaMagnifiers (one batched call per magnifier and rate)
    and still get what a magnifier of their own gives."""
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    r = subprocess.run(
        [sys.executable, "-c", _SIM_TRACKS_SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0 and "OK" in r.stdout, r.stdout + r.stderr
