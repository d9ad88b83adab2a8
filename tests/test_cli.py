"""The command line, run as a user runs it: a real process, real files, real output."""

import json
import os
import subprocess
import sys

import pytest
from jsonschema import Draft202012Validator

from realtime_mer.cli import main
from realtime_mer.schemas import records_schema


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, "-m", "realtime_mer.cli", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.mark.realdata
def test_video_run_writes_valid_json_lines(shared_data, face_model, tmp_path):
    out = tmp_path / "out.jsonl"
    r = _cli("--video", str(shared_data / "video" / "smile_d19.mp4"), "--events", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    assert out.exists()
    validator = Draft202012Validator(records_schema())
    records = [json.loads(line) for line in out.read_text().splitlines()]
    for record in records:
        validator.validate(record)
    states = [r["state"] for r in records if r["type"] == "status"]
    assert states == ["connecting", "running", "ended"]
    events = [r for r in records if r["type"] == "event"]
    assert events
    for ev in events:
        assert ev["stream"].endswith("smile_d19.mp4")
        assert ev["onset"] <= ev["apex"] <= ev["offset"]
        assert ev["kind"] in ("micro", "macro")
        assert ev["model"] == "rcn-a" and ev["label"] in ev["probs"]  # the shipped weights classify it
        assert abs(sum(ev["probs"].values()) - 1) < 1e-3
    assert "250 frames (250 with a face)" in r.stderr


def test_doctor_exits_zero_and_names_every_stage(face_model):
    r = _cli("doctor", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    for name in ("pyav codecs", "opencv", "mediapipe", "face model", "numba", "onnxruntime", "gpu", "tensorrt"):
        assert name in r.stdout


def test_no_source_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main([])
    assert e.value.code == 2
    assert "give at least one source" in capsys.readouterr().err


def test_missing_video_is_a_clear_error(tmp_path, capsys):
    assert main(["--video", str(tmp_path / "nope.mp4"), "--events", str(tmp_path / "e.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "nope.mp4" in err and "error" in err


def test_bad_config_key_is_reported_by_name(tmp_path, capsys):
    cfg = tmp_path / "p.yaml"
    cfg.write_text("spot:\n  thresold: 3\n")
    assert main(["--video", "x.mp4", "--config", str(cfg)]) == 2
    assert "thresold" in capsys.readouterr().err


def test_synth_then_eval_spotting_prints_megc_scores(face_model, tmp_path):
    out = tmp_path / "synth"
    r = _cli("synth", "--out", str(out), "--clips", "3", "--fps", "30", "--seed", "5")
    assert r.returncode == 0, r.stderr[-2000:]
    assert (out / "dataset.json").exists() and len(list((out / "clips").glob("*.mp4"))) == 3
    r = _cli("eval-spotting", "--data", str(out), "--workers", "1", "--no-negatives")
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith("3 clips")
    assert any(line.startswith("micro ") and "precision" in line for line in lines)
    last = lines[-1]
    assert last.startswith("spotting F1: ")
    assert float(last.split(":")[1]) >= 0.66, r.stdout  # 2 planted micro-expressions: at least one, no false one


def test_demo_runs_live_keeps_up_and_spots_what_it_planted(face_model):
    """The live synthetic face (rendered in its own process) with recognition: under 1 % of the
    frames dropped, and planted micro-expressions spotted and labelled."""
    import re

    r = _cli("--demo", "11", "--max-seconds", "20", "--events", "-")
    assert r.returncode == 0, r.stderr[-2000:]
    spotted, planted = map(int, re.search(r"demo: spotted (\d+) of (\d+) planted", r.stderr).groups())
    frames, dropped = map(int, re.search(r"synthetic: running, (\d+) frames .*? (\d+) dropped", r.stderr).groups())
    assert planted >= 4 and spotted >= planted // 2, r.stderr[-1500:]
    assert frames > 360 and dropped <= 0.01 * (frames + dropped), r.stderr[-1500:]
    events = [json.loads(line) for line in r.stdout.splitlines() if '"type":"event"' in line]
    assert events and all(e["stream"] == "synthetic" and e["label"] in e["probs"] for e in events)


def test_models_lists_every_registered_model():
    from realtime_mer.models import list_specs

    r = _cli("models", timeout=120)
    assert r.returncode == 0, r.stderr
    names = [line.split()[0] for line in r.stdout.splitlines()]
    assert names == [s.name for s in list_specs()]
    assert "rcn-a" in names and "params" in r.stdout


def test_export_onnx_runs_in_onnxruntime(tmp_path):
    import numpy as np
    import onnxruntime as ort

    out = tmp_path / "rcn-a.onnx"
    r = _cli("export", "--model", "rcn-a", "--format", "onnx", "--out", str(out), timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (logits,) = sess.run(None, {"flow": np.random.default_rng(0).random((2, 3, 60, 60), np.float32)})
    assert logits.shape == (2, 3)


def test_export_rejects_a_checkpoint_of_another_model(tmp_path, capsys):
    from realtime_mer.models import build_model
    from realtime_mer.models.checkpoint import ModelMeta, save_checkpoint

    ck = save_checkpoint(build_model("rcn"), tmp_path / "rcn.safetensors", ModelMeta.from_spec("rcn"))
    assert (
        main(
            [
                "export",
                "--model",
                "rcn-a",
                "--checkpoint",
                str(ck),
                "--format",
                "onnx",
                "--out",
                str(tmp_path / "x.onnx"),
            ]
        )
        == 2
    )
    assert "rcn-a" in capsys.readouterr().err


def test_bench_writes_the_documented_json(tmp_path):
    out = tmp_path / "bench.json"
    r = _cli("bench", "--stages", "decode,evm,spotting,flow", "--iters", "3", "--json", str(out), timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    data = json.loads(out.read_text())
    assert {"cpu", "gpu", "versions"} <= set(data["machine"])
    rows = {(x["stage"], x["backend"], x["size"]) for x in data["results"]}
    assert ("evm", "numba-cpu", "128x128") in rows and ("evm", "numpy-reference", "128x128") in rows
    assert {"decode", "spotting", "flow"} <= {s for s, _, _ in rows}
    for x in data["results"]:
        assert 0 < x["median_ms"] <= x["p99_ms"] and "throughput_fps" in x
    assert "median ms" in r.stdout


def test_webhook_down_for_part_of_the_run_gets_every_record_once(face_model, tmp_path):
    """The endpoint is down when the run starts and comes up once events flow: after the run every
    record of the events file has arrived at the endpoint exactly once, and the exit status is 0."""
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from realtime_mer.synth import record

    clip = tmp_path / "planted.mp4"
    record(clip, 8.0, seed=3)
    received: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.extend(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    events = tmp_path / "events.jsonl"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "realtime_mer.cli",
            "--replay",
            str(clip),
            "--max-seconds",
            "14",
            "--events",
            str(events),
            "--webhook",
            f"http://127.0.0.1:{port}/hook",
            "--config",
            str(_webhook_config(tmp_path)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    server = None
    try:
        deadline = time.monotonic() + 60
        while '"type":"event"' not in (events.read_text() if events.exists() else ""):
            assert time.monotonic() < deadline and proc.poll() is None, "no event came"
            time.sleep(0.1)
        server = ThreadingHTTPServer(("127.0.0.1", port), Hook)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        if server is not None:
            server.shutdown()
            server.server_close()
    assert proc.returncode == 0, err[-3000:]
    assert "is down" in err and "answers again" in err
    written = [json.loads(line) for line in events.read_text().splitlines()]
    assert sum(r["type"] == "event" for r in written) >= 2
    key = lambda r: json.dumps(r, sort_keys=True)
    assert sorted(map(key, received)) == sorted(map(key, written))


def _webhook_config(tmp_path):
    """Pipeline YAML: quick webhook retries, the spill in the test's folder."""
    path = tmp_path / "pipeline.yaml"
    path.write_text(
        f"sinks:\n  webhook:\n    retry_initial_s: 0.1\n    retry_max_s: 0.5\n    spill_dir: {tmp_path / 'spill'}\n"
    )
    return path


def test_video_run_labels_planted_micro_expressions(face_model, tmp_path):
    """The live path with the shipped recognizer, on a clip of planted micro-expressions (no real
    data needed): those planted after the spotter's first second (it learns the face's noise for
    0.5 s) are spotted and labelled by rcn-a, and the probabilities add up."""
    from realtime_mer.spotting import match_intervals
    from realtime_mer.synth import record

    clip = tmp_path / "planted.mp4"
    planted = [e for e in record(clip, 6.0, seed=5) if e.kind == "micro" and e.onset >= 30]
    out = tmp_path / "events.jsonl"
    r = _cli("--video", str(clip), "--events", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    events = [e for e in map(json.loads, out.read_text().splitlines()) if e["type"] == "event"]
    for e in events:
        assert e["model"] == "rcn-a" and e["label"] in e["probs"] and abs(sum(e["probs"].values()) - 1) < 1e-3
    m = match_intervals(
        [(e["onset"], e["apex"], e["offset"]) for e in events if e["kind"] == "micro"],
        [(p.onset, p.apex, p.offset) for p in planted],
    )
    assert planted and m.score.tp == len(planted), (events, planted)


def test_first_run_does_its_one_time_work_quietly_before_the_source_starts(face_model, tmp_path):
    """With empty caches, the ONNX export and the Numba compilation happen before any frame is read,
    in one line each at most: no onnxscript or onnx_ir chatter."""
    import re
    import shutil

    from realtime_mer.synth import record

    clip = tmp_path / "planted.mp4"
    record(clip, 2.0, seed=2)
    cache = tmp_path / "cache"
    (cache / "realtime-mer").mkdir(parents=True)
    shutil.copy(face_model, cache / "realtime-mer" / "face_landmarker.task")
    env = dict(os.environ, PYTHONUNBUFFERED="1", XDG_CACHE_HOME=str(cache))
    r = subprocess.run(
        [sys.executable, "-m", "realtime_mer.cli", "--video", str(clip), "--events", "-"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stderr.splitlines()
    assert not [x for x in lines if re.search(r"onnxscript|onnx_ir|torch\\.onnx", x)], r.stderr[-3000:]
    exported = [k for k, x in enumerate(lines) if "exporting rcn-a" in x]
    first_frame = [k for k, x in enumerate(lines) if "(first frame)" in x]
    assert len(exported) == 1 and first_frame and exported[0] < first_frame[0], r.stderr[-3000:]
    assert list((cache / "realtime-mer" / "onnx").glob("rcn-a-*.onnx"))
