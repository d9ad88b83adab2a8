"""The synthetic micro-expression generator against its own ground truth, on real faces.

The base faces are real photographs shipped in installed packages (scikit-image's astronaut,
matplotlib's grace_hopper), so these tests need no ../shared/data; they run the real MediaPipe
landmarker (``face_model`` fixture) and real PyAV encoding/decoding.
"""

from __future__ import annotations

import csv
import itertools
import json
import time
from dataclasses import replace
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from realtime_mer.config import ConfigError, from_mapping
from realtime_mer.face.landmarker import Landmarker
from realtime_mer.face.mapping import to68
from realtime_mer.media import Mp4Writer
from realtime_mer.synth import (
    ACTION_UNITS,
    EMOTION_AUS,
    BaseFaceError,
    DatasetError,
    EventConfig,
    NuisanceConfig,
    PlantedEvent,
    SynthConfig,
    SyntheticSource,
    default_bases,
    load_ground_truth,
    make_subjects,
    parse_aus,
    read_base,
    write_dataset,
)
from realtime_mer.synth.aus import MIRROR68, displacements
from realtime_mer.synth.render import build_scene, event_field
from realtime_mer.synth.timeline import plan_clip

SIZE = (384, 288)
REQUIRED_AUS = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 25, 26, 45)
FARNEBACK_GAUSSIAN = cv2.OPTFLOW_FARNEBACK_GAUSSIAN
FLOW_AUS = ("1", "2", "4", "5", "6", "7", "9", "10", "12", "L12", "R14", "14", "15", "17", "20", "25", "26")


@pytest.fixture(scope="module")
def subjects(face_model):
    """s01 astronaut and s02 Grace Hopper as shipped (cropped), s03 a varied astronaut."""
    bases = default_bases()
    assert [b.name for b in bases] == ["skimage:astronaut", "matplotlib:grace_hopper"]
    return make_subjects(bases, 3, SIZE, seed=1, model_path=face_model)


def _decode(path: Path, fmt: str = "bgr24") -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format=fmt) for f in c.decode(video=0)]


def _rngs(seed: int = 0) -> tuple[np.random.Generator, np.random.Generator]:
    return np.random.default_rng(seed), np.random.default_rng(seed + 1)


def _quiet(**events) -> SynthConfig:
    """No nuisance at all (lossless mp4), with the event settings given."""
    return SynthConfig(subjects=2, events=EventConfig(**events), nuisance=NuisanceConfig.off())


# --- acceptance -------------------------------------------------------------------------------


def test_flow_on_the_output_matches_the_planted_displacement(subjects, tmp_path):
    """Dense flow base -> apex on the decoded mp4, averaged over each region the AU moves by at least
    half its peak, is within 25 % in amplitude and 20 degrees in direction of the planted field, for
    every region whose planted mean displacement is 1 px or more."""
    checked, worst = 0, (0.0, 0.0)
    for s in subjects:
        events = [
            PlantedEvent(0, s.id, "micro", None, au, 1 + 4 * i, 3 + 4 * i, 5 + 4 * i, 30.0, amp, amp)
            for i, (au, amp) in enumerate((au, amp) for au in FLOW_AUS for amp in (1.5, 3.0))
        ]
        scene = build_scene([s], events, 30.0, NuisanceConfig.off(), _rngs())
        path = tmp_path / f"{s.id}.mp4"
        with Mp4Writer(path, 30.0, scene.size, crf=0) as w:
            for f in range(events[-1].offset + 1):
                w.write(scene.render(f))
        gray = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in _decode(path)]
        for e in events:
            planted = event_field(s.points68[0], e, SIZE[::-1])
            flow = cv2.calcOpticalFlowFarneback(gray[0], gray[e.apex], None, 0.5, 3, 11, 5, 5, 1.1, FARNEBACK_GAUSSIAN)
            mag = np.hypot(planted[..., 0], planted[..., 1])
            n, regions = cv2.connectedComponents((mag >= 0.5 * mag.max()).astype(np.uint8))
            for r in range(1, n):
                m = regions == r
                want, got = planted[m].mean(0), flow[m].mean(0)
                if m.sum() < 20 or np.hypot(*want) < 1.0:
                    continue
                ratio = np.hypot(*got) / np.hypot(*want)
                angle = abs(np.degrees(np.arctan2(want[0] * got[1] - want[1] * got[0], want @ got)))
                assert abs(ratio - 1) <= 0.25 and angle <= 20, f"{s.id} AU{e.aus} {e.amplitude_px} px: {want} vs {got}"
                worst = (max(worst[0], abs(ratio - 1)), max(worst[1], angle))
                checked += 1
    assert checked >= 3 * 30, checked  # most AUs give two regions (left and right)
    print(f"flow vs planted over {checked} regions: worst amplitude error {worst[0]:.1%}, direction {worst[1]:.1f} deg")


