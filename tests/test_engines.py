"""Engines: the predict contract, make_engine's choice and errors, softmax, timing, the engine cache."""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import replace

import numpy as np
import onnx
import pytest
import torch

import realtime_mer.models  # noqa: F401  (registers every model)
from realtime_mer.engines import (
    BackendUnavailableError,
    EngineCache,
    EngineKey,
    make_engine,
    probabilities,
)
from realtime_mer.engines.onnxruntime_engine import OnnxRuntimeEngine
from realtime_mer.engines.tensorrt_engine import calibration_digest, check_batch_profile
from realtime_mer.engines.torch_engine import TorchEngine
from realtime_mer.files import cache_dir
from realtime_mer.models.checkpoint import ModelMeta
from realtime_mer.models.export import export_onnx
from realtime_mer.models.registry import build_model, get_spec

MODEL = "rcn-a"
HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None


@pytest.fixture(scope="module")
def rcn(tmp_path_factory):
    """(model, meta, onnx path, batch-3 inputs); the torch reference runs before the export."""
    meta = ModelMeta.from_spec(MODEL)
    model = build_model(MODEL)
    x = get_spec(MODEL).example_inputs(3)[0].numpy()
    with torch.inference_mode():
        model(torch.from_numpy(x))
    path = export_onnx(model, meta, tmp_path_factory.mktemp("onnx") / f"{MODEL}.onnx")
    return model, meta, path, x


def test_torch_cpu_engine_is_the_model(rcn):
    model, meta, _, x = rcn
    engine = TorchEngine(model, meta)
    out = engine.predict(x)
    assert list(out) == ["logits"] and out["logits"].shape == (3, 3) and out["logits"].dtype == np.float32
    with torch.inference_mode():
        np.testing.assert_array_equal(out["logits"], model(torch.from_numpy(x)).numpy())
    assert engine.device == "cpu" and engine.precision == "fp32"
    assert engine.describe() == "torch on cpu, fp32, inputs flow(B, 3, 60, 60) -> logits"


def test_predict_accepts_a_dict_or_a_bare_array_and_returns_fresh_arrays(rcn):
    _, _, path, x = rcn
    engine = OnnxRuntimeEngine(path, intra_op_threads=1)
    a = engine.predict(x)
    b = engine.predict({"flow": x.astype(np.float64)})  # cast to float32 on the way in
    np.testing.assert_allclose(a["logits"], b["logits"], rtol=0, atol=1e-6)
    a["logits"][:] = 0
    assert np.abs(engine.predict(x)["logits"]).sum() > 0
    assert engine.device == "cpu" and engine.name == "onnxruntime"
    assert engine.describe() == "onnxruntime on cpu, fp32, inputs flow(B, 3, 60, 60) -> logits, 1 intra-op threads"


def test_bad_inputs_say_what_is_expected(rcn):
    _, _, path, x = rcn
    engine = OnnxRuntimeEngine(path)
    with pytest.raises(ValueError, match=r"missing \['flow'\], unknown \['image'\]"):
        engine.predict({"image": x})
    with pytest.raises(ValueError, match=r"shape \(3, 3, 60, 59\); the model expects \(B, 3, 60, 60\)"):
        engine.predict(x[..., :59])
    spec = get_spec("region-lstm")
    lstm = TorchEngine(build_model("region-lstm"), ModelMeta.from_spec(spec))
    feed = {s.name: np.zeros((2, *s.shape), np.float32) for s in spec.inputs()}
    with pytest.raises(ValueError, match="has 8 inputs .*pass a dict"):
        lstm.predict(feed["mouth"])
    feed["h0"] = feed["h0"][:1]
    with pytest.raises(ValueError, match="input 'h0' has batch 1 but the other inputs have 2"):
        lstm.predict(feed)


