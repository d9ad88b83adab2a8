"""Streaming spotting on rendered faces with planted mouth-corner movements (tests/facegen.py)."""

from __future__ import annotations

import math
import tracemalloc
from collections.abc import Collection
from functools import cache

import cv2
import numpy as np
import pytest
from facegen import Movement, Sequence, face_sequence

from realtime_mer.config import ConfigError, from_mapping
from realtime_mer.spotting import SpotConfig, Spotter, ellipse_mask, eye_mask, interval_iou
from realtime_mer.types import Interval


@cache
def planted(fps: float, amplitude: float = 1.5) -> Sequence:
    """2.5 s of a face at ``fps`` with a 200 ms mouth-corner movement starting at 1.6 s."""
    return face_sequence(fps, 2.5, movements=(Movement(1.6, rise_s=0.08, fall_s=0.12, amplitude_px=amplitude),), seed=1)


@cache
def still(fps: float, seconds: float = 5.0) -> Sequence:
    return face_sequence(fps, seconds, seed=2)


@cache
def held(fps: float) -> Sequence:
    """A 1.5 s movement (rise 0.2 s, hold 1.1 s, fall 0.2 s) of 2 px: a macro-expression."""
    return face_sequence(
        fps, 4.0, movements=(Movement(1.5, rise_s=0.2, hold_s=1.1, fall_s=0.2, amplitude_px=2.0),), seed=3
    )


def spot(
    seq: Sequence,
    config: SpotConfig | None = None,
    frames: np.ndarray | None = None,
    fps: float | None = None,
    mask: np.ndarray | None = None,
    eyes: np.ndarray | None = None,
    keys: Collection[int] = (),
) -> tuple[list[Interval], Spotter]:
    frames = seq.frames if frames is None else frames
    sp = Spotter(fps or seq.fps, config or SpotConfig(), frames.shape[1:], mask=mask, eyes=eyes)
    out: list[Interval] = []
    for i, (image, t) in enumerate(zip(frames, seq.times)):
        if i in keys:
            sp.keyframe()
        out += sp.update(i, float(t), image)
    return out + sp.flush(), sp


def assert_one_micro(out: list[Interval], seq: Sequence) -> Interval:
    truth = seq.truth()
    assert len(out) == 1, f"expected one interval for truth {seq.spans[0]}, got {out}"
    iv = out[0]
    assert iv.kind == "micro"
    assert interval_iou(iv, truth) >= 0.5, f"{iv} vs truth {seq.spans[0]}"
    assert iv.onset <= iv.apex <= iv.offset
    assert abs(iv.apex - truth.apex) <= 0.03 * seq.fps + 1
    assert iv.t_onset == pytest.approx(seq.times[iv.onset]) and iv.t_offset == pytest.approx(seq.times[iv.offset])
    assert iv.score >= SpotConfig().threshold
    return iv


@pytest.mark.parametrize("fps", [30, 200])
def test_planted_micro_is_spotted_on_raw_frames(fps):
    assert_one_micro(spot(planted(fps))[0], planted(fps))


@pytest.mark.parametrize("amplitude", [1.0, 2.0])
def test_one_and_two_pixel_movements_are_spotted(amplitude):
    seq = planted(30, amplitude)
    assert_one_micro(spot(seq)[0], seq)


@pytest.mark.parametrize(("fps", "color"), [(30, "yiq"), (200, "luma")])
def test_planted_micro_is_spotted_through_the_magnifier(fps, color):
    magnify = pytest.importorskip("realtime_mer.magnify", reason="the EVM package is not available")
    seq = planted(fps)
    mag = magnify.make_magnifier(magnify.MagnifyConfig(color=color, backend="reference"), seq.frames.shape[1:], fps)
    frames = np.stack([mag.process(f).copy() for f in seq.frames])
    assert frames.dtype == np.float32
    assert_one_micro(spot(seq, frames=frames)[0], seq)
    calm = still(fps, 3.0)
    mag.reset()
    assert spot(calm, frames=np.stack([mag.process(f).copy() for f in calm.frames]))[0] == []


