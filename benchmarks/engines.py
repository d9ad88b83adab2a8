"""Benchmarks of the recognizers: every registered model on every usable backend, batch 1 and 32.

The backends run the same ONNX export of the same freshly initialised weights, on the same random
inputs, in one run: torch (eager CPU, or CUDA graphs on a GPU), ONNX Runtime, and TensorRT where
it imports and a GPU is present.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from .timing import Result, measure, row

BATCHES = (1, 32)
# Models whose batch-32 call takes seconds on a CPU: timed at batch 1 only there, with fewer calls.
HEAVY = ("strcn-a", "strcn-g", "region-lstm", "dtscnn")


def _backends() -> list[str]:
    import importlib.util

    from realtime_mer.engines.cuda import cuda_available

    kinds = ["torch", "onnxruntime"]
    if importlib.util.find_spec("tensorrt") is not None and cuda_available():
        kinds.append("tensorrt")
    return kinds


def bench_engines(inp: object, iters: int, models: tuple[str, ...] | None = None) -> list[Result]:
    """Latency per ``predict`` call (host arrays in and out) for each model, backend and batch size."""

    from realtime_mer.engines import make_engine
    from realtime_mer.models import build_model, list_specs
    from realtime_mer.models.checkpoint import ModelMeta
    from realtime_mer.models.export import ExportError, export_onnx

    out = []
    with tempfile.TemporaryDirectory(prefix="realtime-mer-bench-onnx-") as tmp:
        for spec in list_specs():
            if models and spec.name not in models:
                continue
            try:
                onnx: Path | None = export_onnx(build_model(spec.name), spec.name, Path(tmp) / f"{spec.name}.onnx")
            except ExportError as e:  # the other backends run from the ONNX file: torch alone is timed
                print(f"bench: {spec.name}: torch only: {e}", file=sys.stderr)
                onnx = None
            meta = ModelMeta.from_spec(spec)
            for kind in _backends() if onnx is not None else ["torch"]:
                heavy = spec.name in HEAVY and not _on_gpu(kind)
                batches = (1,) if heavy else BATCHES
                n = max(5, iters // 10) if heavy else iters
                engine = make_engine(
                    kind, onnx_path=onnx, model=build_model(spec.name) if kind == "torch" else None, meta=meta
                )
                for b in batches:
                    feed = {t.name: x.numpy() for t, x in zip(spec.inputs(), spec.example_inputs(b))}
                    t = measure(lambda engine=engine, feed=feed: engine.predict(feed), warmup=3, iters=n)
                    out.append(row("engine", f"{kind}:{spec.name}", _shape(spec), t, batch=b, note=engine.describe()))
                engine.close()
    return out


def _on_gpu(kind: str) -> bool:
    """Whether ``make_engine(kind)`` (device auto) runs on a GPU here."""
    from realtime_mer.engines.cuda import cuda_available, torch_cuda_available
    from realtime_mer.engines.onnxruntime_engine import ort_cuda_available

    if kind == "torch":
        return torch_cuda_available()
    if kind == "onnxruntime":
        return ort_cuda_available() and cuda_available()
    return True  # tensorrt is only listed with a GPU


def _shape(spec) -> str:
    first = spec.inputs()[0]
    return "x".join(str(s) for s in first.shape)


STAGES = {"engines": bench_engines}
