"""Flow images in and out, checkpoints by name, and fine-tuning from a checkpoint.

A small synthetic set (real MediaPipe alignment, PyAV decoding, DIS flow) is written by the
``realtime-mer synth --flow-images`` command line as MEGC 2019 composite-style maps (28x28 PNGs of
u, v, strain, each channel min-max scaled to 0-255; labels.csv with subject, sample, label,
database), read back with ``flowimages:DIR``, scored with ``mer-train evaluate --checkpoint default``
and used to fine-tune with ``mer-train --init``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from safetensors.numpy import load_file

from realtime_mer.cli import main as realtime_mer_main
from realtime_mer.train.cli import main
from realtime_mer.train.datasets import open_dataset
from realtime_mer.train.experiment import open_datasets, resolve_checkpoint
from realtime_mer.train.flowimages import image_name, to_png
from realtime_mer.train.preprocess import PreprocessConfig, preprocess
from realtime_mer.weights import default_weights

SYNTH = {
    "subjects": 3,
    "size": [256, 192],
    "clip_seconds": [2.6, 3.0],
    "events": {"events_per_clip": [2, 2], "kind_weights": [1, 0, 0], "neutral_fraction": 0.0,
               "micro_amplitude": [2.0, 3.0], "classes": ["negative", "positive", "surprise"]},
}  # fmt: skip


def test_to_png_scales_each_channel_to_0_255():
    m = np.zeros((28, 28, 3), np.float32)
    m[..., 0] = np.linspace(-2, 3, 28)[None, :]
    m[..., 1] = 0.25  # a constant channel becomes 0
    m[5, 7, 2], m[9, 9, 2] = 0.1, 0.4
    png = to_png(m)
    assert png.dtype == np.uint8 and png.shape == (28, 28, 3)
    assert png[..., 0].min() == 0 and png[..., 0].max() == 255 and png[0, 27, 0] == 255
    assert not png[..., 1].any()
    assert png[9, 9, 2] == 255 and png[5, 7, 2] == 64 and png[0, 0, 2] == 0
    assert m[0, 0, 0] == -2, "the input is not changed"
    with pytest.raises(ValueError, match=r"\(h, w, 3\)"):
        to_png(np.zeros((28, 28, 2), np.float32))


@pytest.fixture(scope="module")
def written(face_model, tmp_path_factory) -> tuple[Path, Path]:
    """``(synthetic set, its flow images)`` written by ``realtime-mer synth --flow-images``."""
    root = tmp_path_factory.mktemp("flowimages")
    config = root / "synth.yaml"
    config.write_text(yaml.safe_dump(SYNTH))
    out, images = root / "synth", root / "maps"
    code = realtime_mer_main(["synth", "--out", str(out), "--clips", "6", "--seed", "5", "--config", str(config),
                              "--flow-images", str(images)])  # fmt: skip
    assert code == 0
    return out, images


def test_synthetic_set_as_composite_flow_images(written, tmp_path):
    synth, images = written
    with open(images / "labels.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["subject", "sample", "label", "database"]
    source = open_dataset(f"synth:{synth}?classes=megc3")
    assert len(rows) - 1 == len(source.samples) == 12
    back = open_dataset(f"flowimages:{images}")
    assert back.classes == ("negative", "positive", "surprise")
    expected = {image_name(s.subject, s.sample_id): (s.subject, s.label) for s in source.samples}
    assert {s.sample_id: (s.subject, s.label) for s in back.samples} == expected
    assert {s.dataset for s in back.samples} == {"synth"} and {r[2] for r in rows[1:]} <= {"0", "1", "2"}
    # each PNG: 28x28 RGB = u, v, strain of the map the live path's preprocessing makes, min-max 0-255
    pre = PreprocessConfig(input="rcn", shapes={"flow": (3, 28, 28)})
    prepared = preprocess(source, pre, tmp_path / "cache", progress=False)
    for s, m in zip(prepared.samples, prepared.inputs["flow"][prepared.test_rows]):
        path = images / "synth" / s.subject / f"{image_name(s.subject, s.sample_id)}.png"
        rgb = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)
        assert rgb.shape == (28, 28, 3) and rgb.dtype == np.uint8
        assert (rgb.reshape(-1, 3).min(0) == 0).all() and (rgb.reshape(-1, 3).max(0) == 255).all()
        np.testing.assert_allclose(rgb / 255.0, m.transpose(1, 2, 0), atol=0.5 / 255 + 1e-6)
    # mer-train flowimages rewrites a flow-image set as itself (read, min-max scaled again, written)
    again = tmp_path / "again"
    assert (
        main(["flowimages", "--dataset", f"flowimages:{images}", "--out", str(again), "--cache", str(tmp_path / "c")])
        == 0
    )
    assert (again / "labels.csv").read_text() == (images / "labels.csv").read_text()
    for png in images.rglob("*.png"):
        assert (cv2.imread(str(again / png.relative_to(images))) == cv2.imread(str(png))).all()
    # the same clips with another flow method, names suffixed: the two sets pool in one dataset
    tvl1 = tmp_path / "tvl1"
    args = ["flowimages", "--dataset", f"synth:{synth}?classes=megc3", "--out", str(tvl1), "--flow-method", "tvl1"]
    assert main([*args, "--suffix", "_tvl1", "--cache", str(tmp_path / "c")]) == 0
    pooled = open_datasets([f"flowimages:{images}", f"flowimages:{tvl1}"])
    assert len(pooled.samples) == 24 and len(pooled.subjects) == len(back.subjects) == 3
    assert {s.sample_id for s in pooled.samples} == set(expected) | {f"{n}_tvl1" for n in expected}
    assert main([*args, "--suffix", "/x"]) == 2


def test_evaluate_default_checkpoint(written, tmp_path, capsys):
    synth, images = written
    assert resolve_checkpoint("default") == resolve_checkpoint("rcn-a") == default_weights("rcn-a")
    out = tmp_path / "eval"
    cache = ["--cache", str(tmp_path / "cache")]
    assert (
        main(["evaluate", "--checkpoint", "default", "--dataset", f"flowimages:{images}", "--out", str(out), *cache])
        == 0
    )
    doc = json.loads((out / "results.json").read_text())
    assert doc["meta"]["checkpoint"] == str(default_weights("rcn-a")) and doc["results"]["full"]["n"] == 12
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("UF1 ")
    # the same weights on maps made another way than in training (Farneback flow instead of DIS)
    out2 = tmp_path / "eval-farneback"
    assert main(["evaluate", "--checkpoint", "rcn-a", "--dataset", f"synth:{synth}?classes=megc3", "--out",
                 str(out2), *cache, "--preprocess", "flow_method=farneback"]) == 0  # fmt: skip
    assert json.loads((out2 / "results.json").read_text())["meta"]["preprocess"]["flow_method"] == "farneback"
    assert main(["evaluate", "--checkpoint", "nope.safetensors", "--dataset", f"flowimages:{images}"]) == 2
    assert "nope.safetensors" in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", "default", "--dataset", f"flowimages:{images}",
                 "--preprocess", "shapes=[1]"]) == 2  # fmt: skip
    assert "comes from the checkpoint's model" in capsys.readouterr().err


def _conv_weights(path: Path) -> dict[str, np.ndarray]:
    return {k: v for k, v in load_file(str(path)).items() if v.ndim == 4}


def test_init_fine_tunes_from_a_checkpoint_without_leaks(written, tmp_path, capsys):
    _, images = written
    base = ["--dataset", f"flowimages:{images}", "--model", "rcn-a", "--protocol", "loso", "--epochs", "1",
            "--batch", "4", "--optimizer", "sgd", "--lr", "1e-9", "--cache", str(tmp_path / "cache"),
            "--jobs", "1"]  # fmt: skip
    # a tiny learning rate: the trained model stays where it started, the shipped weights
    assert main([*base, "--init", "default", "--out", str(tmp_path / "ft")]) == 0
    init, tuned = _conv_weights(default_weights("rcn-a")), _conv_weights(tmp_path / "ft" / "model.safetensors")
    assert init.keys() == tuned.keys() and init
    for k in init:
        np.testing.assert_allclose(tuned[k], init[k], atol=1e-6)
    saved = yaml.safe_load((tmp_path / "ft" / "config.yaml").read_text())
    assert saved["train"]["init"] == str(default_weights("rcn-a"))
    # without --init the RCN family starts from the shipped weights where they fit (configs/train/rcn.yaml)
    capsys.readouterr()
    assert main([*base, "--out", str(tmp_path / "dflt")]) == 0
    assert "init: the shipped rcn-a weights" in capsys.readouterr().err
    dflt = _conv_weights(tmp_path / "dflt" / "model.safetensors")
    for k in init:
        np.testing.assert_allclose(dflt[k], init[k], atol=1e-6)
    # --init none: fresh weights are elsewhere
    assert main([*base, "--init", "none", "--out", str(tmp_path / "fresh")]) == 0
    fresh = _conv_weights(tmp_path / "fresh" / "model.safetensors")
    assert max(float(np.abs(fresh[k] - init[k]).max()) for k in init) > 0.01
    assert yaml.safe_load((tmp_path / "fresh" / "config.yaml").read_text())["train"]["init"] is None
    capsys.readouterr()
    # weights trained on this very set have seen every test subject: refused
    assert main([*base, "--init", str(tmp_path / "fresh" / "model.safetensors"), "--out", str(tmp_path / "x")]) == 2
    assert "a leak" in capsys.readouterr().err
    small = tmp_path / "small.yaml"
    small.write_text("model_config: {feature_maps: 16}\n")
    assert main([*base, "--init", "default", "--config", str(small), "--out", str(tmp_path / "y")]) == 2
    assert "feature_maps" in capsys.readouterr().err
    # ... while the default falls back to fresh weights and says why
    assert main([*base, "--config", str(small), "--out", str(tmp_path / "z")]) == 0
    err = capsys.readouterr().err
    assert "init: fresh weights; the shipped rcn-a weights do not fit this run" in err and "feature_maps" in err