@pytest.mark.parametrize("fps", [30, 200])
def test_still_face_with_sensor_noise_gives_no_event(fps):
    out, sp = spot(still(fps))
    assert out == []
    h = sp.history()
    assert h.ready.sum() > 3 * fps  # seconds of spotting after the warm-up
    assert h.sigma[h.ready].max() < SpotConfig().low  # sigma is in noise units: it never gets near


@pytest.mark.parametrize("fps", [30, 200])
def test_held_movement_is_a_macro_expression(fps):
    seq = held(fps)
    out, _ = spot(seq)
    assert [iv.kind for iv in out] == ["macro"], out
    assert interval_iou(out[0], seq.truth("macro")) >= 0.5
    assert spot(seq, SpotConfig(report_macro=False))[0] == []


def test_lasting_change_is_a_macro_then_the_face_is_relearned():
    # a movement that never returns (an expression held on), then a micro-expression 6 s later
    seq = face_sequence(
        30,
        8.5,
        movements=(Movement(1.5, rise_s=0.2, hold_s=60.0, amplitude_px=2.0), Movement(7.5, amplitude_px=1.5)),
        seed=4,
    )
    out, _ = spot(seq)
    assert [iv.kind for iv in out] == ["macro", "micro"], out
    held, micro = out
    cfg = SpotConfig()
    assert abs(held.t_onset - 1.5) <= 0.1 and 1.5 <= held.t_apex <= 1.8, held  # rose over 0.2 s from 1.5 s
    assert held.t_offset - held.t_onset == pytest.approx(cfg.macro_max_s, abs=0.1)  # cut where it was reported
    assert held.t_onset < held.t_apex < held.t_offset
    assert interval_iou(micro, seq.truth(which=1)) >= 0.5


@pytest.mark.parametrize(
    "gain", [lambda t: 1 + 0.05 * t, lambda t: 1 + 0.03 * np.sin(np.pi * t)], ids=["ramp-5%/s", "flicker-3%-0.5Hz"]
)
def test_lighting_changes_give_no_event(gain):
    seq = face_sequence(30, 6.0, gain=gain, seed=5)
    assert spot(seq)[0] == []


def test_brief_exposure_dip_would_fire_without_gain_normalisation():
    """A 5 % darkening for 0.3 s (auto-exposure hunting) looks like a micro-expression to the raw statistic."""
    seq = face_sequence(30, 4.0, gain=lambda t: 1 - 0.05 * ((t > 2.0) & (t < 2.3)), seed=5)
    assert [iv.kind for iv in spot(seq, SpotConfig(normalize_gain=False))[0]] == ["micro"]
    assert spot(seq)[0] == []


@pytest.mark.parametrize("fps", [30, 200])
def test_isolated_one_frame_spike_is_ignored(fps):
    seq = still(fps)
    config = SpotConfig(rigid_share=0)  # (at 200 fps, DIS takes the diluted patch for a rigid motion)
    shortest = max(2, math.ceil(config.micro_min_s * fps))  # frames: two at 30 fps
    at = round(2.7 * fps)
    frames = seq.frames.copy()
    frames[at : at + shortest - 1, 85:105, 40:60] = 255  # corrupted frames: a saturated patch on the cheek
    assert spot(seq, config, frames=frames)[0] == []
    frames[at + shortest - 1, 85:105, 40:60] = 255  # one frame more: long enough to count
    assert len(spot(seq, config, frames=frames)[0]) == 1


