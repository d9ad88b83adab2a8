"""Preprocessing: the live path's alignment and flow on real synthetic clips (real MediaPipe, PyAV),
every model's input shape, the STRCN apex rule, EVM variants, and the resumable on-disk cache."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from realtime_mer.capture.pyav import VideoFileSource
from realtime_mer.models import get_spec
from realtime_mer.pipeline import StreamProcessor, load_pipeline_config
from realtime_mer.synth import EventConfig, SynthConfig, write_dataset
from realtime_mer.train.datasets import Dataset, Sample, open_dataset
from realtime_mer.train.preprocess import (
    PreprocessConfig,
    align_sample,
    config_for,
    prepare_sample,
    preprocess,
    sample_file,
    strcn_apex,
)
from realtime_mer.types import Frame


@pytest.fixture(scope="module")
def clip_set(face_model, tmp_path_factory) -> Dataset:
    """Two clips of two subjects with larger-than-default micro-expressions, default nuisances."""
    out = tmp_path_factory.mktemp("synth")
    cfg = SynthConfig(subjects=2, size=(256, 192), clip_seconds=(2.0, 2.5),
                      events=EventConfig(events_per_clip=(2, 2), kind_weights=(1, 0, 0),
                                         micro_amplitude=(2.5, 3.0), neutral_fraction=0.0,
                                         classes=("negative", "positive", "surprise")))  # fmt: skip
    write_dataset(out, clips=2, fps=30, seed=11, config=cfg, model_path=face_model)
    return open_dataset(f"synth:{out}?classes=megc3")


def test_strcn_apex_rule():
    g = np.zeros((7, 8, 8), np.uint8)
    g[1:, 2:5, 2:5] = [[[10]], [[40]], [[90]], [[60]], [[20]], [[5]]]
    assert strcn_apex(g) == 3
    assert strcn_apex(g[:1]) == 0


def test_trainer_crops_are_the_live_streams(clip_set):
    """The crops mer-train makes of an interval are those a live stream of the clip puts in its ring
    (the same decoder, face stage, track and registration), bit for bit, when the face stage's lead
    reaches the clip's start (the shipped pipeline config's face stage: `realtime-mer --video CLIP`); the
    lead brings the track past its landmark warm-up by the onset."""
    s = clip_set.samples[1]
    assert s.onset / s.fps > 1.0, "the planted event must come after the face stage's warm-up"
    cfg = config_for(get_spec("rcn-a"))
    crops, numbers, points = align_sample(s, replace(cfg, lead_s=s.onset / s.fps + 1))
    np.testing.assert_array_equal(numbers, np.arange(s.onset, s.offset + 1))
    proc, source, live, live_points = (
        StreamProcessor("clip", load_pipeline_config(), lambda: float(s.fps)),
        VideoFileSource(s.video),
        {},
        None,
    )
    source.open()
    for n in range(s.offset + 1):
        image, t = source.read()
        proc.process(Frame(stream="clip", index=n, t=t, captured=0.0, image=image))
        ((_, face),) = proc.found
        live[n] = face.image.copy()
        live_points = face.points68 if n == s.onset else live_points
    source.close()
    proc.close()
    np.testing.assert_array_equal(crops, np.stack([live[n] for n in numbers]))
    np.testing.assert_array_equal(points, live_points)
    # a track opened at the onset (no lead) is still in its landmark warm-up: other crops
    late, _, _ = align_sample(s, replace(cfg, lead_s=0.0))
    assert late.shape == crops.shape and not np.array_equal(late, crops)


def test_rcn_map_of_a_real_clip(clip_set):
    """Aligned onset->apex map of a planted event: (V, 3, 60, 60) in [0, 1], one row per variant; the
    labelled apex is kept; the STRCN rule finds an apex near it; EVM changes the map."""
    s = clip_set.samples[0]
    cfg = replace(config_for(get_spec("rcn-a")), alphas=(0.0, 8.0), keep_ratios=(1.0, 0.6), apex="auto")
    out = prepare_sample(s, cfg)
    assert out["flow"].shape == (4, 3, 60, 60) and out["flow"].dtype == np.float32
    assert out["flow"].min() >= 0.0 and out["flow"].max() <= 1.0
    np.testing.assert_allclose(out["variants"], [[0, 1], [0, 0.6], [8, 1], [8, 0.6]])
    assert out["apex"][0] == s.apex
    assert not np.allclose(out["flow"][0], out["flow"][2]), "EVM at alpha 8 changes the flow"
    detected = prepare_sample(s, replace(cfg, apex="strcn", alphas=(0.0,), keep_ratios=(1.0,)))
    assert abs(int(detected["apex"][0]) - s.apex) <= max(2, (s.offset - s.onset) // 3)


@pytest.mark.parametrize("model", ["strcn-g", "strcn-a", "region-lstm", "dtscnn"])
def test_every_model_input_has_its_spec_shape(clip_set, model):
    spec = get_spec(model)
    out = prepare_sample(clip_set.samples[1], config_for(spec))
    for t in spec.inputs():
        if t.name in ("h0", "c0"):
            assert t.name not in out
            continue
        assert out[t.name].shape == (1, *t.shape), t.name
        assert np.isfinite(out[t.name]).all()


def _flow_folder(root: Path, n: int) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    rows = ["subject,sample,label"]
    for i in range(n):
        img = np.zeros((80, 90, 3), np.uint8)
        img[..., 2] = 200  # red = channel 0 (u) after BGR -> RGB
        img[..., 1] = rng.integers(0, 255)
        cv2.imwrite(str(root / f"f{i}.png"), img)
        rows.append(f"s{i % 3},f{i},{['negative', 'positive', 'surprise'][i % 3]}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def test_flow_images_cache_is_resumable(tmp_path):
    folder = _flow_folder(tmp_path / "fi", 6)
    data = open_dataset(f"flowimages:{folder}")
    cfg = config_for(get_spec("rcn-a"))
    cache = tmp_path / "cache"
    first = preprocess(data, cfg, cache, workers=2, progress=False)
    assert first.inputs["flow"].shape == (6, 3, 60, 60) and not first.failed
    np.testing.assert_allclose(first.inputs["flow"][:, 0], 200 / 255, atol=1e-6)
    files = {p: p.stat().st_mtime_ns for p in (cache / cfg.key()).rglob("*.npz")}
    assert len(files) == 6 and (cache / cfg.key() / "config.json").is_file()
    os.remove(sample_file(cache, cfg, data.samples[2]))
    again = preprocess(data, cfg, cache, workers=1, progress=False)
    np.testing.assert_array_equal(again.inputs["flow"], first.inputs["flow"])
    after = {p: p.stat().st_mtime_ns for p in (cache / cfg.key()).rglob("*.npz")}
    assert [p for p in after if after[p] != files.get(p)] == [sample_file(cache, cfg, data.samples[2])], (
        "only the missing one redone"
    )
    assert replace(cfg, alphas=(0.0, 5.0)).key() != cfg.key() and PreprocessConfig(**vars(cfg)).key() == cfg.key()


def test_a_clip_without_a_face_is_left_out_and_cached(tmp_path, face_model):
    frames = []
    for i in range(1, 4):
        p = tmp_path / f"img{i}.jpg"
        cv2.imwrite(str(p), np.full((120, 120, 3), 90, np.uint8))
        frames.append(p)
    blank = Sample(
        "synth", "s09", "blank", 0, "negative", onset=1, apex=2, offset=3, frames=tuple(frames), frame_numbers=(1, 2, 3)
    )
    data = Dataset("synth", ("negative",), (blank,))
    cfg = config_for(get_spec("rcn-a"))
    with pytest.raises(Exception, match="no sample"):
        preprocess(data, cfg, tmp_path / "cache", progress=False)
    assert (
        sample_file(tmp_path / "cache", cfg, blank).with_suffix(".fail.txt").read_text()
        == "no face found on the onset frame"
    )


@pytest.mark.parametrize(
    ("model", "test_alpha", "ok"),
    [("strcn-a", 8.0, True), ("strcn-g", 8.0, False), ("rcn-a", 8.0, False), ("strcn-g", 0.0, True)],
)
def test_only_inputs_magnified_live_are_tested_magnified(model, test_alpha, ok):
    """Live, only STRCN-A's crops go through EVM: another input tested at an EVM factor would be
    scored on inputs the live path never makes (magnified training variants stay allowed)."""
    if ok:
        assert config_for(get_spec(model), alphas=(0.0, 8.0), test_alpha=test_alpha).test_alpha == test_alpha
    else:
        with pytest.raises(ValueError, match="only STRCN-A.s crops are magnified"):
            config_for(get_spec(model), alphas=(0.0, 8.0), test_alpha=test_alpha)


def test_strcn_g_defaults_test_unmagnified():
    from realtime_mer.train.experiment import load_run_config, preprocess_config

    _, pre = preprocess_config(load_run_config(None, {"model": "strcn-g"}), 3)
    assert pre.input == "strcn-g" and pre.test_alpha == 0.0 and 8.0 in pre.alphas
    _, pre = preprocess_config(load_run_config(None, {"model": "strcn-a"}), 3)
    assert pre.test_alpha == 8.0


def test_strcn_a_dataset_mask_comes_from_the_training_rows_only():
    """resolve_mask sums the heat maps of the training rows: pixels that move only in a test row are
    left out; every row is cut to the mask and differenced; the config then holds the packed mask."""
    from realtime_mer.flow import unpack_mask
    from realtime_mer.inputs import strcn_a_select
    from realtime_mer.train.train import FoldData, resolve_mask

    rng = np.random.default_rng(0)
    rows = rng.uniform(0.4, 0.6, (5, 3, 3072, 30)).astype(np.float32) * 0.01
    rows[:3, :, 100:1022, 1:] += 0.5  # the training rows move in 922 pixels
    rows[3:, :, 2000:2922, 1:] += 0.9  # the test rows elsewhere, more
    data = FoldData({"appearance": rows}, np.zeros(5, np.int64), np.arange(3), np.zeros(0, np.int64), np.arange(3, 5))
    cut, config = resolve_mask(data, "strcn-a", {"mask": "dataset", "difference": 20.0})
    mask = unpack_mask(config["mask"])
    assert mask.shape == (64, 48) and mask.ravel()[100:1022].all() and mask.sum() == 922
    assert cut.inputs["appearance"].shape == (5, 3, 922, 30)
    np.testing.assert_array_equal(cut.inputs["appearance"], strcn_a_select(rows, mask, 20.0))
    same, unchanged = resolve_mask(data, "strcn-a", {"difference": 20.0})  # the sequence's own mask: untouched
    assert same is data and unchanged == {"difference": 20.0}


def test_strcn_a_with_a_dataset_mask_trains_and_evaluates(clip_set, tmp_path, capsys):
    """mer-train caches every pixel for a ``mask: dataset`` STRCN-A, the checkpoint holds the mask the
    final model was trained with, and ``mer-train evaluate`` reads it back through ONNX Runtime."""
    from realtime_mer.flow import unpack_mask
    from realtime_mer.models.checkpoint import read_checkpoint_meta
    from realtime_mer.train.cli import main

    cfg = tmp_path / "strcn-a.yaml"
    cfg.write_text(
        "model: strcn-a\nmodel_config: {feature_maps: 4, mask: dataset, difference: 20}\n"
        "train: {epochs: 1, batch: 2}\npreprocess: {alphas: [8], test_alpha: 8}\n"
    )
    data = clip_set.source
    out, cache = tmp_path / "run", str(tmp_path / "cache")
    assert main(["--config", str(cfg), "--dataset", data, "--out", str(out), "--cache", cache, "--jobs", "1"]) == 0
    meta = read_checkpoint_meta(out / "model.safetensors")
    assert unpack_mask(meta.config["mask"]).sum() == 922
    assert meta.training["preprocess"]["shapes"]["appearance"] == [3, 3072, 30]
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(out / "model.safetensors"), "--dataset", data,
                 "--engine", "onnxruntime", "--out", str(tmp_path / "eval"), "--cache", cache]) == 0  # fmt: skip
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("UF1 ")
