"""The shipped default weights: they load through the engine interface (torch and ONNX Runtime) and
classify the onset->apex flows of a freshly generated synthetic set (a seed not used in training),
computed with the live path's functions, well above chance."""

from __future__ import annotations

import numpy as np
import pytest

from realtime_mer.engines import make_engine, probabilities
from realtime_mer.models.checkpoint import load_checkpoint
from realtime_mer.synth import EventConfig, SynthConfig, write_dataset
from realtime_mer.train.datasets import open_dataset
from realtime_mer.train.experiment import checkpoint_preprocess
from realtime_mer.train.metrics import evaluate
from realtime_mer.train.preprocess import preprocess
from realtime_mer.weights import WeightsNotFoundError, available, default_weights

HELD_OUT_SEED = 77  # training used seeds 11 and 12 (REPORT.md); seeds 2 and 3 were its held-out sets


def test_default_weights_metadata():
    assert "rcn-a" in available()
    model, meta = load_checkpoint(default_weights("rcn-a"), "rcn-a")
    assert meta.classes == ("negative", "positive", "surprise")
    assert [(t.name, t.shape) for t in meta.inputs] == [("flow", (3, 60, 60))]
    pre = meta.training["preprocess"]
    assert pre["input"] == "rcn" and pre["face_size"] == [128, 128] and pre["flow_method"] == "dis"
    data = meta.training["data"]
    assert data["sources"][0]["generator"] == "realtime_mer.synth" and data["sources"][0]["seed"] == 11
    assert sum(p.numel() for p in model.parameters()) < 100_000
    with pytest.raises(WeightsNotFoundError, match="no shipped weights for model 'rcn-f'"):
        default_weights("rcn-f")


@pytest.fixture(scope="module")
def fresh_set(face_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("heldout")
    cfg = SynthConfig(subjects=6, clip_seconds=(2.6, 3.0),
                      events=EventConfig(events_per_clip=(3, 3), kind_weights=(1, 0, 0), neutral_fraction=0.0,
                                         classes=("negative", "positive", "surprise")))  # fmt: skip
    write_dataset(out, clips=12, fps=30, seed=HELD_OUT_SEED, config=cfg, model_path=face_model)
    return open_dataset(f"synth:{out}?classes=megc3")


def test_shipped_weights_classify_a_fresh_synthetic_set(fresh_set, tmp_path):
    model, meta = load_checkpoint(default_weights("rcn-a"))
    prepared = preprocess(fresh_set, checkpoint_preprocess(meta), tmp_path / "cache", workers=2, progress=False)
    x = prepared.inputs["flow"][prepared.test_rows]
    y = np.array([meta.classes.index(s.label_name) for s in prepared.samples])
    assert len(y) >= 30 and not prepared.failed
    probs = {}
    for kind in ("torch", "onnxruntime"):
        engine = make_engine(kind, model=model, meta=meta, device="cpu", cache_dir=tmp_path / "engines")
        assert engine.name == kind
        probs[kind] = probabilities(engine.predict({"flow": x}))
        engine.close()
    np.testing.assert_allclose(probs["torch"], probs["onnxruntime"], atol=1e-4)
    scores = evaluate(y, probs["onnxruntime"].argmax(1), 3)["full"]
    print(f"held-out seed {HELD_OUT_SEED}: UF1 {scores.uf1:.4f} UAR {scores.uar:.4f} (n={scores.n})")
    # chance is 1/3; the default generator draws action units from the real coding sheets, where negative
    # and positive share AUs (AU14, AU12, AU4): version 2 scored 0.61 here on the trainer's old crops,
    # 0.67 on the live crops, version 3 0.69 (REPORT.md)
    assert scores.uf1 > 0.5 and scores.uar > 0.5, f"chance is 1/3: {scores}"
    claimed = meta.training["protocol_scores"]["full"]["uf1"]  # the LOSO figure the weights ship with
    assert scores.uf1 >= claimed - 0.15, f"the shipped figure {claimed:.3f} does not hold on a fresh set: {scores}"