def test_weak_slow_movement_of_a_fast_camera_is_spotted():
    # at 200 fps a faint 0.3 s movement stays above ``low`` for a few hundredths of a second only:
    # a minimum of 0.065 s above it (the setting before) dropped it
    faint = Movement(1.6, rise_s=0.12, fall_s=0.18, amplitude_px=0.15)
    seq = face_sequence(200, 2.5, movements=(faint,), noise=6.0, seed=1)
    assert spot(seq, SpotConfig(micro_min_s=0.065))[0] == []
    assert_one_micro(spot(seq)[0], seq)


def test_block_statistic_is_more_sensitive_than_global_std():
    seq = face_sequence(30, 2.5, movements=(Movement(1.6, amplitude_px=0.3),), seed=1)
    assert len(spot(seq)[0]) == 1
    assert spot(seq, SpotConfig(blocks=(1, 1), top_k=1))[0] == []


def test_mask_restricts_where_movements_count():
    seq = planted(30)
    upper = np.zeros((128, 128), bool)
    upper[:64] = True
    assert spot(seq, mask=upper)[0] == []
    assert_one_micro(spot(seq, mask=~upper)[0], seq)


@pytest.mark.parametrize("form", ["grey-u8", "grey-2d-u8", "bgr-f32", "bgr-f64-scaled"])
def test_input_dtype_and_layout_do_not_matter(form):
    seq = planted(30)
    base = spot(seq)[0][0]
    if form == "grey-u8":
        frames = np.stack([cv2.cvtColor(f, cv2.COLOR_BGR2GRAY)[..., None] for f in seq.frames])
    elif form == "grey-2d-u8":
        frames = np.stack([cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in seq.frames])
    elif form == "bgr-f32":
        frames = seq.frames.astype(np.float32) / 255
    else:
        frames = seq.frames.astype(np.float64) * 3.7 - 20
    iv = assert_one_micro(spot(seq, frames=frames)[0], seq)
    assert interval_iou(iv, base) >= 0.7


def test_set_fps_converts_durations():
    seq = planted(200)
    out, _ = spot(seq, fps=30)  # told 30 fps, the 200 ms movement looks ~1.1 s long
    assert [iv.kind for iv in out] == ["macro"]
    sp = Spotter(30, SpotConfig(), seq.frames.shape[1:])
    sp.set_fps(200)
    out = [iv for i, (f, t) in enumerate(zip(seq.frames, seq.times)) for iv in sp.update(i, t, f)] + sp.flush()
    assert_one_micro(out, seq)


def test_history_for_display():
    sp = Spotter(30, SpotConfig(history_len=50, warmup_s=1.0), (128, 128, 3))
    seq = still(30)
    for i in range(40):
        sp.update(i, float(seq.times[i]), seq.frames[i])
    h = sp.history()
    assert len(h.sigma) == 40 and np.array_equal(h.index, np.arange(40))
    assert not h.ready[:30].any() and h.ready[30:].all()
    for i in range(40, 100):
        sp.update(i, float(seq.times[i]), seq.frames[i])
    assert np.array_equal(sp.history().index, np.arange(50, 100))
    assert np.array_equal(sp.history(10).index, np.arange(90, 100))
    assert np.array_equal(sp.sigma, sp.history().sigma)
    assert np.isfinite(sp.sigma).all() and not sp.active


def test_no_array_allocation_per_frame_once_warm():
    seq = still(30)
    sp = Spotter(30, SpotConfig(), (128, 128, 3))
    for i in range(60):
        sp.update(i, float(seq.times[i]), seq.frames[i])
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for i in range(60, 150):
            sp.update(i, float(seq.times[i]), seq.frames[i])
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    # small per-block temporaries (a few hundred floats) are fine; a crop-sized buffer is 64 KiB
    assert peak < 16 * 1024, f"{peak} bytes allocated at peak while spotting (a 128x128 float32 buffer is 64 KiB)"


def test_ellipse_mask():
    m = ellipse_mask((128, 100), (0.8, 0.9))
    assert m.shape == (128, 100) and m[64, 50] and not m[0, 0] and not m[64, 5]
    assert m.mean() == pytest.approx(np.pi / 4 * 0.8 * 0.9, rel=0.03)


