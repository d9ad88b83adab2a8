"""Per-event cost of every live recognizer: input assembly from an interval's aligned crops plus the
engine call, as :meth:`realtime_mer.recognize.Recognizer.classify` does it for one spotted interval.

Each model runs with its shipped weights (fresh weights where none ship, said in the note) on torch
and ONNX Runtime, in one run, on the same interval: :data:`INTERVAL` frames of the bench clip aligned
by the face stage (a micro-expression of 0.4 s at 30 fps), apex in the middle. Rows: ``event`` (input
+ engine), ``input`` and ``engine`` (the parts), median and p99 over the calls; for the region
CNN-LSTM, which runs its window a step a frame as the frames arrive, also ``step`` (one step), while
its ``event`` is the whole window run at the close (an interval whose steps were not streamed).
"""

from __future__ import annotations

import sys
import time

import numpy as np

from .signal import Inputs
from .timing import Result, measure, row

LIVE_MODELS = ("rcn-a", "strcn-g", "strcn-a", "region-lstm", "dtscnn")
INTERVAL = 12
"""Frames from onset to offset of the timed interval."""


def interval_crops(frames: list[np.ndarray], fps: float, n: int = INTERVAL):
    """The first ``n`` frames' aligned crops of the face stage (default config) as one
    :class:`~realtime_mer.types.IntervalCrops`, apex in the middle."""
    from realtime_mer.face import FaceConfig, FaceStage
    from realtime_mer.types import Frame, IntervalCrops

    stage = FaceStage(FaceConfig())
    crops, points = [], None
    try:
        for i, image in enumerate(frames):
            found = stage.process(Frame("bench", i, i / fps, time.monotonic(), image))
            if found:
                crops.append(found[0][1].image.copy())
                points = found[0][1].points68 if points is None else points
            if len(crops) == n:
                break
    finally:
        stage.close()
    if len(crops) < n or points is None:
        raise RuntimeError(f"the bench clip shows a face in {len(crops)} of its first frames; {n} are needed")
    return IntervalCrops(np.stack(crops), n // 2, np.asarray(points, np.float32), fps)


def bench_models(inp: Inputs, iters: int, models: tuple[str, ...] = LIVE_MODELS) -> list[Result]:
    """Per-event ``classify`` cost of each live model on torch and ONNX Runtime (batch 1)."""
    import tempfile

    from realtime_mer.errors import UserError
    from realtime_mer.recognize import RecognizeConfig, Recognizer
    from realtime_mer.weights import available

    item = interval_crops(inp.frames, inp.fps)
    shipped = set(available())
    out = []
    with tempfile.TemporaryDirectory(prefix="realtime-mer-bench-models-") as tmp:
        for model in models:
            weights = "default" if model in shipped else _fresh(model, tmp)
            for kind in ("onnxruntime", "torch"):
                try:
                    rec = Recognizer(RecognizeConfig(model=model, weights=weights, engine=kind))
                except UserError as e:  # e.g. an ONNX export this torch cannot make: the other backend still runs
                    print(f"bench: {kind}:{model} skipped: {e}", file=sys.stderr)
                    continue
                parts: list[tuple[float, float]] = []

                def call(rec: Recognizer = rec, parts: list[tuple[float, float]] = parts) -> None:
                    r = rec.classify([item])[0]
                    parts.append((r.input_ms, r.engine_ms))

                n = max(5, iters // 5) if model in ("strcn-a", "region-lstm", "dtscnn", "strcn-g") else iters
                t = measure(call, warmup=2, iters=n)
                split = np.asarray(parts[-len(t) :])
                note = f"{rec.engine.describe()}; {'shipped' if model in shipped else 'fresh'} weights"
                size = f"{INTERVAL}x{item.frames.shape[2]}x{item.frames.shape[1]}"
                out.append(row("event", f"{kind}:{model}", size, t, batch=1, note=note))
                out.append(row("input", f"{kind}:{model}", size, split[:, 0]))
                out.append(row("engine", f"{kind}:{model}", size, split[:, 1]))
                if rec.steps is not None:  # the region CNN-LSTM live: one step a frame as it arrives
                    out.append(row("step", f"{kind}:{model}", size, _step_times(rec, item, n), batch=1,
                                   note="one window step (regions + engine), run as its frame arrives"))  # fmt: skip
                rec.close()
    return out


def _step_times(rec, item, n: int) -> np.ndarray:
    """Times (ms) of the region CNN-LSTM's live step: a frame's six regions differenced from the
    onset's, then one engine step (:class:`realtime_mer.region_stream.RegionStream`)."""
    assert rec.steps is not None and item.points68 is not None
    frames = np.asarray(item.frames)
    times = []
    for i in range(n + 2):
        stream = rec.steps.start(0, frames[0], item.points68, rec.steps.settings.rate or 30.0)  # a step a frame
        t0 = time.perf_counter()
        stream.push(1, frames[1 + i % (len(frames) - 1)])
        times.append((time.perf_counter() - t0) * 1e3)
    return np.asarray(times[2:])


def _fresh(model: str, folder: str) -> str:
    """A checkpoint of freshly initialised ``model`` in ``folder`` (for a model without shipped weights)."""
    from pathlib import Path

    from realtime_mer.models import build_model
    from realtime_mer.models.checkpoint import ModelMeta, save_checkpoint

    path = Path(folder) / f"{model}.safetensors"
    save_checkpoint(build_model(model), path, ModelMeta.from_spec(model, classes=("negative", "positive", "surprise")))
    return str(path)


STAGES = {"models": bench_models}