def test_probabilities_is_a_stable_softmax():
    logits = np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, -1000.0]], np.float32)
    p = probabilities({"logits": logits, "h1": np.zeros((2, 4))})
    assert p.dtype == np.float32 and np.all(np.isfinite(p))
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(p[0], np.exp([1, 2, 3]) / np.exp([1, 2, 3]).sum(), rtol=1e-6)
    np.testing.assert_allclose(p[1], [1.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_array_equal(probabilities(logits), p)


def test_auto_picks_the_best_available_and_says_so(rcn, tmp_path, caplog):
    model, meta, path, x = rcn
    with caplog.at_level(logging.INFO, logger="realtime_mer.engines"):
        engine = make_engine("auto", onnx_path=path, cache_dir=tmp_path)
    if HAS_TENSORRT and engine.name == "tensorrt":
        pytest.skip("tensorrt is usable here: auto picked it (covered by the gpu tests)")
    assert engine.name == "onnxruntime" and engine.device == "cpu"
    assert "engine auto: picked onnxruntime" in caplog.text
    if not HAS_TENSORRT:
        assert "tensorrt: tensorrt is not installed" in caplog.text
    assert engine.meta == meta
    probs = probabilities(engine.predict(x))
    assert probs.shape == (3, 3)
    cpu = make_engine("auto", onnx_path=path, device="cpu")
    assert cpu.name == "onnxruntime"
    only_model = make_engine("auto", model=model, meta=meta, device="cpu", cache_dir=tmp_path)
    assert only_model.name == "onnxruntime"  # exported into the cache on the way


def test_model_only_is_exported_once_into_the_cache(rcn, tmp_path):
    model, meta, _, x = rcn
    a = make_engine("onnxruntime", model=model, meta=meta, device="cpu", cache_dir=tmp_path)
    files = sorted((tmp_path / "onnx").iterdir())
    assert len(files) == 1 and files[0].name.startswith("rcn-a-") and files[0].suffix == ".onnx"
    stamp = files[0].stat().st_mtime_ns
    b = make_engine("onnxruntime", model=model, meta=meta, device="cpu", cache_dir=tmp_path)
    assert files[0].stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(a.predict(x)["logits"], b.predict(x)["logits"])


def test_requested_backend_unavailable(rcn):
    _, meta, path, _ = rcn
    if not HAS_TENSORRT:
        hint = "tensorrt is not installed: .*pypi.nvidia.com.*--engine onnxruntime"
        with pytest.raises(BackendUnavailableError, match=hint):
            make_engine("tensorrt", onnx_path=path)
    with pytest.raises(BackendUnavailableError, match="torch backend runs an nn.Module: pass model="):
        make_engine("torch", onnx_path=path)
    if not torch.cuda.is_available():
        with pytest.raises(BackendUnavailableError, match="torch has no usable CUDA"):
            make_engine("torch", model=build_model(MODEL), meta=meta, device="cuda")
        with pytest.raises(BackendUnavailableError, match="no CUDAExecutionProvider"):
            make_engine("onnxruntime", onnx_path=path, device="cuda:0")
    with pytest.raises(ValueError, match="is not one of 'auto', 'tensorrt'"):
        make_engine("openvino", onnx_path=path)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs onnx_path= .* or model="):
        make_engine("auto")
    with pytest.raises(ValueError, match="1 <= min <= opt <= max"):
        make_engine("onnxruntime", onnx_path=path, batch_profile=(4, 2, 8))


def test_torch_engine_via_make_engine_reads_meta_from_onnx(rcn):
    model, meta, path, x = rcn
    engine = make_engine("torch", onnx_path=path, model=model, device="cpu")
    assert engine.name == "torch" and engine.meta == meta and engine.precision == "fp32"
    ort = OnnxRuntimeEngine(path)
    np.testing.assert_allclose(engine.predict(x)["logits"], ort.predict(x)["logits"], rtol=0, atol=1e-4)


KEY = EngineKey("ab" * 32, "10.13.0", "NVIDIA H100 80GB HBM3", "9.0", "fp16", (1, 4, 32))


@pytest.mark.parametrize(
    "change",
    [
        {"onnx_sha256": "cd" * 32},
        {"tensorrt": "10.14.1"},
        {"gpu": "NVIDIA H200"},
        {"compute_capability": "8.9"},
        {"precision": "int8"},
        {"batch_profile": (1, 8, 32)},
        {"calibration": "ef" * 32},
    ],
    ids=lambda c: "new-" + next(iter(c)),
)
def test_engine_key_changes_with_every_field(change):
    other = replace(KEY, **change)
    assert other.digest() != KEY.digest() and other.filename("rcn-a") != KEY.filename("rcn-a")


def test_engine_key_is_stable_and_readable():
    assert replace(KEY).digest() == KEY.digest()
    assert KEY.digest() == EngineKey(**{**KEY.__dict__}).digest()
    assert KEY.filename("rcn/a") == f"rcn_a-fp16-{KEY.digest()[:16]}.engine"


def test_calibration_digest_and_batch_profile():
    a = [{"flow": np.zeros((2, 3), np.float32)}]
    assert calibration_digest(None) == ""
    assert calibration_digest(a) == calibration_digest([{"flow": np.zeros((2, 3), np.float64)}])
    assert calibration_digest(a) != calibration_digest([{"flow": np.ones((2, 3), np.float32)}])
    assert check_batch_profile([1, 4, 32]) == (1, 4, 32)
    with pytest.raises(ValueError):
        check_batch_profile((0, 1, 2))


def test_cache_dir_honours_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "realtime-mer"
    assert EngineCache().root == tmp_path / "realtime-mer" / "engines"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert str(cache_dir()).endswith(".cache/realtime-mer")


def test_engine_cache_builds_once_and_rebuilds_corrupt_files(rcn, tmp_path):
    """The cached payload here is a real ONNX file and ``onnx.load_from_string`` the real deserializer."""
    payload = rcn[2].read_bytes()
    builds = []

    def build() -> bytes:
        builds.append(1)
        return payload

    cache = EngineCache(tmp_path)
    m1, path, built = cache.load_or_build(KEY, build, onnx.load_from_string, "rcn-a")
    assert built and path.is_file() and path.with_suffix(".json").is_file() and len(builds) == 1
    m2, _, built = cache.load_or_build(KEY, build, onnx.load_from_string, "rcn-a")
    assert not built and len(builds) == 1 and m2.graph.input[0].name == "flow"
    _, other, built = cache.load_or_build(replace(KEY, precision="fp32"), build, onnx.load_from_string, "rcn-a")
    assert built and other != path and len(builds) == 2
    path.write_bytes(b"\x0a\xff garbage")
    with pytest.warns(UserWarning, match="is unreadable .* rebuilding"):
        m3, _, built = cache.load_or_build(KEY, build, onnx.load_from_string, "rcn-a")
    assert built and len(builds) == 3 and path.read_bytes() == payload and m3.graph.input[0].name == "flow"
