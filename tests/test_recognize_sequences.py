"""The sequence models live (STRCN-A, region CNN-LSTM, DTSCNN): the stream processor hands whole
intervals to their recognizers, their shipped weights label planted micro-expressions of a fresh
synthetic set (a seed not used in training) mostly as planted, and ``realtime-mer --model M`` emits
labelled events from them on a real clip."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from realtime_mer.pipeline import load_pipeline_config
from realtime_mer.recognize import RecognizeConfig, Recognizer
from realtime_mer.synth import EventConfig, SynthConfig, write_dataset
from realtime_mer.train.datasets import open_dataset
from realtime_mer.train.preprocess import align_sample, config_for
from realtime_mer.types import IntervalCrops
from realtime_mer.weights import available

SEQUENCE_MODELS = ("strcn-a", "region-lstm", "dtscnn")
HELD_OUT_SEED = 78  # the shipped weights were trained on seed 1 (REPORT.md)


def test_sequence_models_ship_weights():
    assert set(SEQUENCE_MODELS) <= set(available())


@pytest.fixture(scope="module")
def planted(face_model, tmp_path_factory):
    """Planted micro-expressions of a fresh set: their crops as the live face stage makes them
    (:func:`align_sample`) and labels."""
    out = tmp_path_factory.mktemp("planted")
    cfg = SynthConfig(subjects=3, clip_seconds=(2.4, 2.6),
                      events=EventConfig(events_per_clip=(3, 3), kind_weights=(1, 0, 0), neutral_fraction=0.0,
                                         classes=("negative", "positive", "surprise")))  # fmt: skip
    write_dataset(out, clips=8, fps=30, seed=HELD_OUT_SEED, config=cfg, model_path=face_model)
    items, labels = [], []
    for s in open_dataset(f"synth:{out}?classes=megc3").samples:
        crops, numbers, points = align_sample(s, config_for(_spec("rcn-a")))
        apex = max(1, int(np.argmin(np.abs(numbers - s.apex))))
        items.append(IntervalCrops(crops, apex, points, float(s.fps)))
        labels.append(s.label_name)
    return items, labels


def _spec(name: str):
    from realtime_mer.models import get_spec

    return get_spec(name)


@pytest.mark.parametrize("model", SEQUENCE_MODELS)
def test_shipped_weights_label_planted_micro_expressions(planted, model):
    items, labels = planted
    rec = Recognizer(RecognizeConfig(model=model, engine="onnxruntime"))
    assert rec.needs_sequence
    got = [r.label for r in rec.classify(items)]
    rec.close()
    right = np.mean(np.array(got) == np.array(labels))
    print(f"{model}: {right:.2f} of {len(labels)} planted labelled as planted; {list(zip(labels, got))}")
    assert len(labels) >= 15
    assert right > 0.5, f"chance is 1/3; {model} labelled {right:.2f} as planted: {list(zip(labels, got))}"


def test_stream_processor_hands_whole_intervals_to_sequence_models(face_model, tmp_path):
    """With a sequence model configured the spotted intervals carry every crop from onset to offset
    and the onset points; with an RCN they carry none (the pair is enough)."""
    from realtime_mer.evaluate import spot_clip
    from realtime_mer.synth import load_ground_truth

    events = EventConfig(micro_amplitude=(2.5, 3.0), events_per_clip=(1, 1), neutral_fraction=0.0)
    cfg = SynthConfig(subjects=1, clip_seconds=(4.0, 4.0), events=events)
    write_dataset(tmp_path, clips=1, fps=30.0, seed=3, config=cfg)
    (truth,) = load_ground_truth(tmp_path).values()
    for model, whole in (("dtscnn", True), ("rcn-a", False)):
        config = replace(load_pipeline_config(), recognize=RecognizeConfig(model=model))
        spotted, _ = spot_clip(truth, config, magnify=False)
        assert spotted, "the planted micro-expression was not spotted"
        for s in spotted:
            if not whole:
                assert s.crops is None
                continue
            c = s.crops
            assert c is not None and c.points68 is not None and c.points68.shape == (68, 2)
            assert len(c.frames) == s.interval.offset - s.interval.onset + 1
            np.testing.assert_array_equal(c.frames[0], s.onset)
            np.testing.assert_array_equal(c.frames[c.apex], s.apex)


@pytest.mark.realdata
@pytest.mark.parametrize("model", ("rcn-a", "strcn-g", "strcn-a", "region-lstm", "dtscnn"))
def test_cli_runs_every_model_live(shared_data, model, tmp_path):
    """Each model from its shipped weights."""
    assert model in available()
    video = shared_data / "video" / "smile_d19.mp4"
    events = tmp_path / "events.jsonl"
    r = subprocess.run(
        [sys.executable, "-m", "realtime_mer.cli", "--video", str(video), "--model", model,
         "--engine", "onnxruntime", "--events", str(events)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    records = [json.loads(line) for line in events.read_text().splitlines()]
    labelled = [e for e in records if e.get("type") == "event" and e.get("label")]
    assert labelled, f"no labelled event from {model}: {r.stderr[-1500:]}"
    assert all(e["model"] == model and e["label"] in e["probs"] for e in labelled)
