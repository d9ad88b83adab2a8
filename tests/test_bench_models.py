"""``realtime-mer bench --stages models``: the per-event cost rows of the live recognizers (input
assembly + engine) on ONNX Runtime and torch, from a real aligned interval."""

from __future__ import annotations

from realtime_mer.bench.models import bench_models, interval_crops
from realtime_mer.bench.signal import make_inputs


def test_models_stage_times_input_and_engine_of_each_model(face_model, tmp_path):
    inputs = make_inputs(tmp_path, n=20)
    item = interval_crops(inputs.frames, inputs.fps)
    assert item.frames.shape == (12, 128, 128, 3) and item.points68.shape == (68, 2)
    rows = bench_models(inputs, 5, models=("rcn-a", "region-lstm", "strcn-g"))
    got = {(r.stage, r.backend) for r in rows}
    for model in ("rcn-a", "region-lstm", "strcn-g"):
        for kind in ("onnxruntime", "torch"):
            assert {("event", f"{kind}:{model}"), ("input", f"{kind}:{model}"), ("engine", f"{kind}:{model}")} <= got
    for kind in ("onnxruntime", "torch"):  # the region CNN-LSTM's live per-frame step
        assert ("step", f"{kind}:region-lstm") in got and ("step", f"{kind}:rcn-a") not in got
    for r in rows:
        assert 0 < r.median_ms <= r.p99_ms
    events = {r.backend: r for r in rows if r.stage == "event"}
    for model in ("rcn-a", "region-lstm", "strcn-g"):
        assert "shipped weights" in events[f"onnxruntime:{model}"].note
    parts = {(r.stage, r.backend): r.median_ms for r in rows}
    for backend in events:  # an event costs at least its input or its engine part
        assert events[backend].median_ms >= 0.9 * max(parts[("input", backend)], parts[("engine", backend)])
