"""The package as users get it: a wheel (and an sdist) built from this checkout, installed into a
fresh virtual environment, run from an empty folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path, timeout: float = 900, env: dict[str, str] | None = None) -> str:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert r.returncode == 0, (
        f"{' '.join(map(str, cmd))} exited {r.returncode}:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    )
    return r.stdout + r.stderr


@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> Path:
    """The sdist, and the wheel built from it (what ``python -m build`` does by default)."""
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], ROOT)
    return out


def test_wheel_holds_only_the_projects_names_and_its_data(dists):
    (wheel,) = dists.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"realtime_mer", "realtime_mer-0.1.0.dist-info"}
    for needed in ("realtime_mer/configs/pipeline.yaml", "realtime_mer/configs/train/rcn.yaml",
                   "realtime_mer/schemas/records.schema.json", "realtime_mer/weights/rcn-a.safetensors",
                   "realtime_mer/train/cli.py", "realtime_mer/train/datasets/__init__.py", "realtime_mer/bench/run.py",
                   "realtime_mer/py.typed"):  # fmt: skip
        assert needed in names, needed
    entry_points = wheel_text(wheel, "realtime_mer-0.1.0.dist-info/entry_points.txt")
    assert (
        "realtime-mer = realtime_mer.cli:main" in entry_points
        and "mer-train = realtime_mer.train.cli:main" in entry_points
    )


def wheel_text(wheel: Path, member: str) -> str:
    return zipfile.ZipFile(wheel).read(member).decode()


def test_sdist_holds_the_sources_the_wheel_was_built_from(dists):
    (sdist,) = dists.glob("*.tar.gz")
    with tarfile.open(sdist) as tar:
        members = tar.getnames()
    for needed in ("trainer/cli.py", "benchmarks/run.py", "configs/pipeline.yaml", "configs/train/rcn.yaml",
                   "realtime_mer/schemas/records.schema.json", "README.md"):  # fmt: skip
        assert any(m.endswith(needed) for m in members), needed


def test_wheel_installs_and_runs_from_an_empty_folder(dists, tmp_path, face_model):
    """A fresh venv, the wheel and torch (the CPU build this machine has); the commands a new user
    runs first, from a folder with nothing in it."""
    (wheel,) = dists.glob("*.whl")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path)
    # no bytecode compiled at install (most of pip's time): each module is compiled when first imported
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-compile"]
    _run([*pip, "torch==2.13.0"], tmp_path)
    _run([*pip, str(wheel)], tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONDONTWRITEBYTECODE")}
    bin_dir = venv / "bin"
    clip = tmp_path / "planted.mp4"
    from realtime_mer.synth import record

    record(clip, 6.0, seed=4)
    out = _run([str(bin_dir / "realtime-mer"), "fetch-model"], empty, env=env)
    assert str(face_model) in out or "face_landmarker.task" in out
    assert "realtime-mer" in _run([str(bin_dir / "realtime-mer"), "--help"], empty, env=env)
    doctor = _run([str(bin_dir / "realtime-mer"), "doctor"], empty, env=env)
    assert "mediapipe" in doctor and "onnxruntime" in doctor
    _run([str(bin_dir / "realtime-mer"), "--video", str(clip), "--events", "x.jsonl"], empty, env=env)
    records = [json.loads(line) for line in (empty / "x.jsonl").read_text().splitlines()]
    assert [r["state"] for r in records if r["type"] == "status"] == ["connecting", "running", "ended"]
    assert any(r["type"] == "event" and r["model"] == "rcn-a" for r in records)
    assert "--dataset" in _run([str(bin_dir / "mer-train"), "--help"], empty, env=env)
    assert "spot:" in _run([str(bin_dir / "realtime-mer"), "config", "--show"], empty, env=env)
    where = _run(
        [str(bin_dir / "python"), "-c", "import realtime_mer, realtime_mer.train; print(realtime_mer.__file__)"],
        empty,
        env=env,
    )
    assert str(venv) in where and str(ROOT) not in where
