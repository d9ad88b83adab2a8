"""GPU acceptance: TensorRT engines and the torch CUDA-graph backend against CPU references.

Every test is marked ``gpu`` (skipped without a CUDA GPU); the TensorRT tests also skip where
``tensorrt`` does not import. Tolerances: fp32 max abs <= 2e-3 on logits (cuDNN/TensorRT may use
TF32 tensor cores for fp32 convolutions), fp16 max abs <= 2e-2 on class probabilities.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import realtime_mer.models  # noqa: F401  (registers every model)
from realtime_mer.engines import make_engine, probabilities
from realtime_mer.engines.onnxruntime_engine import OnnxRuntimeEngine
from realtime_mer.engines.torch_engine import TorchEngine
from realtime_mer.models.checkpoint import ModelMeta
from realtime_mer.models.export import export_onnx
from realtime_mer.models.registry import get_spec

pytestmark = pytest.mark.gpu
MODELS = ("rcn-a", "region-lstm")
FP32_ATOL = 2e-3
FP16_PROB_ATOL = 2e-2


def _inputs(meta: ModelMeta, batch: int, seed: int) -> dict[str, np.ndarray]:
    return {s.name: x.numpy() for s, x in zip(meta.inputs, get_spec(meta.model).example_inputs(batch, seed=seed))}


@pytest.fixture(scope="module", params=MODELS)
def exported(request, tmp_path_factory):
    """(model on CPU, meta, onnx path); the CPU reference forward runs before the export."""
    spec = get_spec(request.param)
    meta = ModelMeta.from_spec(spec)
    torch.manual_seed(0)
    model = spec.build(meta.config).eval()
    with torch.inference_mode():
        model(*spec.example_inputs(2))
    return model, meta, export_onnx(model, meta, tmp_path_factory.mktemp("onnx") / f"{spec.name}.onnx")


def _max_abs(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


def test_tensorrt_matches_onnxruntime(exported, tmp_path):
    pytest.importorskip("tensorrt", reason="tensorrt is not installed (NVIDIA's wheels from pypi.nvidia.com)")
    _, meta, path = exported
    ort = OnnxRuntimeEngine(path)
    fp32 = make_engine("tensorrt", onnx_path=path, precision="fp32", batch_profile=(1, 2, 4), cache_dir=tmp_path)
    fp16 = make_engine("tensorrt", onnx_path=path, precision="fp16", batch_profile=(1, 2, 4), cache_dir=tmp_path)
    assert fp32.name == "tensorrt" and fp32.device.startswith("cuda:0 (") and fp16.precision == "fp16"
    for batch, seed in ((1, 1), (3, 2), (1, 3)):
        xs = _inputs(meta, batch, seed)
        want = ort.predict(xs)
        got32 = fp32.predict(xs)
        assert set(got32) == set(meta.outputs) and got32["logits"].shape == (batch, len(meta.classes))
        assert _max_abs(got32, want) <= FP32_ATOL
        err16 = float(np.abs(probabilities(fp16.predict(xs)) - probabilities(want)).max())
        assert err16 <= FP16_PROB_ATOL
    with pytest.raises(ValueError, match="outside this TensorRT engine's profile 1-4"):
        fp32.predict(_inputs(meta, 5, 0))
    again = make_engine("tensorrt", onnx_path=path, precision="fp32", batch_profile=(1, 2, 4), cache_dir=tmp_path)
    assert not again.built and again.cache_path == fp32.cache_path  # the second one came from the cache
    for e in (fp32, fp16, again):
        e.close()


def test_torch_cuda_graphs_match_torch_cpu(exported):
    model, meta, _ = exported
    cpu = TorchEngine(model, meta)
    refs = {(b, s): cpu.predict(_inputs(meta, b, s)) for b, s in ((1, 1), (3, 2), (1, 3), (3, 4))}
    gpu_model = get_spec(meta.model).build(meta.config)
    gpu_model.load_state_dict(model.state_dict())
    engine = TorchEngine(gpu_model, meta, device="cuda", precision="fp32")
    assert engine.device.startswith("cuda:0 (")
    for (b, s), want in refs.items():  # each batch size is captured once, then replayed with new inputs
        got = engine.predict(_inputs(meta, b, s))
        assert _max_abs(got, want) <= FP32_ATOL, f"batch {b} seed {s}"
    half = TorchEngine(gpu_model, meta, device="cuda", precision="fp16")
    xs = _inputs(meta, 3, 2)
    assert float(np.abs(probabilities(half.predict(xs)) - probabilities(refs[(3, 2)])).max()) <= FP16_PROB_ATOL
    engine.close()
    half.close()
