"""Benchmarks of the recognizers: every registered model on every usable backend, batch 1 and 32.

The backends run the same ONNX export of the same freshly initialised weights, on the same random
inputs, in one run: torch (eager CPU, or CUDA graphs on a GPU), ONNX Runtime, and TensorRT where
it imports and a GPU is present.
"""

from __future__ import annotations

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
    import torch

    from realtime_mer.engines import make_engine
    from realtime_mer.models import build_model, list_specs
    from realtime_mer.models.checkpoint import ModelMeta
    from realtime_mer.models.export import export_onnx

    gpu = torch.cuda.is_available()
    out = []
    with tempfile.TemporaryDirectory(prefix="realtime-mer-bench-onnx-") as tmp:
        for spec in list_specs():
            if models and spec.name not in models:
                continue
            onnx = export_onnx(build_model(spec.name), spec.name, Path(tmp) / f"{spec.name}.onnx")
            meta = ModelMeta.from_spec(spec)
            heavy = spec.name in HEAVY and not gpu
            batches = (1,) if heavy else BATCHES
            n = max(5, iters // 10) if heavy else iters
            for kind in _backends():
                engine = make_engine(
                    kind, onnx_path=onnx, model=build_model(spec.name) if kind == "torch" else None, meta=meta
                )
                for b in batches:
                    feed = {t.name: x.numpy() for t, x in zip(spec.inputs(), spec.example_inputs(b))}
                    t = measure(lambda engine=engine, feed=feed: engine.predict(feed), warmup=3, iters=n)
                    out.append(row("engine", f"{kind}:{spec.name}", _shape(spec), t, batch=b, note=engine.describe()))
                engine.close()
    return out


def _shape(spec) -> str:
    first = spec.inputs()[0]
    return "x".join(str(s) for s in first.shape)


STAGES = {"engines": bench_engines}