def test_landmarker_finds_every_face_on_every_frame(face_model, tmp_path):
    """Default nuisances, blinks and macro-expressions, two faces side by side: MediaPipe still finds
    both faces on every decoded frame, where the ground truth puts them."""
    cfg = SynthConfig(
        subjects=3,
        clip_seconds=(3.0, 3.0),
        events=EventConfig(events_per_clip=(3, 3), kind_weights=(0.2, 0.4, 0.4)),
        nuisance=replace(NuisanceConfig(), two_face_fraction=1.0),
    )
    write_dataset(tmp_path, clips=2, fps=30.0, seed=5, config=cfg, model_path=face_model)
    truth = load_ground_truth(tmp_path)
    kinds = {e.kind for t in truth.values() for e in t.events}
    assert kinds >= {"blink", "macro"}, kinds
    for t in truth.values():
        assert len(t.faces) == 2
        frames = _decode(t.video)
        assert len(frames) == t.n_frames
        with Landmarker(face_model, num_faces=2) as lm:
            for i, frame in enumerate(frames):
                faces = lm.detect(frame, round(i * 1000 / t.fps))
                found = sorted((to68(f) for f in faces), key=lambda p: p[:, 0].mean())
                assert len(found) == 2, f"{t.clip} frame {i}: {len(found)} faces"
                for face, p68 in zip(t.faces, found):
                    err = np.median(np.hypot(*(p68 - face.points68).T))
                    where = f"{t.clip} frame {i} face {face.face}: {err:.1f} px"
                    assert err < 0.08 * (face.bbox[2] - face.bbox[0]), where


def test_neutral_clip_without_nuisances_is_the_base(subjects, face_model, tmp_path):
    """All nuisances off (lossless H.264): every frame is the base canvas, exactly, in yuv420p."""
    cfg = _quiet(neutral_fraction=1.0, kind_weights=(1, 0, 0))
    write_dataset(tmp_path, clips=2, fps=30.0, seed=1, config=cfg, model_path=face_model)
    truth = load_ground_truth(tmp_path)
    for k, t in enumerate(truth.values()):
        assert t.neutral and not t.events
        base = cv2.cvtColor(subjects[k].frames[0], cv2.COLOR_BGR2YUV_I420)
        frames = _decode(t.video, "yuv420p")
        assert len(frames) == t.n_frames
        for f in frames:
            np.testing.assert_array_equal(f, base)


def test_neutral_clip_with_noise_differs_by_the_configured_noise(subjects):
    """Noise only: the residual from the base is zero-mean with the configured std (plus the 1/12
    variance of rounding to 8 bits), and independent from frame to frame."""
    s = subjects[0]
    base = s.frames[0].astype(np.float64)
    keep = (base > 12) & (base < 243)  # away from clipping
    for std in (1.0, 3.0):
        scene = build_scene([s], [], 30.0, replace(NuisanceConfig.off(), noise_std=std), _rngs())
        res = [scene.render(f).astype(np.float64) - base for f in range(4)]
        want = np.sqrt(std**2 + 1 / 12)
        for r in res:
            assert abs(r[keep].std() / want - 1) < 0.02
            assert abs(r[keep].mean()) < 0.02
        corr = np.corrcoef(res[0][keep], res[1][keep])[0, 1]
        assert abs(corr) < 0.01


def test_flicker_and_drift_are_the_only_changes(subjects):
    """Flicker alone scales the frame by the lighting gain; drift alone is the base under a small
    similarity transform."""
    s = subjects[1]
    base = s.frames[0].astype(np.float64)
    scene = build_scene([s], [], 30.0, replace(NuisanceConfig.off(), flicker=0.02), _rngs())
    gains = []
    for f in range(6):
        gain = scene.light.gain(f / 30.0)
        gains.append(gain)
        np.testing.assert_allclose(scene.render(f), np.clip(base * gain, 0, 255), atol=0.51)
    assert scene.light.flicker_hz == pytest.approx(10.0)  # 100 Hz light seen at 30 fps
    assert max(gains) - min(gains) > 0.02
    scene = build_scene([s], [], 30.0, replace(NuisanceConfig.off(), drift_px=2.0, drift_deg=0.5), _rngs())
    for f in (0, 40, 80):
        m = scene.layers[0].motion.matrix(f / 30.0)  # no jitter: the same map the frame was rendered with
        assert 0.2 < np.abs(m[:, 2] - (np.eye(2) - m[:, :2]) @ s.points68[0].mean(0)).max() < 0.05 * SIZE[0]
        want = cv2.warpAffine(s.frames[0], m, SIZE, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT101)
        diff = np.abs(scene.render(f).astype(int) - want)
        assert diff.mean() < 0.05 and diff.max() <= 2


