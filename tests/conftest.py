"""Shared fixtures: where the real data lives, and the skips for absent data, models and GPUs."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; tests marked ``realdata`` are skipped when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test data not found at {SHARED_DATA} (see README: tests marked realdata)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def face_model() -> Path:
    """The MediaPipe face_landmarker.task, resolved offline; skipped with the reason when absent."""
    from realtime_mer.face.model import ModelNotFoundError, resolve_model_path

    try:
        return resolve_model_path()
    except ModelNotFoundError as e:
        pytest.skip(str(e))


def pytest_collection_modifyitems(config, items):
    if not SHARED_DATA.is_dir():
        skip = pytest.mark.skip(reason=f"real test data not found at {SHARED_DATA}")
        for item in items:
            if "realdata" in item.keywords:
                item.add_marker(skip)
    if not _gpu_available():
        skip = pytest.mark.skip(reason="no CUDA GPU visible (torch.cuda / numba.cuda)")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


def _gpu_available() -> bool:
    try:
        from numba import cuda

        return bool(cuda.is_available())
    except Exception:
        return False
