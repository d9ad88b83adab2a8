"""Timing helpers shared by every benchmark: medians and p99 over repeated calls, machine description."""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Result:
    """One row of the benchmark JSON: a stage on a backend at a size.

    ``median_ms``/``p99_ms`` are per call; ``throughput_fps`` is items per second where a call
    handles a batch or a stream (None otherwise); ``note`` says what was measured when not obvious;
    ``extra`` holds a stage's own fields, written at the top level of the row.
    """

    stage: str
    backend: str
    size: str
    median_ms: float
    p99_ms: float
    throughput_fps: float | None = None
    batch: int | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict:
        d = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items() if k != "extra"}
        return {**{k: v for k, v in d.items() if v not in (None, "") or k == "throughput_fps"}, **self.extra}


def measure(fn: Callable[[], object], *, warmup: int = 5, iters: int = 50, max_seconds: float = 10.0) -> np.ndarray:
    """Call ``fn`` ``warmup`` times, then up to ``iters`` times (stopping after ``max_seconds``); ms per call."""
    for _ in range(warmup):
        fn()
    times = []
    deadline = time.perf_counter() + max_seconds
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
        if time.perf_counter() > deadline and len(times) >= 5:
            break
    return np.asarray(times)


def row(
    stage: str, backend: str, size: str, times_ms: np.ndarray, *, batch: int | None = None, note: str = ""
) -> Result:
    """A :class:`Result` from per-call times; throughput (items/s at the median) only for batched calls."""
    med = float(np.median(times_ms))
    fps = batch * 1e3 / med if batch and med > 0 else None
    return Result(stage, backend, size, med, float(np.percentile(times_ms, 99)), fps, batch, note)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpu_name() -> str | None:
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except Exception:
        pass
    return None


def machine() -> dict:
    """The machine block of the benchmark JSON: CPU, GPU and the versions that matter."""
    versions = {}
    for dist in ("numpy", "numba", "opencv-contrib-python", "av", "mediapipe", "torch", "onnxruntime", "tensorrt"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    versions["python"] = platform.python_version()
    return {
        "cpu": f"{_cpu_name()} ({os.cpu_count()} logical CPUs)",
        "gpu": _gpu_name(),
        "platform": platform.platform(),
        "versions": versions,
    }