# --- determinism, ground truth, ranges ----------------------------------------------------------


def test_dataset_is_deterministic_for_a_seed(face_model, tmp_path):
    cfg = replace(SynthConfig(subjects=2, clip_seconds=(1.5, 2.0)), events=EventConfig(margin_s=0.3))
    for name, seed in (("a", 4), ("b", 4), ("c", 5)):
        write_dataset(tmp_path / name, clips=2, fps=30.0, seed=seed, config=cfg, model_path=face_model)
    a, b, c = (tmp_path / n for n in "abc")
    for clip in ("clip0001", "clip0002"):
        assert (a / "clips" / f"{clip}.json").read_text() == (b / "clips" / f"{clip}.json").read_text()
        assert (a / "clips" / f"{clip}.mp4").read_bytes() == (b / "clips" / f"{clip}.mp4").read_bytes()
    assert (a / "dataset.json").read_text() == (b / "dataset.json").read_text()
    assert (a / "clips" / "clip0001.mp4").read_bytes() != (c / "clips" / "clip0001.mp4").read_bytes()
    # another prefix names the clips, nothing else: pooled with the first set, every sample is kept
    write_dataset(tmp_path / "d", clips=2, fps=30.0, seed=4, config=cfg, model_path=face_model, prefix="b")
    assert (tmp_path / "d" / "clips" / "b0001.mp4").read_bytes() == (a / "clips" / "clip0001.mp4").read_bytes()
    from realtime_mer.train.experiment import open_datasets

    one = len(open_datasets([f"synth:{a}"]).samples)
    assert len(open_datasets([f"synth:{a}", f"synth:{tmp_path / 'd'}"]).samples) == 2 * one > 0


def test_ground_truth_files(face_model, tmp_path):
    """JSON, CSV, index and CASME II-style frame folders agree with each other and with the video."""
    cfg = replace(SynthConfig(subjects=2, clip_seconds=(1.0, 1.0)), events=EventConfig(margin_s=0.2, lead_s=0.25))
    summary = write_dataset(tmp_path, clips=2, fps=200.0, seed=3, config=cfg, frames=True, model_path=face_model)
    assert summary.clips == 2 and "clips/s" in summary.describe()
    truth = load_ground_truth(tmp_path)
    assert list(truth) == ["clip0001", "clip0002"]
    index = list(csv.DictReader((tmp_path / "index.csv").read_text().splitlines()))
    meta = json.loads((tmp_path / "dataset.json").read_text())
    assert [r["clip"] for r in index] == meta["clips"] == list(truth)
    assert {s["id"] for s in meta["subjects"]} == {"s01", "s02"}
    for row in index:
        t = truth[row["clip"]]
        assert t.fps == 200.0 and t.n_frames == 50 + 200 == int(row["n_frames"])  # the lead-in, then 1 s
        assert int(row["n_micro"]) == len(t.intervals("micro"))
        with av.open(str(t.video)) as c:
            stream = c.streams.video[0]
            assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
            assert float(stream.average_rate) == 200.0
            assert sum(1 for _ in c.decode(stream)) == t.n_frames
        rows = list(csv.DictReader(t.video.with_suffix(".csv").read_text().splitlines()))
        assert [(int(r["onset"]), int(r["apex"]), int(r["offset"])) for r in rows] == [
            (e.onset, e.apex, e.offset) for e in t.events
        ]
        for e in t.events:
            assert (0.25 + 0.2) * 200 <= e.onset < e.apex < e.offset < t.n_frames
            assert e.weight(e.onset) == 0 and e.weight(e.apex) == 1 and e.weight(e.offset) == 0
            assert (e.label is None) == (e.kind == "blink")
            parse_aus(e.aus)
        files = sorted(t.frames_dir.glob("img*.jpg"), key=lambda p: int(p.stem[3:]))
        assert t.frames_dir.parent.name == f"sub{t.subject[1:]}" and t.frames_dir.name.startswith("EP")
        assert [p.name for p in files] == [f"img{i + 1}.jpg" for i in range(t.n_frames)]
    # a clip file left from an earlier run in the same folder is not part of the dataset
    stale = json.loads((tmp_path / "clips" / "clip0001.json").read_text()) | {"clip": "clip0009"}
    (tmp_path / "clips" / "clip0009.json").write_text(json.dumps(stale))
    assert list(load_ground_truth(tmp_path)) == ["clip0001", "clip0002"]
    from_clips = load_ground_truth(tmp_path / "clips")
    a, b = from_clips["clip0001"], truth["clip0001"]
    assert len(from_clips) == 3 and (a.events, a.video, a.frames_dir) == (b.events, b.video, b.frames_dir)
    (tmp_path / "clips" / "clip0002.json").write_text("{}")
    with pytest.raises(DatasetError, match="clip0002.json is not a clip ground-truth file"):
        load_ground_truth(tmp_path)
    with pytest.raises(DatasetError, match="realtime-mer synth"):
        load_ground_truth(tmp_path / "nothing")


