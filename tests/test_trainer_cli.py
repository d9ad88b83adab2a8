"""``mer-train`` end to end: the real console script on a flow-image folder (train + LOSO + reports +
checkpoint, then evaluate through ONNX Runtime and export), and LOSO RCN-A on a synthetic set of 8
subjects made by ``realtime_mer.synth`` (real MediaPipe alignment, PyAV decoding, DIS flow)."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

from realtime_mer.models.checkpoint import read_checkpoint_meta
from realtime_mer.synth import EventConfig, SynthConfig, write_dataset
from realtime_mer.train.cli import main
from realtime_mer.train.train import default_jobs

LAST_LINE = re.compile(r"^UF1 (\d\.\d{4}) UAR (\d\.\d{4})$")
CLASSES = ("negative", "positive", "surprise")


def make_flow_images(root: Path, subjects: int = 6, per_class: int = 4, size: int = 72, seed: int = 0) -> Path:
    """RGB PNGs (u, v, strain scaled to 0-255) whose class shows in where the flow is and which way it
    points: negative = brows pulled down, positive = mouth corners up, surprise = brows up; plus noise."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:size, 0:size] / size
    patterns = {"negative": (0.3, 1.0), "positive": (0.75, -1.0), "surprise": (0.3, -1.0)}
    (root / "img").mkdir(parents=True, exist_ok=True)
    rows = []
    for s in range(subjects):
        for label, (cy, dv) in patterns.items():
            for k in range(per_class):
                blob = np.exp(-(((ys - cy - rng.normal(0, 0.03)) / 0.1) ** 2 + ((xs - 0.5) / 0.3) ** 2))
                u = rng.normal(0, 0.1, blob.shape) + 0.2 * rng.normal() * blob
                v = rng.normal(0, 0.1, blob.shape) + dv * rng.uniform(0.6, 1.2) * blob
                strain = np.abs(np.gradient(v, axis=0)) + np.abs(np.gradient(u, axis=1))
                rgb = np.stack([(u + 2) / 4, (v + 2) / 4, strain / strain.max()], -1)
                name = f"s{s + 1:02d}_{label}_{k}"
                bgr = cv2.cvtColor((np.clip(rgb, 0, 1) * 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
                cv2.imwrite(str(root / "img" / f"{name}.png"), bgr)
                rows.append({"subject": f"s{s + 1:02d}", "sample": name, "label": label})
    with open(root / "labels.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, ["subject", "sample", "label"])
        w.writeheader()
        w.writerows(rows)
    return root


def _script() -> str:
    found = shutil.which("mer-train", path=str(Path(sys.executable).parent)) or shutil.which("mer-train")
    if not found:
        pytest.fail("the mer-train console script is not installed (pip install -e .)")
    return found


def _check_reports(out: Path, n: int) -> dict:
    doc = json.loads((out / "results.json").read_text())
    assert doc["classes"] == list(CLASSES)
    cm = np.array(doc["results"]["full"]["confusion"])
    assert cm.shape == (3, 3) and cm.sum() == n
    assert (out / "results.md").read_text().startswith("| Set | UF1 | UAR | Acc | n |")
    png = cv2.imread(str(out / "confusion_full.png"))
    assert png is not None and png.shape == (420, 480, 3)
    blue = (png[..., 0].astype(int) - png[..., 2] > 60).sum()  # the shaded cells of the matrix
    assert blue > 2000, "the PNG shows shaded confusion cells"
    return doc


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs os.sched_setaffinity (Linux)")
@pytest.mark.parametrize(
    ("cores", "folds", "threads", "want"),
    [(1, 68, 1, 1), (2, 68, 1, 2), (2, 1, 1, 1), (2, 68, 2, 1), (2, 68, 4, 1)],
)
def test_default_jobs_follow_the_usable_cores(cores, folds, threads, want):
    usable = os.sched_getaffinity(0)
    if len(usable) < cores:
        pytest.skip(f"needs {cores} usable CPU cores, this process has {len(usable)}")
    try:
        os.sched_setaffinity(0, sorted(usable)[:cores])
        assert default_jobs(folds, threads) == want
    finally:
        os.sched_setaffinity(0, usable)


def test_flow_image_folder_loso_through_the_console_script(tmp_path):
    folder = make_flow_images(tmp_path / "flows")
    config = tmp_path / "small.yaml"
    config.write_text("model: rcn-a\nmodel_config: {feature_maps: 16, stem: conv3-s3}\ntrain: {epochs: 8, batch: 8}\n")
    out = tmp_path / "run"
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    cmd = [_script(), "--dataset", f"flowimages:{folder}", "--model", "rcn-a", "--protocol", "loso",
           "--config", str(config), "--out", str(out), "--seed", "3"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    m = LAST_LINE.match(last)
    assert m, f"last line {last!r}"
    uf1, uar = map(float, m.groups())
    assert uf1 > 0.6 and uar > 0.6, f"chance is 1/3: {last}"
    doc = _check_reports(out, 6 * 3 * 4)
    assert doc["meta"]["folds"] == 6 and doc["meta"]["protocol"] == "loso"
    assert doc["meta"]["seconds"]["jobs"] == default_jobs(6), "no --jobs: one process a usable core"
    meta = read_checkpoint_meta(out / "model.safetensors")
    assert meta.model == "rcn-a" and meta.classes == CLASSES and meta.config["feature_maps"] == 16
    assert meta.training["preprocess"]["shapes"] == {"flow": [3, 60, 60]}

    ev = subprocess.run([_script(), "evaluate", "--checkpoint", str(out / "model.safetensors"), "--dataset",
                         f"flowimages:{folder}", "--engine", "onnxruntime", "--out", str(tmp_path / "eval")],
                        capture_output=True, text=True, env=env, timeout=300, check=False)  # fmt: skip
    assert ev.returncode == 0, ev.stderr[-3000:]
    assert LAST_LINE.match(ev.stdout.strip().splitlines()[-1]) and "onnxruntime" in ev.stderr
    ex = subprocess.run([_script(), "export", "--checkpoint", str(out / "model.safetensors"), "--out",
                         str(tmp_path / "m.onnx")],
                        capture_output=True, text=True, env=env, timeout=300, check=False)  # fmt: skip
    assert ex.returncode == 0, ex.stderr[-3000:]
    onnx.checker.check_model(str(tmp_path / "m.onnx"))


def test_bad_input_is_a_clear_error(tmp_path, capsys):
    assert main(["--dataset", f"flowimages:{tmp_path / 'nope'}", "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    folder = make_flow_images(tmp_path / "f", subjects=2, per_class=1)
    assert main(["--dataset", f"flowimages:{folder}", "--model", "rcn-zz", "--out", str(tmp_path / "o")]) == 2
    assert "unknown model 'rcn-zz'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def synth_set(face_model, tmp_path_factory) -> Path:
    """8 subjects, 16 clips of about 3 s with 3 micro-expressions each, MEGC classes."""
    out = tmp_path_factory.mktemp("synth8")
    cfg = SynthConfig(subjects=8, size=(256, 192), clip_seconds=(2.6, 3.0),
                      events=EventConfig(events_per_clip=(3, 3), kind_weights=(1, 0, 0), neutral_fraction=0.0,
                                         micro_amplitude=(2.0, 3.0), classes=CLASSES))  # fmt: skip
    write_dataset(out, clips=16, fps=30, seed=21, config=cfg, model_path=face_model)
    return out


def test_synthetic_loso_rcn_a(synth_set, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["--dataset", f"synth:{synth_set}?classes=megc3", "--model", "rcn-a", "--protocol", "loso",
                 "--epochs", "4", "--batch", "8", "--out", str(out), "--workers", "2", "--jobs", "2",
                 "--cache", str(tmp_path / "cache"),
                 "--no-final"])  # fmt: skip
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    m = LAST_LINE.match(lines[-1])
    assert m, lines[-1]
    uf1, uar = map(float, m.groups())
    doc = _check_reports(out, doc_n := json.loads((out / "results.json").read_text())["results"]["full"]["n"])
    assert doc_n >= 40 and doc["meta"]["folds"] == 8
    assert uf1 > 0.6 and uar > 0.6, f"chance is about 1/3: UF1 {uf1} UAR {uar}"
