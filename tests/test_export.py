"""ONNX export: one self-contained, checked file with named IO, a dynamic batch axis and metadata."""

from __future__ import annotations

import hashlib

import numpy as np
import onnx
import pytest

import realtime_mer.models  # noqa: F401  (registers every model)
from realtime_mer.engines.onnxruntime_engine import OnnxRuntimeEngine
from realtime_mer.files import file_sha256
from realtime_mer.models.checkpoint import CheckpointError, ModelMeta
from realtime_mer.models.export import export_onnx, read_onnx_meta
from realtime_mer.models.registry import build_model

MODEL = "strcn-a"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    meta = ModelMeta.from_spec(MODEL, training="unit test")
    model = build_model(MODEL)
    path = export_onnx(model, meta, tmp_path_factory.mktemp("onnx") / "sub" / f"{MODEL}.onnx")
    return path, meta, model


def test_single_self_contained_file(exported):
    path, _, _ = exported
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no .onnx.data, no .part left
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert all(not t.external_data for t in proto.graph.initializer)
    assert [i.name for i in proto.graph.input] == ["appearance"]
    assert [o.name for o in proto.graph.output] == ["logits"]
    for v in (*proto.graph.input, *proto.graph.output):
        assert v.type.tensor_type.shape.dim[0].dim_param == "batch"
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim[1:]] == [3, 922, 30]


def test_metadata_round_trip(exported):
    path, meta, _ = exported
    got = read_onnx_meta(path)
    assert got == meta
    assert got.training == "unit test"
    keys = {p.key for p in onnx.load(str(path), load_external_data=False).metadata_props}
    assert {
        "realtime_mer.model",
        "realtime_mer.config",
        "realtime_mer.classes",
        "realtime_mer.inputs",
        "realtime_mer.version",
    } <= keys


def test_sha256_is_the_file_hash(exported, tmp_path):
    path = exported[0]
    assert file_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    copy = tmp_path / "copy.onnx"
    copy.write_bytes(path.read_bytes()[:-1] + b"\x00")
    assert file_sha256(copy) != file_sha256(path)


def test_fixed_batch_export(tmp_path, exported):
    _, meta, model = exported
    path = export_onnx(model, meta, tmp_path / "fixed.onnx", dynamic_batch=False)
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_value == 1
    engine = OnnxRuntimeEngine(path)
    x = np.zeros((1, *meta.inputs[0].shape), np.float32)
    assert engine.predict(x)["logits"].shape == (1, 3)
    with pytest.raises(ValueError, match=r"shape \(2, 3, 922, 30\); the model expects \(1, 3, 922, 30\)"):
        engine.predict(np.zeros((2, *meta.inputs[0].shape), np.float32))


def test_onnx_without_metadata(tmp_path, exported):
    proto = onnx.load(str(exported[0]))
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "bare.onnx"))
    with pytest.raises(CheckpointError, match="no realtime-mer metadata"):
        read_onnx_meta(tmp_path / "bare.onnx")
    assert OnnxRuntimeEngine(tmp_path / "bare.onnx").meta is None