@pytest.mark.parametrize("fps", [30.0, 200.0])
def test_durations_and_amplitudes_stay_in_range(subjects, fps):
    cfg = EventConfig(events_per_clip=(2, 3))
    p68 = subjects[0].points68[0]
    width = float(np.hypot(*(p68[16] - p68[0])))
    n = int(6 * fps)
    durations = {"micro": cfg.micro_duration_s, "macro": cfg.macro_duration_s, "blink": cfg.blink_duration_s}
    seen = set()
    for seed in range(60):
        rng = np.random.default_rng(seed)
        events = plan_clip(n, fps, 0, "s01", p68, cfg, rng, neutral=seed % 10 == 0)
        assert events == sorted(events, key=lambda e: e.onset)
        if seed % 10:
            assert any(e.kind == "micro" for e in events)
        else:
            assert all(e.kind != "micro" for e in events)
        for a, b in itertools.pairwise(events):
            assert b.onset - a.offset >= cfg.min_gap_s * fps
        for e in events:
            seen.add(e.kind)
            lo, hi = durations[e.kind]
            assert lo - 1e-9 <= e.duration_s <= hi + 1e-9
            assert e.onset >= (cfg.lead_s + cfg.margin_s) * fps and e.offset <= n - 1 - cfg.margin_s * fps
            f = (e.apex - e.onset) / (e.offset - e.onset)
            step = 1 / (e.offset - e.onset)
            assert cfg.apex_fraction[0] - step <= f <= cfg.apex_fraction[1] + step
            if e.kind == "micro":
                assert cfg.micro_amplitude[0] <= e.amplitude_200 <= cfg.micro_amplitude[1]
                assert e.amplitude_px == pytest.approx(e.amplitude_200 * width / 200)
            elif e.kind == "macro":
                assert cfg.macro_amplitude[0] <= e.amplitude_200 <= cfg.macro_amplitude[1]
    assert seen == {"micro", "macro", "blink"}
    # the shortest micro-expressions allowed (from 65 ms) still span onset < apex < offset frames
    short = EventConfig(micro_duration_s=(0.065, 0.1), events_per_clip=(1, 1))
    for seed in range(10):
        (e,) = plan_clip(n, fps, 0, "s01", p68, short, np.random.default_rng(seed), neutral=False)
        assert 0.065 <= e.duration_s <= 0.1 and e.onset < e.apex < e.offset


def test_planted_amplitude_is_the_largest_landmark_move_and_the_warp_is_local(subjects):
    p68 = subjects[0].points68[0]
    mouth, upper = range(48, 68), range(17, 48)  # landmarks each AU below must leave still
    far = {"1+2": mouth, "4": mouth, "12": upper, "L14": upper, "26": upper, "45": mouth}
    for au, idx in far.items():
        _, disp = displacements(p68, au, 2.5)
        assert np.hypot(*disp.T).max() == pytest.approx(2.5)
        field = event_field(p68, PlantedEvent(0, "s01", "micro", None, au, 0, 1, 2, 30.0, 2.5, 2.5), SIZE[::-1])
        mag = np.hypot(field[..., 0], field[..., 1])
        q = np.round(p68[list(idx)]).astype(int)
        assert mag[q[:, 1], q[:, 0]].max() < 0.03 * 2.5, f"AU{au} moves landmarks it should not"
        assert max(mag[:4].max(), mag[:, :4].max(), mag[:, -4:].max()) < 0.01 * 2.5, f"AU{au} reaches the image border"
    # unilateral: L12 moves only the subject's left half (image right), mirrored by R12
    _, left = displacements(p68, "L12", 2.0)
    _, right = displacements(p68, "R12", 2.0)
    moved_l = set(np.flatnonzero(np.hypot(*left[:68].T) > 0))
    moved_r = set(np.flatnonzero(np.hypot(*right[:68].T) > 0))
    assert moved_l and {int(MIRROR68[i]) for i in moved_r} == moved_l
    assert all(p68[i, 0] > p68[27:31, 0].mean() for i in moved_l)


