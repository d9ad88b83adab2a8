"""The region CNN-LSTM live (:mod:`realtime_mer.region_stream`): its window run one step per frame as
the frames arrive gives the logits the trainer's whole-window forward gives (torch and ONNX Runtime),
the steps follow the frame rate, and the stream processor hands on intervals whose logits were
computed before they closed."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from realtime_mer.inputs import InputSettings, region_window
from realtime_mer.models import build_model, get_spec
from realtime_mer.models.checkpoint import ModelMeta, save_checkpoint
from realtime_mer.models.region_lstm import REGION_NAMES
from realtime_mer.region_stream import StepRunner
from realtime_mer.synth import EventConfig, SynthConfig, write_dataset
from realtime_mer.train.datasets import open_dataset
from realtime_mer.train.preprocess import align_sample, config_for

CONFIG = {"frames": 8, "rate": 30.0, "difference": 50.0}
CLASSES = ("negative", "positive", "surprise")


@pytest.fixture(scope="module")
def interval(face_model, tmp_path_factory):
    """A planted micro-expression's aligned crops (onset to offset), onset points and frame rate."""
    out = tmp_path_factory.mktemp("synth")
    events = EventConfig(events_per_clip=(1, 1), kind_weights=(1, 0, 0), micro_amplitude=(2.5, 3.0),
                         neutral_fraction=0.0, classes=CLASSES)  # fmt: skip
    write_dataset(out, clips=1, fps=30, seed=5, config=SynthConfig(subjects=1, size=(256, 192), events=events),
                  model_path=face_model)  # fmt: skip
    s = open_dataset(f"synth:{out}?classes=megc3").samples[0]
    crops, _, points = align_sample(s, config_for(get_spec("region-lstm")))
    return crops, points, float(s.fps)


def _model():
    torch.manual_seed(0)
    return build_model("region-lstm", CONFIG), ModelMeta.from_spec("region-lstm", CONFIG, classes=CLASSES)


@pytest.mark.parametrize("engine", ["torch", "onnxruntime"])
@pytest.mark.parametrize("fps", [30.0, 90.0])
def test_streamed_window_is_the_trained_one(interval, engine, fps):
    """Steps pushed frame by frame == run_window == RegionLSTM.window_logits on the padded window;
    at 90 fps a step is every third frame."""
    crops, points, _ = interval
    model, meta = _model()
    shapes = {t.name: tuple(t.shape) for t in meta.inputs if t.name in REGION_NAMES}
    window = region_window(InputSettings.of_model(meta.config, shapes), crops, points, fps)
    length = int(window["length"][0])
    stride = 1 if fps == 30 else 3
    assert length == min(CONFIG["frames"], -(-len(crops) // stride))
    with torch.no_grad():
        x = [torch.from_numpy(window[n])[None] for n in REGION_NAMES]
        expected = model.window_logits(*x, lengths=torch.tensor([length])).numpy()[0]
        state = torch.zeros(1, 6, 120)
        direct = model(*[r[:, :length] for r in x], state, state)[0].numpy()[0]
    np.testing.assert_allclose(direct, expected, atol=1e-5)  # padding is never read
    runner = StepRunner(model, meta, engine)
    stream = runner.start(100, crops[0], points, fps)
    for i in range(1, len(crops)):
        stream.push(100 + i, crops[i])
    assert stream.steps == [100 + stride * j for j in range(length)]
    np.testing.assert_allclose(stream.logits_at(100 + len(crops) - 1), expected, atol=1e-4)
    np.testing.assert_allclose(runner.run_window(window), expected, atol=1e-4)
    assert stream.logits_at(99) is None
    runner.close()


def test_stream_processor_streams_region_windows(face_model, tmp_path):
    """With the region CNN-LSTM configured, spotted micro-expressions reach the event stage with their
    logits already computed (no crops to read at the close), and the recognizer labels them."""
    from realtime_mer.evaluate import spot_clip
    from realtime_mer.pipeline import load_pipeline_config
    from realtime_mer.recognize import RecognizeConfig, Recognizer
    from realtime_mer.synth import load_ground_truth

    model, meta = _model()
    weights = save_checkpoint(model, tmp_path / "region-lstm.safetensors", meta)
    events = EventConfig(micro_amplitude=(2.5, 3.0), events_per_clip=(2, 2), kind_weights=(1, 0, 0),
                         neutral_fraction=0.0)  # fmt: skip
    write_dataset(tmp_path / "clip", clips=1, fps=30.0, seed=3,
                  config=SynthConfig(subjects=1, clip_seconds=(5.0, 5.0), events=events))  # fmt: skip
    (truth,) = load_ground_truth(tmp_path / "clip").values()
    rc = RecognizeConfig(model="region-lstm", weights=str(weights), engine="onnxruntime")
    spotted, _ = spot_clip(truth, replace(load_pipeline_config(), recognize=rc), magnify=False)
    micro = [s for s in spotted if s.interval.kind == "micro"]
    assert micro, "no planted micro-expression was spotted"
    assert all(s.crops is not None and s.crops.logits is not None for s in micro)
    rec = Recognizer(rc)
    for r, s in zip(rec.classify([s.recognition_input() for s in micro]), micro):
        assert r.label in CLASSES and r.input_ms == 0.0
        p = np.exp(s.crops.logits - s.crops.logits.max())
        np.testing.assert_allclose(max(r.probs.values()), p.max() / p.sum(), rtol=1e-5)
    rec.close()


def test_training_and_evaluation_preprocess_with_the_models_window(tmp_path):
    """mer-train caches the window its model config asks for (rate, difference), and evaluating a
    checkpoint preprocesses as it was trained; neither can be overridden apart from the model."""
    from pathlib import Path

    from realtime_mer.config import ConfigError
    from realtime_mer.train.experiment import checkpoint_preprocess, load_run_config, preprocess_config

    config = Path(__file__).resolve().parents[1] / "configs" / "train" / "weights-region-lstm.yaml"
    model_config, pre = preprocess_config(load_run_config(config), 3)
    assert (pre.input, pre.rate, pre.difference) == ("regions", 30.0, 50.0)
    assert pre.shapes["mouth"][0] == model_config["frames"] == 16
    meta = ModelMeta.from_spec("region-lstm", model_config, classes=CLASSES, training={"preprocess": {}})
    assert (checkpoint_preprocess(meta).rate, checkpoint_preprocess(meta).difference) == (30.0, 50.0)
    with pytest.raises(ConfigError, match="difference comes from"):
        checkpoint_preprocess(meta, {"difference": 0.0})
    with pytest.raises(ConfigError, match="rate comes from"):
        preprocess_config(load_run_config(config, {"preprocess": {"rate": 60.0}}), 3)
