"""``mer-train --backend ray`` on a real local Ray cluster: the same per-fold predictions and scores
as ``--jobs 1`` and ``--jobs 2``, a failed fold named in the error, a GPU request the cluster cannot
meet and a missing Ray as one-line usage errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from test_trainer_cli import LAST_LINE, make_flow_images

from realtime_mer.cluster import RAY_MISSING
from realtime_mer.train.cli import main
from realtime_mer.train.cluster import FoldError

ray = pytest.importorskip("ray", reason="Ray is the optional extra realtime-mer[cluster]")


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, Path]:
    """4 subjects x 3 classes x 3 samples of flow images, and a settings file of a small fast RCN-A."""
    root = tmp_path_factory.mktemp("ray")
    config = root / "small.yaml"
    config.write_text("model: rcn-a\nmodel_config: {feature_maps: 8, stem: conv3-s3}\ntrain: {epochs: 1, batch: 8}\n")
    return make_flow_images(root / "flows", subjects=4, per_class=3, size=48), config


def _train(small: tuple[Path, Path], out: Path, *flags: str) -> list[str]:
    folder, config = small
    return ["--dataset", f"flowimages:{folder}", "--config", str(config), "--out", str(out), "--seed", "3",
            "--cache", str(out.parent / "cache"), "--no-final", *flags]  # fmt: skip


def _folds(out: Path) -> list[dict]:
    """folds.json without the timings."""
    return [{k: v for k, v in f.items() if k != "epoch_seconds"} for f in json.loads((out / "folds.json").read_text())]


def test_ray_backend_matches_jobs(small, tmp_path, capsys):
    runs = {"jobs1": ["--jobs", "1"], "jobs2": ["--jobs", "2"], "ray": ["--backend", "ray"]}
    last = {}
    for name, flags in runs.items():
        assert main(_train(small, tmp_path / name, *flags)) == 0
        captured = capsys.readouterr()
        last[name] = captured.out.strip().splitlines()[-1]
        assert LAST_LINE.match(last[name]), last[name]
    assert "Ray: 2 CPU(s), 0 GPU(s); each fold takes 1 CPU and 0 GPU" in captured.err
    assert not ray.is_initialized(), "the run shuts down the cluster it started"
    assert last["ray"] == last["jobs1"] == last["jobs2"]
    want = (tmp_path / "jobs1" / "predictions.csv").read_text()
    assert want.count("\n") == 1 + 4 * 3 * 3
    for name in ("jobs2", "ray"):
        out = tmp_path / name
        assert (out / "predictions.csv").read_text() == want, name
        assert _folds(out) == _folds(tmp_path / "jobs1"), name
        results = json.loads((out / "results.json").read_text())["results"]
        assert results == json.loads((tmp_path / "jobs1" / "results.json").read_text())["results"], name


@pytest.fixture
def cluster():
    """A Ray connection of the test's own, which a run must use and leave open."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_failed_fold_and_gpu_request_on_an_existing_connection(small, tmp_path, cluster, capsys):
    folder, _ = small
    bad = tmp_path / "nine-crop.yaml"  # DTSCNN's resampling on RCN's flow images: every fold raises
    bad.write_text("model: rcn-a\nmodel_config: {feature_maps: 8}\ntrain: {epochs: 1, balance: nine-crop}\n")
    with pytest.raises(FoldError, match=r"fold flowimages/s0\d failed: ValueError: balance: nine-crop is DTSCNN's"):
        main(_train((folder, bad), tmp_path / "bad", "--backend", "ray"))
    assert main(_train(small, tmp_path / "gpu", "--backend", "ray", "--gpus-per-fold", "0.5")) == 2
    assert "--gpus-per-fold 0.5: the Ray cluster has 0 GPU(s)" in capsys.readouterr().err
    assert ray.is_initialized(), "a connection the run did not make stays open"


def test_missing_ray_and_ray_options_without_ray_are_usage_errors(small, tmp_path, capsys, monkeypatch):
    assert main(_train(small, tmp_path / "local", "--address", "auto")) == 2
    assert "--address and --gpus-per-fold are options of --backend ray" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError, as where it is not installed
    assert main(_train(small, tmp_path / "out", "--backend", "ray")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"mer-train: error: {RAY_MISSING}"] and "pip install 'realtime-mer[cluster]'" in RAY_MISSING
    assert not (tmp_path / "out").exists(), "fails before reading or preprocessing anything"