def test_au_table_and_emotion_table():
    assert set(REQUIRED_AUS) <= set(ACTION_UNITS)
    for cls, table in EMOTION_AUS.items():
        assert table, cls
        for combo, count in table:
            assert count > 0 and parse_aus(combo)
    assert [str(c) for c in parse_aus("1+L2+25")] == ["1", "L2", "25"]
    with pytest.raises(ValueError, match="unknown action unit"):
        parse_aus("1+99")
    with pytest.raises(ValueError, match="no unilateral form"):
        parse_aus("L26")


# --- live source, bases, config -----------------------------------------------------------------


def test_live_source_paces_frames_and_reports_planted_events(face_model):
    src = SyntheticSource(fps=30.0, seed=3, duration_s=4.0, realtime=False, model_path=face_model)
    assert src.live and src.name == "synthetic" and src.nominal_fps is None
    src.open()
    assert src.nominal_fps == 30.0
    times = []
    while (item := src.read()) is not None:
        image, t = item
        assert image.shape == (SIZE[1], SIZE[0], 3) and image.dtype == np.uint8
        times.append(t)
    src.close()
    assert len(times) == 120 and times[1] == pytest.approx(1 / 30)
    planted = src.planted
    assert planted and planted[0].kind == "micro" and planted[0].onset >= 45  # after the 1.5 s lead-in
    for a, b in itertools.pairwise(planted):
        assert b.onset > a.offset
    live = SyntheticSource(fps=30.0, seed=3, duration_s=0.5, model_path=face_model)
    live.open()
    start = time.monotonic()
    n = sum(1 for _ in iter(live.read, None))
    live.close()
    assert n + live.dropped == 15 and time.monotonic() - start >= 0.45


def test_video_base(face_model, tmp_path):
    """A real-footage video as the base: frames are taken from it and events follow the face."""
    still = default_bases()[0].frames[0][40:300, 120:380]
    video = tmp_path / "base.mp4"
    with Mp4Writer(video, 30.0, (260, 260), crf=18) as w:
        for i in range(20):
            shift = np.float32([[1, 0, 0.3 * i], [0, 1, 0.1 * i]])
            w.write(cv2.warpAffine(still, shift, (260, 260), borderMode=cv2.BORDER_REFLECT))
    base = read_base(video)
    assert base.frames.shape[0] == 20 and base.fps == 30.0
    cfg = replace(_quiet(neutral_fraction=0.0), subjects=1, clip_seconds=(2.0, 2.0))
    write_dataset(tmp_path / "out", clips=1, fps=30.0, seed=1, bases=[video], config=cfg, model_path=face_model)
    (t,) = load_ground_truth(tmp_path / "out").values()
    assert t.faces[0].source == str(video) and t.intervals("micro")
    assert len(_decode(t.video)) == t.n_frames


def test_bad_inputs_say_what_to_do(tmp_path, face_model):
    with pytest.raises(BaseFaceError, match="does not exist"):
        read_base(tmp_path / "missing.jpg")
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 128, np.uint8))
    with pytest.raises(BaseFaceError, match="no face"):
        make_subjects([read_base(blank)], 1, SIZE, 0, model_path=face_model)
    with pytest.raises(ConfigError, match="micro_duration_s"):
        from_mapping(SynthConfig, {"events": {"micro_duration_s": [0.1, 0.8]}})
    with pytest.raises(ConfigError, match="size"):
        from_mapping(SynthConfig, {"size": [385, 288]})
    with pytest.raises(ConfigError, match="unknown key"):
        from_mapping(SynthConfig, {"nuisance": {"noize_std": 2}})
    cfg = from_mapping(SynthConfig, {"nuisance": {"crf": 18, "noise_std": 1.5}, "events": {"classes": ["positive"]}})
    assert cfg.nuisance.crf == 18 and cfg.events.classes == ("positive",)
