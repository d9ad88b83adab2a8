"""Acceptance: every registered model exports to ONNX, and ONNX Runtime agrees with torch.

Agreement: max absolute difference <= 1e-4 on every output (float32), at batch 1 and batch 3
(batch 2 for the models whose one sample has over a million input values, to stay fast on CPU).
The torch reference runs first, then the export, then ONNX Runtime on the same inputs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import realtime_mer.models  # noqa: F401  (registers every model)
from realtime_mer.engines.onnxruntime_engine import OnnxRuntimeEngine
from realtime_mer.engines.torch_engine import TorchEngine
from realtime_mer.models.checkpoint import ModelMeta
from realtime_mer.models.export import export_onnx
from realtime_mer.models.registry import list_specs

ATOL = 1e-4
HEAVY = 1_000_000  # input values per sample above which batch 2 replaces batch 3


@pytest.mark.parametrize("spec", list_specs(), ids=lambda s: s.name)
def test_onnxruntime_matches_torch(spec, tmp_path):
    meta = ModelMeta.from_spec(spec)
    model = spec.build(meta.config).eval()
    big = sum(math.prod(s.shape) for s in meta.inputs) > HEAVY
    batches = {
        b: {s.name: x.numpy() for s, x in zip(meta.inputs, spec.example_inputs(b, seed=b))}
        for b in (1, 2 if big else 3)
    }
    torch_engine = TorchEngine(model, meta)
    want = {b: torch_engine.predict(xs) for b, xs in batches.items()}

    ort = OnnxRuntimeEngine(export_onnx(model, meta, tmp_path / f"{spec.name}.onnx"))
    assert ort.input_names == meta.input_names and ort.output_names == meta.outputs
    assert ort.meta == meta
    for b, xs in batches.items():
        got = ort.predict(xs)
        for name in meta.outputs:
            assert got[name].shape[0] == b and got[name].dtype == np.float32
            err = float(np.abs(got[name] - want[b][name]).max())
            assert err <= ATOL, f"{spec.name} batch {b} output {name}: max abs diff {err:.2e} > {ATOL}"
