"""``realtime-mer doctor``: what this machine has for each stage, and what to do about what is missing."""

from __future__ import annotations

import importlib
import importlib.metadata as md
import os
import platform
from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    """One line of the report: ``required`` checks that fail make the exit status 1."""

    name: str
    ok: bool
    detail: str
    required: bool = True


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def check_face_model() -> Check:
    from .face.model import ModelNotFoundError, resolve_model_path

    try:
        path = resolve_model_path()
    except ModelNotFoundError as e:
        return Check("face model", False, str(e).splitlines()[0] + " (run: realtime-mer fetch-model)")
    return Check("face model", True, f"{path} ({path.stat().st_size:,} bytes, sha256 checked)")


def check_mediapipe() -> Check:
    v = _version("mediapipe")
    if v is None:
        return Check("mediapipe", False, "not installed: pip install mediapipe")
    try:
        from mediapipe.tasks.python import vision  # noqa: F401
    except Exception as e:  # a broken install raises anything
        return Check("mediapipe", False, f"{v}, Tasks API import failed: {e}")
    return Check("mediapipe", True, f"{v} (Tasks API)")


def check_opencv() -> Check:
    import cv2

    info = cv2.getBuildInformation()
    parallel = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if "Parallel framework" in ln), "?")
    has_tvl1 = hasattr(cv2, "optflow") and hasattr(cv2.optflow, "DualTVL1OpticalFlow_create")
    dists = [d for d in ("opencv-python", "opencv-python-headless", "opencv-contrib-python-headless") if _version(d)]
    detail = (
        f"{cv2.__version__}, threads {cv2.getNumThreads()}, parallel {parallel}, "
        f"TV-L1 {'yes' if has_tvl1 else 'no (needs opencv-contrib-python)'}"
    )
    if dists:
        detail += f"; WARNING also installed: {', '.join(dists)} (copies of cv2 overwrite each other)"
    return Check("opencv", has_tvl1, detail)


def check_codecs() -> Check:
    import av

    wanted = {"h264": "decode", "hevc": "decode", "mjpeg": "decode", "libx264": "encode", "mpeg4": "encode"}
    have = []
    for name, mode in wanted.items():
        try:
            av.codec.Codec(name, "r" if mode == "decode" else "w")
            have.append(f"{name}({mode})")
        except Exception:
            have.append(f"{name}({mode}: missing)")
    ok = "h264(decode)" in have
    return Check("pyav codecs", ok, f"av {av.__version__}: " + ", ".join(have))


def check_numba() -> Check:
    import numba

    return Check(
        "numba",
        True,
        f"{numba.__version__}, threading layer config {getattr(numba.config, 'THREADING_LAYER', '?')}, "
        f"{getattr(numba.config, 'NUMBA_NUM_THREADS', '?')} threads",
    )


def check_gpu() -> Check:
    parts = []
    try:
        from numba import cuda

        if cuda.is_available():
            dev = cuda.get_current_device()
            parts.append(
                f"numba.cuda: {dev.name.decode() if isinstance(dev.name, bytes) else dev.name} "
                f"cc {dev.compute_capability}"
            )
        else:
            parts.append("numba.cuda: no CUDA GPU")
    except Exception as e:
        parts.append(f"numba.cuda: unavailable ({type(e).__name__})")
    import torch

    if torch.cuda.is_available():
        parts.append(f"torch {torch.__version__}: {torch.cuda.get_device_name(0)}")
    else:
        parts.append(f"torch {torch.__version__}: CPU only")
    ok = "no CUDA" not in parts[0] and "unavailable" not in parts[0]
    return Check("gpu", ok, "; ".join(parts), required=False)


def check_onnxruntime() -> Check:
    try:
        import onnxruntime as ort
    except ImportError:
        return Check("onnxruntime", False, "not installed: pip install onnxruntime")
    return Check("onnxruntime", True, f"{ort.__version__}, providers {', '.join(ort.get_available_providers())}")


def check_tensorrt() -> Check:
    try:
        trt = importlib.import_module("tensorrt")
    except Exception as e:
        return Check(
            "tensorrt",
            False,
            f"not importable ({type(e).__name__}); engines fall back to ONNX Runtime. "
            "Install NVIDIA's wheels from https://pypi.nvidia.com on a GPU machine",
            required=False,
        )
    cuda_api = next((m for m in ("cuda.bindings.driver", "cuda.cuda", "pycuda.driver") if _importable(m)), None)
    return Check("tensorrt", True, f"{trt.__version__}; CUDA API: {cuda_api or 'torch buffers only'}", required=False)


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
        return True
    except Exception:
        return False


def run_checks() -> list[Check]:
    """Every check, in stage order."""
    return [
        Check("python", True, f"{platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs"),
        check_codecs(),
        check_opencv(),
        check_mediapipe(),
        check_face_model(),
        check_numba(),
        check_onnxruntime(),
        check_gpu(),
        check_tensorrt(),
    ]


def report(checks: list[Check]) -> str:
    """The human-readable table printed by ``realtime-mer doctor``."""
    width = max(len(c.name) for c in checks)
    lines = []
    for c in checks:
        mark = "ok" if c.ok else ("MISSING" if c.required else "absent")
        lines.append(f"{c.name:<{width}}  {mark:<7}  {c.detail}")
    return "\n".join(lines)
