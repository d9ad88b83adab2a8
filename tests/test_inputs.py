"""One input definition per model family (:mod:`realtime_mer.inputs`): the live recognizer, given the
crops of an interval, builds exactly the arrays the trainer caches for it (real MediaPipe alignment of
a real synthetic clip, real EVM and flow), for every input kind."""

from __future__ import annotations

from dataclasses import asdict, replace

import numpy as np
import pytest

from realtime_mer.inputs import INPUTS, InputError, InputSettings, model_input
from realtime_mer.models import build_model, get_spec
from realtime_mer.models.checkpoint import ModelMeta, save_checkpoint
from realtime_mer.recognize import RecognizeConfig, Recognizer, needs_sequence
from realtime_mer.synth import EventConfig, SynthConfig, write_dataset
from realtime_mer.train.datasets import open_dataset
from realtime_mer.train.preprocess import align_sample, config_for, prepare_sample
from realtime_mer.types import IntervalCrops

# model, its input kind, preprocessing options of its training (STRCN-A: EVM at its test factor),
# model config (the paper's inputs, and the onset differences of the shipped STRCN-A and region CNN-LSTM)
CASES = [
    ("rcn-a", "rcn", {}, {}),
    ("strcn-g", "strcn-g", {}, {}),
    ("strcn-a", "strcn-a", {"alphas": (8.0,), "test_alpha": 8.0}, {}),
    ("strcn-a", "strcn-a", {"alphas": (8.0,), "test_alpha": 8.0}, {"difference": 20.0}),
    ("region-lstm", "regions", {}, {}),
    ("region-lstm", "regions", {}, {"frames": 8, "rate": 15.0, "difference": 50.0}),
    ("dtscnn", "dtscnn", {}, {}),
]


@pytest.fixture(scope="module")
def sample(face_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    events = EventConfig(events_per_clip=(1, 1), kind_weights=(1, 0, 0), micro_amplitude=(2.5, 3.0),
                         neutral_fraction=0.0, classes=("negative", "positive", "surprise"))  # fmt: skip
    cfg = SynthConfig(subjects=1, size=(256, 192), clip_seconds=(2.0, 2.0), events=events)
    write_dataset(out, clips=1, fps=30, seed=5, config=cfg, model_path=face_model)
    return open_dataset(f"synth:{out}?classes=megc3").samples[0]


@pytest.fixture(scope="module")
def aligned(sample):
    """The interval's crops, their frame numbers and the onset points, as the trainer aligns them."""
    return align_sample(sample, config_for(get_spec("rcn-a")))


def test_every_input_kind_is_registered_once():
    assert sorted(INPUTS) == sorted({kind for _, kind, _, _ in CASES})
    assert [needs_sequence(m) for m, _, _, _ in CASES] == [False, False, True, True, True, True, True]


@pytest.mark.parametrize(("model", "kind", "options", "model_config"), CASES, ids=[c[0] for c in CASES])
def test_live_input_is_the_trainers(sample, aligned, tmp_path, model, kind, options, model_config):
    """Recognizer.make_input on the aligned interval == the test variant prepare_sample caches."""
    spec = get_spec(model)
    pre = config_for(spec, model_config, **options)
    assert pre.input == kind
    cached = prepare_sample(sample, pre)
    path = tmp_path / f"{model}.safetensors"
    meta = ModelMeta.from_spec(spec, model_config, classes=("negative", "positive", "surprise"),
                               training={"preprocess": asdict(pre)})  # fmt: skip
    save_checkpoint(build_model(model, model_config), path, meta)
    recognizer = Recognizer(RecognizeConfig(model=model, weights=str(path), engine="torch"))
    crops, numbers, points = aligned
    apex = int(np.argmin(np.abs(numbers - sample.apex)))
    live = recognizer.make_input(IntervalCrops(crops, apex, points, float(sample.fps)))
    assert sorted(live) == sorted(k for k in cached if k not in ("variants", "apex"))
    for name, x in live.items():
        np.testing.assert_array_equal(x, cached[name][0], err_msg=f"{model} input {name}")
    recognizer.close()


def test_bad_crops_say_what_is_wrong(aligned):
    crops, _, points = aligned
    settings = InputSettings({"flow": (3, 60, 60)})
    with pytest.raises(InputError, match="at least two crops"):
        model_input("rcn", settings, crops[:1], 0)
    with pytest.raises(InputError, match="apex index 99"):
        model_input("rcn", settings, crops, 99)
    with pytest.raises(InputError, match="68 points"):
        model_input("regions", replace(settings), crops, 1)
    with pytest.raises(InputError, match="unknown input kind 'optical'"):
        model_input("optical", settings, crops, 1)


def test_live_input_with_a_dataset_mask_is_the_trainers(sample, aligned, tmp_path):
    """STRCN-A with the paper's data-set mask: the trainer caches every pixel undifferenced, cuts each
    fold's rows to the mask of its training rows (resolve_mask); a checkpoint holding that mask makes
    live exactly the cut row."""
    from realtime_mer.train.train import FoldData, resolve_mask

    spec = get_spec("strcn-a")
    pre = config_for(spec, {"mask": "dataset", "difference": 20.0}, alphas=(8.0,), test_alpha=8.0)
    assert pre.shapes == {"appearance": (3, 3072, 30)} and pre.difference == 0.0
    rows = prepare_sample(sample, pre)["appearance"]
    none = np.zeros(0, np.int64)
    data, config = resolve_mask(FoldData({"appearance": rows}, np.zeros(len(rows), np.int64), np.arange(len(rows)),
                                         none, none), "strcn-a", {"mask": "dataset", "difference": 20.0})  # fmt: skip
    path = tmp_path / "strcn-a.safetensors"
    meta = ModelMeta.from_spec(spec, config, classes=("negative", "positive", "surprise"),
                               training={"preprocess": asdict(pre)})  # fmt: skip
    save_checkpoint(build_model("strcn-a", config), path, meta)
    recognizer = Recognizer(RecognizeConfig(model="strcn-a", weights=str(path), engine="torch"))
    crops, _, points = aligned
    live = recognizer.make_input(IntervalCrops(crops, 1, points, float(sample.fps)))
    recognizer.close()
    np.testing.assert_array_equal(live["appearance"], data.inputs["appearance"][0])
