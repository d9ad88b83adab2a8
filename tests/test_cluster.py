"""``monitor --backend ray``: feeds sharded over Ray actors give the in-process events, survive a
worker that is killed, and follow a streams file that is edited while they run.

A real local Ray cluster (2 CPUs) runs the worker processes; real files are decoded by PyAV and
real MediaPipe finds the faces.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from realtime_mer.feeds import SourceSpec, StreamsWatcher
from realtime_mer.pipeline import Pipeline, RunSummary, load_pipeline_config
from realtime_mer.sinks import CollectSink

ray = pytest.importorskip("ray", reason="Ray is the optional [cluster] extra: pip install 'realtime-mer[cluster]'")
from realtime_mer.cluster import RayPipeline  # noqa: E402

VIDEO = Path(__file__).resolve().parents[2] / "shared" / "data" / "video"
pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(not VIDEO.is_dir(), reason=f"real clips not found at {VIDEO}"),
]
CLIPS = ("smile_d19.mp4", "frown_surprise_d3.mp4")


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray cluster for the module (a RayPipeline joins a Ray that is already up)."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


def _keys(sink: CollectSink) -> list[tuple]:
    return sorted(
        (e.stream, e.track, e.interval.onset, e.interval.apex, e.interval.offset, e.interval.kind, e.label)
        for e in sink.events
    )


@pytest.fixture(scope="module")
def in_process() -> list[tuple]:
    """The events of the two clips run in-process: the reference."""
    sink = CollectSink()
    specs = [SourceSpec("video", str(VIDEO / c)) for c in CLIPS]
    summary = Pipeline(specs, load_pipeline_config(), [sink]).run()
    assert summary.exit_code == 0
    assert sink.events, "the reference run found no event: the comparison would be empty"
    return _keys(sink)


def _run_in_thread(pipeline, max_seconds: float | None = None) -> tuple[threading.Thread, dict]:
    out: dict = {}
    thread = threading.Thread(target=lambda: out.update(summary=pipeline.run(max_seconds)), daemon=True)
    thread.start()
    return thread, out


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_two_files_on_two_workers_give_the_in_process_events(local_ray, in_process):
    sink = CollectSink()
    specs = [SourceSpec("video", str(VIDEO / c)) for c in CLIPS]
    pipeline = RayPipeline(specs, load_pipeline_config(), [sink], workers=2)
    summary = pipeline.run()
    assert summary.exit_code == 0, summary.describe()
    assert _keys(sink) == in_process
    assert {pipeline.placement[str(VIDEO / c)] for c in CLIPS} == {"worker-0", "worker-1"}  # one feed each
    assert sorted(s.frames for s in summary.streams) == [250, 354]
    states = [(s.stream, s.state) for s in sink.statuses]
    for c in CLIPS:
        assert [st for name, st in states if name == str(VIDEO / c)] == ["connecting", "running", "ended"]


def test_a_killed_worker_comes_back_and_every_event_is_delivered_once(local_ray, in_process):
    sink = CollectSink()
    specs = [SourceSpec("video", str(VIDEO / c)) for c in CLIPS]
    pipeline = RayPipeline(specs, load_pipeline_config(), [sink], workers=2)
    thread, out = _run_in_thread(pipeline)
    victim = str(VIDEO / "frown_surprise_d3.mp4")
    _wait_for(lambda: victim in pipeline.feeds and pipeline.feeds[victim].snapshot().processed >= 150, 120, "frames")
    pid = pipeline.shards[pipeline.feeds[victim].shard].pid
    assert pid is not None and pid != os.getpid()
    os.kill(pid, signal.SIGKILL)
    thread.join(300)
    summary: RunSummary = out["summary"]
    assert summary.exit_code == 0, summary.describe()
    keys = _keys(sink)
    assert keys == in_process  # the file started again in the new process; nothing twice, nothing lost
    assert not [k for k, n in Counter(keys).items() if n > 1]
    by_name = {s.stream: s for s in summary.streams}
    assert by_name[victim].worker_restarts == 1 and by_name[victim].state == "ended"
    assert by_name[str(VIDEO / "smile_d19.mp4")].worker_restarts == 0
    restarts = pipeline.metrics.exposition().decode()
    assert f'realtime_mer_worker_restarts_total{{worker="{pipeline.placement[victim]}"}} 1.0' in restarts
    reasons = [s.reason for s in sink.statuses if s.stream == victim and s.state == "reconnecting"]
    assert reasons and "died" in reasons[0]


def test_a_live_feed_goes_on_numbering_after_its_worker_died(local_ray):
    sink = CollectSink()
    clip = str(VIDEO / "smile_d19.mp4")
    pipeline = RayPipeline([SourceSpec("replay", clip, name="live")], load_pipeline_config(), [sink], workers=1)
    thread, out = _run_in_thread(pipeline, max_seconds=60)
    _wait_for(lambda: "live" in pipeline.feeds and pipeline.feeds["live"].snapshot().processed >= 60, 60, "frames")
    before = pipeline.feeds["live"].report.position  # type: ignore[union-attr]
    os.kill(pipeline.shards[0].pid, signal.SIGKILL)  # type: ignore[arg-type]
    _wait_for(lambda: pipeline.metrics.worker_restarts.labels(worker="worker-0")._value.get() == 1, 60, "restart")
    _wait_for(lambda: (r := pipeline.feeds["live"].report) is not None and r.snapshot.processed >= 30, 60, "new frames")
    pipeline.stop()
    thread.join(120)
    summary: RunSummary = out["summary"]
    assert summary.exit_code == 0, summary.describe()
    running = [s for s in sink.statuses if s.state == "running"]
    assert running[0].session == 0 and running[0].index == 0
    resumed = running[-1]  # the first frame in the new process: numbering goes on
    assert resumed.session >= before.session and resumed.index >= before.index
    assert summary.streams[0].worker_restarts == 1
    # 60 frames before the kill, 30 after; a loaded machine drops some of the replay's frames, so
    # frame numbers run ahead of the frames processed
    assert summary.streams[0].frames >= 90 and summary.streams[0].last_index >= before.index + 30
    assert len({(e.track, e.interval.onset, e.interval.offset) for e in sink.events}) == len(sink.events)


@pytest.mark.parametrize("backend", ["inprocess", "ray"])
def test_feeds_follow_the_streams_file(tmp_path, backend, request):
    """Feeds added to the streams file start; a feed removed from it stops, its tracks flushed;
    the feeds of the command line stay."""
    smile, grimace = str(VIDEO / "smile_d19.mp4"), str(VIDEO / "grimace_d6.mp4")
    streams = tmp_path / "streams.yaml"
    streams.write_text(f"- {{name: a, url: {smile}}}\n")
    fixed = [SourceSpec("replay", smile, name="keep")]  # a live feed, so the run goes on
    watcher = StreamsWatcher([streams], fixed)
    sink = CollectSink()
    specs = [SourceSpec("video", smile, name="a"), *fixed]
    options = {"reload": watcher, "reload_s": 0.2, "monitor": True}
    if backend == "ray":
        request.getfixturevalue("local_ray")
        pipeline = RayPipeline(specs, load_pipeline_config(), [sink], workers=2, **options)
    else:
        pipeline = Pipeline(specs, load_pipeline_config(), [sink], **options)
    thread, out = _run_in_thread(pipeline, max_seconds=120)

    def state(name: str) -> str | None:
        return next((s.state for s in reversed(sink.statuses) if s.stream == name), None)

    _wait_for(lambda: state("a") == "ended", 60, "feed a to play to its end")
    streams.write_text(f"- {{name: b, url: {grimace}}}\n")
    _wait_for(lambda: state("b") == "running", 60, "feed b to start")
    time.sleep(2.0)
    streams.write_text(f"- {{name: c, url: {smile}}}\n")  # b goes mid-way, c comes
    _wait_for(lambda: state("c") == "ended" and _finished(pipeline, "c"), 60, "feed c to play to its end")
    pipeline.stop()
    thread.join(120)
    summary: RunSummary = out["summary"]
    assert summary.exit_code == 0, summary.describe()
    by_name = {s.stream: s for s in summary.streams}
    assert sorted(by_name) == ["a", "b", "c", "keep"]
    smiles = {}
    for name in ("a", "c"):
        assert by_name[name].frames == 250 and by_name[name].state == "ended"
        smiles[name] = [(e.interval.onset, e.interval.apex, e.interval.offset) for e in sink.events if e.stream == name]
    assert len(smiles["a"]) == 1 and smiles["a"] == smiles["c"]  # the clip's one smile, the same both times
    assert 0 < by_name["b"].frames < 1008 and by_name["b"].state == "running"  # stopped while it ran
    # the live feed of the command line went on all along (a replay loops: at the stop it may be
    # between the end of the file and its next pass)
    assert by_name["keep"].state in ("running", "reconnecting") and by_name["keep"].error is None


def _finished(pipeline: Pipeline | RayPipeline, name: str) -> bool:
    """Every frame of the feed was processed."""
    if isinstance(pipeline, RayPipeline):
        return name in pipeline.placement and name not in pipeline.feeds
    return name in pipeline.workers and not pipeline.workers[name].is_alive()


def test_streams_bench_rows_and_plot(tmp_path):
    """``realtime-mer bench --stages streams`` in small: one feed per backend, its rows and the plot."""
    from realtime_mer.bench.signal import Inputs
    from realtime_mer.bench.streams import bench_streams

    clip = VIDEO / "smile_d19.mp4"
    plot = tmp_path / "streams.png"
    rows = [r.to_json() for r in bench_streams(Inputs(clip, [], 30.0), 0, max_feeds=1, workers=1, plot=plot,
                                                   seconds=6.0, clip=clip)]  # fmt: skip
    assert [(r["stage"], r["backend"]) for r in rows] == [("streams", "inprocess")] * 2 + [
        ("streams", "ray 1 workers")
    ] * 2
    runs, sums = [r for r in rows if "feeds" in r], [r for r in rows if "streams" in r]
    assert [r["feeds"] for r in runs] == [1, 1] and all(r["streams"] in (0, 1) for r in sums)
    for r in runs:
        assert 0 < r["fps_per_feed"] <= 31 and r["cpu_pct"] > 0 and "face" in r["stage_ms"]
    assert plot.stat().st_size > 10_000


def test_monitor_cli_with_the_ray_backend(tmp_path):
    """The command line: two files over two workers, exit 0, the events of the files; the overlay
    video is refused with the reason."""
    import json
    import subprocess
    import sys

    out = tmp_path / "events.jsonl"
    smile, frown = (str(VIDEO / c) for c in CLIPS)
    cmd = [sys.executable, "-m", "realtime_mer.cli", "monitor", "--backend", "ray", "--workers", "2"]
    r = subprocess.run(
        [*cmd, "--video", smile, "--video", frown, "--events", str(out), "--health-s", "0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "2 worker process(es)" in r.stderr
    events = [json.loads(line) for line in out.read_text().splitlines() if '"type":"event"' in line]
    smiles = [(e["kind"], e["label"], e["onset"]) for e in events if e["stream"] == smile]
    assert len(smiles) == 1 and smiles[0][:2] == ("macro", "positive") and 180 <= smiles[0][2] <= 195
    assert all(e["label"] and e["model"] == "rcn-a" for e in events)
    r = subprocess.run(
        [*cmd, "--video", smile, "--output-video", str(tmp_path / "o.mp4")], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 2 and "in-process only" in r.stderr, r.stderr[-2000:]
