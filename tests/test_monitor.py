"""Feed monitoring against real RTSP servers: two feeds, one server killed and restarted; the metrics
scraped over HTTP; every interval in the JSON Lines once, and the same as a recording of each session."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from rtsp_helpers import RtspServer, free_port, needs_rtsp

from realtime_mer.capture import open_source
from realtime_mer.metrics import Metrics, scrape
from realtime_mer.pipeline import (
    Pipeline,
    PipelineConfig,
    SourceSpec,
    StreamProcessor,
    load_pipeline_config,
    merge_config,
)
from realtime_mer.sinks import CollectSink, JsonlSink
from realtime_mer.types import Frame

pytestmark = needs_rtsp

CLIP_S = 40.0
# quick outages: short timeouts and backoffs
FAST = {
    "capture": {
        "open_timeout_s": 2.0,
        "read_timeout_s": 2.0,
        "backoff_initial_s": 0.2,
        "backoff_max_s": 1.0,
        "stall_s": 1.0,
    },
    "recognize": {"model": None},
}


@pytest.fixture(scope="module")
def clip(face_model, tmp_path_factory) -> Path:
    """40 s of the synthetic face with micro-expressions planted every 1-3 s, as an mp4."""
    from realtime_mer.synth import record

    path = tmp_path_factory.mktemp("monitor") / "planted.mp4"
    record(path, CLIP_S, seed=5)
    return path


def offline(path: Path, first: int, count: int, config: PipelineConfig) -> list[tuple]:
    """``(onset, apex, offset, kind)`` of what a recording of the first ``count`` frames of ``path``
    gives, numbered from ``first`` (a session of a live feed that started at frame ``first``)."""
    source = open_source("video", str(path))
    source.open()
    proc = StreamProcessor("offline", config, lambda: 30.0)
    spotted = []
    try:
        for k in range(count):
            image, t = source.read()
            spotted += proc.process(Frame("offline", first + k, t, time.monotonic(), image, key=source.keyframe))
    finally:
        spotted += proc.close()
        source.close()
    return sorted((s.interval.onset, s.interval.apex, s.interval.offset, s.interval.kind) for s in spotted)


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_two_feeds_one_server_restarted(clip, tmp_path):
    config = merge_config(load_pipeline_config(), FAST)
    a, b = RtspServer(clip).start(), RtspServer(clip).start()
    events_path = tmp_path / "events.jsonl"
    collected = CollectSink()
    metrics = Metrics()
    port = metrics.serve(0)
    secret_b = b.url.replace("rtsp://", "rtsp://viewer:s3cret@")  # the server asks for none
    pipeline = Pipeline(
        [SourceSpec("rtsp", a.url, "a"), SourceSpec("rtsp", secret_b)],
        config,
        [JsonlSink(str(events_path)), collected],
        metrics=metrics,
        monitor=True,
    )
    name_b = f"rtsp://***@127.0.0.1:{b.port}/test"
    out: dict = {}
    runner = threading.Thread(target=lambda: out.update(summary=pipeline.run()))
    runner.start()
    try:
        running = lambda stream, n: sum(s.state == "running" and s.stream == stream for s in collected.statuses) >= n
        _wait_for(lambda: running("a", 1) and running(name_b, 1), 30, "both feeds running")
        time.sleep(8)
        b.kill()
        _wait_for(
            lambda: any(s.stream == name_b and s.state == "reconnecting" for s in collected.statuses),
            10,
            "feed b reconnecting",
        )
        time.sleep(1.0)
        b.start()
        _wait_for(lambda: running(name_b, 2), 20, "feed b running again")
        time.sleep(8)
        scraped = scrape(f"http://127.0.0.1:{port}/metrics")
    finally:
        pipeline.stop("test done")
        runner.join(60)
        a.kill()
        b.kill()
        metrics.close()
    summary = out["summary"]
    assert summary.exit_code == 0, summary.describe()

    # both feeds end running; b went through the outage, a did not
    states = {s: [x.state for x in collected.statuses if x.stream == s] for s in ("a", name_b)}
    assert states["a"] == ["connecting", "running"], states
    assert states[name_b] == ["connecting", "running", "reconnecting", "running"], states
    assert scraped[f'realtime_mer_reconnects_total{{stream="{name_b}"}}'] == 1.0
    assert scraped['realtime_mer_reconnects_total{stream="a"}'] == 0.0
    for stream in ("a", name_b):
        assert scraped[f'realtime_mer_stream_state{{state="running",stream="{stream}"}}'] == 1.0
        assert scraped[f'realtime_mer_frames_total{{stream="{stream}"}}'] > 300
    text = events_path.read_text()
    assert "s3cret" not in text and "s3cret" not in json.dumps(scraped)

    # every interval once, in the file as delivered
    lines = [json.loads(line) for line in text.splitlines()]
    assert [r["id"] for r in lines if r["type"] == "event"] == [e.id for e in collected.events]
    keys = [(e.stream, e.track, e.interval.onset, e.interval.apex, e.interval.offset) for e in collected.events]
    assert len(keys) == len(set(keys)) == summary.events > 0

    # what each session gave is what a recording of that session gives
    for stream in summary.streams:
        assert stream.dropped == 0, stream
        live = sorted(
            (e.interval.onset, e.interval.apex, e.interval.offset, e.interval.kind)
            for e in collected.events
            if e.stream == stream.stream
        )
        sessions = [x for x in collected.statuses if x.stream == stream.stream and x.state == "running"]
        breaks = [x for x in collected.statuses if x.stream == stream.stream and x.state == "reconnecting"]
        ends = [brk.index + 1 for brk in breaks] + [stream.frames]  # no drops: frames 0..frames-1 processed
        expected = []
        for start, end in zip([s.index for s in sessions], ends):
            expected += offline(clip, start, end - start, config)
        assert live == sorted(expected), f"{stream.stream}: live {live}\nrecording {sorted(expected)}"


def test_monitor_command_streams_file_and_sigterm(clip, tmp_path):
    """The CLI: a YAML streams file, one feed down for good, SIGTERM: exit 0, every sink flushed."""
    server = RtspServer(clip).start()
    streams = tmp_path / "feeds.yaml"
    os.environ["TEST_CAM_PASSWORD"] = "hunter2"
    streams.write_text(
        f"- name: lobby\n  url: rtsp://admin:${{TEST_CAM_PASSWORD}}@127.0.0.1:{server.port}/test\n"
        f"- name: door\n  url: rtsp://127.0.0.1:{free_port()}/nothing-here\n"
    )
    events = tmp_path / "out" / "events.jsonl"
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "realtime_mer.cli",
        "monitor",
        "--streams",
        str(streams),
        "--events",
        str(events),
        "--no-recognize",
        "--metrics-port",
        str(port),
        "--health-s",
        "1",
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1")
    )
    try:
        _wait_for(lambda: events.exists() and '"state":"running"' in events.read_text(), 60, "lobby running")
        time.sleep(3)
        scraped = scrape(f"http://127.0.0.1:{port}/metrics")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        server.kill()
    assert proc.returncode == 0, err[-3000:]
    assert "SIGTERM received: stopping and flushing" in err
    assert "lobby: running | in " in err and "door: reconnecting" in err  # the health lines
    assert "hunter2" not in err and "hunter2" not in events.read_text()
    records = [json.loads(line) for line in events.read_text().splitlines()]
    assert {r["stream"] for r in records} == {"lobby", "door"}
    door = [r["state"] for r in records if r["stream"] == "door"]
    assert door == ["connecting", "reconnecting"]
    assert scraped['realtime_mer_stream_state{state="reconnecting",stream="door"}'] == 1.0
    assert scraped['realtime_mer_processed_frames_total{stream="lobby"}'] > 30


def test_ray_backend_without_ray_says_how_to_install_it(monkeypatch):
    from realtime_mer.cluster import RAY_MISSING, RayPipeline
    from realtime_mer.errors import UserError
    from realtime_mer.feeds import SourceSpec

    monkeypatch.setitem(sys.modules, "ray", None)  # as where the [cluster] extra is not installed
    with pytest.raises(UserError, match=r"pip install 'realtime-mer\[cluster\]'") as e:
        RayPipeline([SourceSpec("video", "a.mp4")], PipelineConfig())
    assert str(e.value) == RAY_MISSING