def test_bad_input_gives_clear_errors():
    sp = Spotter(30, SpotConfig(), (128, 128, 3))
    with pytest.raises(ValueError, match="does not match"):
        sp.update(0, 0.0, np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(ValueError, match="dtype"):
        sp.update(0, 0.0, np.zeros((128, 128, 3), bool))
    sp.update(5, 0.0, np.zeros((128, 128, 3), np.uint8))
    with pytest.raises(ValueError, match="must increase"):
        sp.update(5, 0.1, np.zeros((128, 128, 3), np.uint8))
    bad = np.full((128, 128, 3), 0.5, np.float32)
    bad[3, 3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        sp.update(6, 0.2, bad)
    assert sp.update(6, 0.2, np.zeros((128, 128, 3), np.uint8)) == []  # the bad frame changed nothing
    with pytest.raises(ValueError, match="NaN"):
        Spotter(30, SpotConfig(), (128, 128, 3)).update(0, 0.0, bad)
    with pytest.raises(ValueError, match="fps"):
        sp.set_fps(0)
    with pytest.raises(ValueError, match="shape"):
        Spotter(30, SpotConfig(), (128, 128, 4))
    with pytest.raises(ValueError, match="mask shape"):
        Spotter(30, SpotConfig(), (128, 128), mask=np.ones((64, 64), bool))
    with pytest.raises(ValueError, match="top_k"):
        Spotter(30, SpotConfig(), (128, 128), mask=np.zeros((128, 128), bool))
    with pytest.raises(ConfigError, match="low < threshold"):
        from_mapping(SpotConfig, {"low": 9.0, "threshold": 8.0})
    with pytest.raises(ConfigError, match="micro_max_s"):
        from_mapping(SpotConfig, {"micro_max_s": 5.0})
    with pytest.raises(ConfigError, match="unknown key"):
        from_mapping(SpotConfig, {"treshold": 5.0})
    with pytest.raises(ConfigError, match="micro_slack_s must be >= 0"):
        from_mapping(SpotConfig, {"micro_slack_s": -0.1})
    cfg = from_mapping(SpotConfig, {"blocks": [4, 4], "top_k": 2, "mask": "full"})
    assert cfg.blocks == (4, 4) and cfg.mask == "full"


def blink(seq: Sequence, start_s: float, seconds: float = 0.2) -> np.ndarray:
    """``seq.frames`` with both eyes of the rendered face closing and reopening (raised cosine)."""
    frames = seq.frames.copy()
    rng = np.random.default_rng(9)
    for i, t in enumerate(seq.times):
        u = (t - start_s) / seconds
        if not 0 < u < 1:
            continue
        rows = int(round(12 * (0.5 - 0.5 * np.cos(2 * np.pi * u))))  # the upper lid comes down 12 px
        for x in (40, 88):
            lid = frames[i, 46 : 46 + rows, x - 12 : x + 13]
            lid[:] = np.clip(np.array([120, 150, 200]) + rng.normal(0, 2, lid.shape), 0, 255)
    return frames


def rendered_eyes() -> np.ndarray:
    """Eye fissures of the rendered face (its eye whites), as ``eye_mask`` gives them from landmarks."""
    m = np.zeros((128, 128), np.uint8)
    for x in (40, 88):
        cv2.ellipse(m, (x, 52), (13, 7), 0, 0, 360, 1, -1)
    return m.astype(bool)


def test_blink_is_not_reported_when_the_eyes_are_known():
    seq = planted(30)  # mouth-corner movement at 1.6 s
    frames = blink(seq, 0.8)
    fired = spot(seq, frames=frames)[0]
    assert len(fired) == 2 and fired[0].kind == "micro" and fired[0].offset < 40, fired  # the blink fires
    assert_one_micro(spot(seq, frames=frames, eyes=rendered_eyes())[0], seq)  # only the mouth movement
    assert_one_micro(spot(seq, SpotConfig(blink_level=0.0), frames=frames, eyes=rendered_eyes())[0][1:], seq)


def test_eye_mask_from_landmarks():
    pts = np.zeros((68, 2), np.float32)
    pts[36:42] = [(30, 50), (35, 47), (45, 47), (50, 50), (45, 53), (35, 53)]
    pts[42:48] = pts[36:42] + (48, 0)
    m = eye_mask((128, 128), pts, margin_px=0)
    assert m[50, 40] and m[50, 88] and not m[50, 64] and not m[40, 40]
    assert eye_mask((128, 128), pts, margin_px=2).sum() > m.sum()
    with pytest.raises(ValueError, match="points68"):
        eye_mask((128, 128), pts[:40])
    with pytest.raises(ValueError, match="eyes mask"):
        Spotter(30, SpotConfig(), (128, 128), eyes=np.zeros((64, 64), bool))


def test_movement_still_rising_when_the_stream_ends_is_not_reported():
    # the stream ends 0.1 s after the onset (on the rise): it may be a lasting change, not an expression
    seq = face_sequence(30, 2.0, movements=(Movement(1.85, rise_s=0.1, fall_s=0.1, amplitude_px=2.0),), seed=1)
    out, sp = spot(seq)
    assert out == [] and sp.history().sigma[-1] >= SpotConfig().threshold
    # the same movement with the fall seen: reported at the end of the stream
    seq = face_sequence(30, 2.3, movements=(Movement(1.85, rise_s=0.1, fall_s=0.1, amplitude_px=2.0),), seed=1)
    assert [iv.kind for iv in spot(seq)[0]] == ["micro"]


def test_a_keyframe_takes_the_reference_anew_outside_a_movement():
    seq = planted(30)
    base, _ = spot(seq)
    # intra-only video, every frame a keyframe: the running mean averages its noise; ignored
    every, sp = spot(seq, keys=range(len(seq.frames)))
    assert every == base and not np.isnan(sp.history().sigma[1:]).any()
    # a keyframe at the apex: the movement is spotted as before, and the first frame after it
    # (NaN in the history: no statistic) is the new reference
    iv = assert_one_micro(base, seq)
    out, sp = spot(seq, keys={iv.apex + 1})
    assert out == base
    h = sp.history()
    taken = h.index[np.isnan(h.sigma)]
    assert taken[0] == 0 and len(taken) == 2 and iv.apex + 1 < taken[1] <= iv.offset + 0.1 * seq.fps


# (frame rate, frames in the running mean of smooth_s 0.05 s): at least two, else the rounded 0.05 s
RUNNING_MEAN = [(15, 2), (25, 2), (29.97, 2), (30, 2), (50, 2), (60, 3), (100, 5), (200, 10)]


@pytest.mark.parametrize(("fps", "frames"), RUNNING_MEAN)
def test_running_mean_spans_at_least_two_frames(fps, frames):
    sp = Spotter(fps, SpotConfig(), (64, 64))
    assert len(sp._box) == frames
    sp = Spotter(200, SpotConfig(), (64, 64))
    sp.set_fps(fps)  # a measured rate (a 30 fps camera that delivers 27) is handled alike
    assert len(sp._box) == frames
    assert len(Spotter(fps, SpotConfig(smooth_s=0.0), (64, 64))._box) == 1  # 0 turns it off


@pytest.mark.parametrize("smooth_s", [0.0, 0.05, 0.1])
def test_running_mean_lag_is_taken_out_of_the_interval(smooth_s):
    seq = planted(200)
    out, sp = spot(seq, SpotConfig(smooth_s=smooth_s))
    assert len(sp._box) == max(1, round(smooth_s * 200))
    iv = assert_one_micro(out, seq)
    truth = seq.truth()
    assert abs((iv.onset + iv.offset) / 2 - (truth.onset + truth.offset) / 2) <= 0.02 * 200


def test_movement_soon_after_the_warm_up_is_spotted():
    """Levels learned in the short warm-up are refined while a movement holds the spotter."""
    seq = face_sequence(30, 2.5, movements=(Movement(0.6, rise_s=0.08, fall_s=0.12, amplitude_px=1.5),), seed=1)
    assert_one_micro(spot(seq)[0], seq)


# -- talking, large, head and re-aligned movements (steps 8-10 of the module docstring) -------------------


def _syllables(start_s: float, count: int, amplitude: float = 1.5) -> tuple[Movement, ...]:
    """``count`` mouth-corner movements of 0.2 s every 0.3 s from ``start_s``: a talking mouth."""
    return tuple(Movement(start_s + 0.3 * k, rise_s=0.08, fall_s=0.12, amplitude_px=amplitude) for k in range(count))


@pytest.mark.parametrize(
    ("similarity", "expected"),
    [(0.7, 1), (0.0, 6)],
    ids=["repeats-are-not-micro", "rule-off-every-one-is"],
)
def test_repeated_movements_in_one_place_are_not_micro_expressions(similarity, expected):
    seq = face_sequence(30, 4.5, movements=_syllables(1.6, 6), seed=6)
    out, _ = spot(seq, SpotConfig(repeat_similarity=similarity, busy_level=0))
    micro = [iv for iv in out if iv.kind == "micro"]
    assert len(micro) == expected, out
    assert interval_iou(micro[0], seq.truth(which=0)) >= 0.5  # the first of a bout is still reported


@pytest.mark.parametrize(
    ("flick", "expected"),
    [(True, []), (False, ["micro"])],
    ids=["after-a-flick-a-repeat", "alone-a-micro"],
)
def test_a_movement_too_short_to_report_is_a_model_of_its_repeats(flick, expected):
    # a 60 ms flick of the mouth corner (too short to be reported itself), then 0.4 s later a
    # micro-expression-like movement in the same place: the second repeats the first (a syllable
    # the statistic saw for one frame is still the mouth moving)
    first = (Movement(1.6, rise_s=0.03, fall_s=0.03, amplitude_px=1.5),) if flick else ()
    seq = face_sequence(30, 3.5, movements=(*first, Movement(2.0, amplitude_px=1.5)), seed=6)
    out, _ = spot(seq, SpotConfig(busy_level=0))
    assert [iv.kind for iv in out] == expected, out


def test_an_isolated_movement_after_the_window_is_reported_again():
    # two movements in one place 2.5 s apart: the second no longer repeats the first
    seq = face_sequence(30, 5.5, movements=(Movement(1.6, amplitude_px=1.5), Movement(4.1, amplitude_px=1.5)), seed=7)
    out, _ = spot(seq, SpotConfig(repeat_window_s=1.0, busy_level=0))
    assert [iv.kind for iv in out] == ["micro", "micro"], out


@pytest.mark.parametrize(
    ("amplitude", "iod", "micro"),
    [(1.5, 64.0, True), (6.0, 64.0, False), (6.0, None, True)],
    ids=["small-is-micro", "large-is-not", "rule-off-without-iod"],
)
def test_a_movement_larger_than_micro_expressions_is_not_micro(amplitude, iod, micro):
    seq = planted(30, amplitude)
    sp = Spotter(30, SpotConfig(), seq.frames.shape[1:], iod_px=iod)
    out = [iv for i, (im, t) in enumerate(zip(seq.frames, seq.times)) for iv in sp.update(i, float(t), im)]
    out += sp.flush()
    assert any(iv.kind == "micro" for iv in out) == micro, out


@pytest.mark.parametrize(
    ("amplitude", "slack", "kind"),
    [(1.0, 0.1, "micro"), (1.0, 0.0, "macro"), (6.0, 0.1, "macro")],
    ids=["subtle-is-micro", "slack-off", "large-is-macro"],
)
def test_a_subtle_movement_placed_a_little_too_long_is_micro(amplitude, slack, kind):
    # a 0.5 s movement (0.2 s up, 0.3 s down) the half-maximum placement makes 0.53-0.6 s long
    seq = face_sequence(30, 3.5, movements=(Movement(1.5, rise_s=0.2, fall_s=0.3, amplitude_px=amplitude),), seed=1)
    sp = Spotter(30, SpotConfig(micro_slack_s=slack), seq.frames.shape[1:], iod_px=64.0)
    out = [iv for i, (im, t) in enumerate(zip(seq.frames, seq.times)) for iv in sp.update(i, float(t), im)]
    out += sp.flush()
    assert [iv.kind for iv in out] == [kind], out
    assert SpotConfig().micro_max_s < (out[0].offset - out[0].onset) / 30 <= 0.6 + 1e-9


def _nodded(seq: Sequence, start_s: float, seconds: float, shift_px: float) -> np.ndarray:
    """``seq``'s frames with a nod: the face moves down by up to ``shift_px`` and shortens by
    ``shift_px / 128 / 2`` (raised cosine from ``start_s`` over ``seconds``), about the crop centre."""
    frames = seq.frames.copy()
    h, w = frames.shape[1:3]
    for i, t in enumerate(seq.times):
        x = (t - start_s) / seconds
        if 0 < x < 1:
            k = 0.5 - 0.5 * np.cos(2 * np.pi * x)
            squash = 1.0 - 0.5 * k * shift_px / w
            m = np.array([[1.0, 0.0, 0.0], [0.0, squash, (1 - squash) * h / 2 + k * shift_px]])
            frames[i] = cv2.warpAffine(seq.frames[i], m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    return frames


@pytest.mark.parametrize(("rigid_share", "events"), [(0.93, 0), (0.0, 1)], ids=["head-move-dropped", "rule-off"])
def test_a_nod_is_not_an_expression(rigid_share, events):
    seq = still(30)
    frames = _nodded(seq, 2.0, 0.4, 2.0)
    out, _ = spot(seq, SpotConfig(rigid_share=rigid_share, min_move_iod=0.0), frames=frames)
    assert len(out) == events, out


def test_rebase_takes_a_new_alignment_as_the_reference():
    # from 1.0 s on the crops sit 1 px lower (say, the alignment changed method): untold, the
    # spotter sees the shift as a movement; told (rebase), it learns the new reference in a
    # warm-up and stays quiet until the movement planted at 3 s, which both find
    seq = face_sequence(30, 4.0, movements=(Movement(3.0, amplitude_px=1.5),), seed=8)
    frames = seq.frames.copy()
    shift = np.float32([[1, 0, 0], [0, 1, 1.0]])
    for i in range(30, len(frames)):
        frames[i] = cv2.warpAffine(seq.frames[i], shift, frames.shape[2:0:-1], flags=cv2.INTER_CUBIC,
                                   borderMode=cv2.BORDER_REFLECT)  # fmt: skip
    cfg = SpotConfig()
    for rebase in (False, True):
        sp = Spotter(30, cfg, frames.shape[1:])
        out, moving = [], False
        for i, (im, t) in enumerate(zip(frames, seq.times)):
            if rebase and i == 30:
                sp.rebase()
            out += sp.update(i, float(t), im)
            moving |= 30 <= i < 85 and sp.active
        out += sp.flush()
        assert moving != rebase, rebase
        assert [interval_iou(iv, seq.truth(which=0)) >= 0.5 for iv in out] == [True], (rebase, out)
        if rebase:
            h = sp.history()
            quiet = (h.index >= 30 + round(cfg.warmup_s * 30) + 1) & (h.index < 88)
            assert np.nanmax(h.sigma[quiet]) < cfg.low
