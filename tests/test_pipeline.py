"""The wired pipeline on a synthetic clip it did not make itself: real MediaPipe, real PyAV, real EVM."""

from dataclasses import replace

import cv2
import numpy as np
import pytest

from realtime_mer.pipeline import (
    PipelineConfig,
    SourceSpec,
    StreamProcessor,
    load_pipeline_config,
    merge_config,
    run_pipeline,
)
from realtime_mer.recognize import RecognizeConfig
from realtime_mer.sinks import CollectSink
from realtime_mer.spotting import match_intervals


@pytest.fixture(scope="module")
def clip(face_model, tmp_path_factory):
    """One 4 s clip at 30 fps with a single clear micro-expression (2.5-3 px) and default nuisances."""
    from realtime_mer.synth import SynthConfig, load_ground_truth, write_dataset
    from realtime_mer.synth.config import EventConfig

    cfg = SynthConfig(
        subjects=1,
        clip_seconds=(4.0, 4.0),
        events=EventConfig(micro_amplitude=(2.5, 3.0), events_per_clip=(1, 1), neutral_fraction=0.0),
    )
    out = tmp_path_factory.mktemp("clip")
    write_dataset(out, clips=1, fps=30.0, seed=3, config=cfg)
    (truth,) = load_ground_truth(out).values()
    return truth


def test_pipeline_spots_the_planted_micro_expression(clip):
    config = replace(load_pipeline_config(), recognize=RecognizeConfig(model=None))
    sink = CollectSink()
    summary = run_pipeline([SourceSpec("video", str(clip.video))], config, events="-", extra_sinks=[sink])
    (stream,) = summary.streams
    assert stream.frames == clip.n_frames == stream.frames_with_face
    assert stream.dropped == 0
    planted = [(e.onset, e.apex, e.offset) for e in clip.events if e.kind == "micro"]
    spotted = [e.interval for e in sink.events if e.interval.kind == "micro"]
    m = match_intervals(spotted, planted)
    assert m.score.tp == 1, f"planted {planted}, spotted {[(i.onset, i.apex, i.offset) for i in spotted]}"
    assert all(e.latency_ms["after_offset"] >= e.latency_ms["queue"] > 0 for e in sink.events)


def test_dashboard_shows_frame_faces_and_trace(clip):
    from realtime_mer.capture import open_source
    from realtime_mer.display import FRAME_H, TRACE_H, render_dashboard
    from realtime_mer.types import Frame

    proc = StreamProcessor("clip", PipelineConfig(), lambda: clip.fps)
    src = open_source("video", str(clip.video))
    src.open()
    try:
        for i in range(40):
            image, t = src.read()
            frame = Frame("clip", i, t, 0.0, image)
            proc.process(frame)
        board = render_dashboard(proc.view(frame), [])
    finally:
        src.close()
        proc.close()
    assert board.shape[0] == FRAME_H + TRACE_H and board.dtype == np.uint8
    face_panel = board[:FRAME_H, -160:]
    assert face_panel[:160].std() > 10 and face_panel[160:].std() > 10  # aligned and magnified faces drawn
    assert (board[FRAME_H:, :, 2] > 200).sum() > 50  # the sigma trace (orange) is drawn


def test_events_wait_for_their_offset_frame(clip):
    """An event is emitted only once its offset frame was captured, and its latency counts from there."""
    sink = CollectSink()
    config = replace(load_pipeline_config(), recognize=RecognizeConfig(model=None))
    run_pipeline([SourceSpec("video", str(clip.video))], config, events="/dev/null", extra_sinks=[sink])
    assert sink.events
    for e in sink.events:
        assert e.latency_ms["after_offset"] >= e.latency_ms["queue"] > 0
        assert e.utc.endswith("Z") and e.id


def test_a_changing_frame_size_restarts_the_tracks(clip, tmp_path):
    """A feed whose resolution changes mid-stream keeps going; its tracks restart at the change."""
    import av

    from realtime_mer.capture import open_source

    src = open_source("video", str(clip.video))
    src.open()
    frames = []
    while (item := src.read()) is not None:
        frames.append(item[0])
    src.close()
    path = tmp_path / "two_sizes.h264"  # a raw H.264 stream whose sequence header changes
    with path.open("wb") as out:
        for part, scale in ((frames[:60], 1.0), (frames[60:], 0.75)):
            h, w = (int(round(d * scale)) // 2 * 2 for d in part[0].shape[:2])
            part_path = tmp_path / f"part{scale}.h264"
            with av.open(str(part_path), "w", format="h264") as c:
                s = c.add_stream("libx264", rate=30, options={"preset": "ultrafast"})
                s.width, s.height, s.pix_fmt = w, h, "yuv420p"
                for f in part:
                    img = cv2.resize(f, (w, h)) if scale != 1.0 else f
                    c.mux(s.encode(av.VideoFrame.from_ndarray(img, format="bgr24")))
                c.mux(s.encode())
            out.write(part_path.read_bytes())
    config = replace(load_pipeline_config(), recognize=RecognizeConfig(model=None))
    summary = run_pipeline([SourceSpec("video", str(path))], config, events="/dev/null")
    (stream,) = summary.streams
    assert stream.frames == len(frames) and stream.frames_with_face == len(frames)
    assert stream.restarts == 1 and stream.state == "ended" and summary.exit_code == 0


def test_a_failing_sink_is_reported_and_the_others_get_every_event(clip):
    """/dev/full refuses every write (ENOSPC): the run goes on, the other sinks get every event,
    the summary names the failed sink and the exit status is 4."""
    from realtime_mer.sinks import JsonlSink

    good = CollectSink()
    config = replace(load_pipeline_config(), recognize=RecognizeConfig(model=None))
    summary = run_pipeline(
        [SourceSpec("video", str(clip.video))], config, events="/dev/null", extra_sinks=[JsonlSink("/dev/full"), good]
    )
    assert len(good.events) == summary.events > 0
    assert summary.sinks["jsonl:/dev/full"]["failed"] >= summary.events
    assert summary.exit_code == 4 and "sink jsonl:/dev/full" in summary.describe()


def test_recognition_failure_sends_events_unlabelled_with_the_error():
    """A recognizer that fails (here: its engine was closed under it) costs the labels of the
    events, not the events: they go out unlabelled with the reason, and the stage goes on."""
    import time

    from realtime_mer.metrics import Metrics
    from realtime_mer.pipeline import EventStage, RunSummary, Spotted
    from realtime_mer.recognize import Recognizer
    from realtime_mer.sinks import GuardedSink
    from realtime_mer.types import Interval

    recognizer = Recognizer(RecognizeConfig(model="rcn-a", engine="onnxruntime"))
    sink, metrics = CollectSink(), Metrics()
    stage = EventStage([GuardedSink(sink)], recognizer, metrics)
    rng = np.random.default_rng(0)

    def item(k: int) -> Spotted:
        crop = rng.integers(0, 255, (128, 128, 3), np.uint8)
        return Spotted(
            "cam",
            0,
            Interval(10 * k, 10 * k + 3, 10 * k + 6, k, k + 0.1, k + 0.2, "micro", 6.0),
            crop,
            crop,
            (0, 0, 1, 1),
            0.0,
            0.0,
            0.0,
        )

    def wait_for(n: int) -> None:
        deadline = time.monotonic() + 30
        while len(sink.events) < n and time.monotonic() < deadline:
            time.sleep(0.01)

    stage.start()
    stage.pending.put(item(0))
    wait_for(1)
    recognizer.engine.close()  # the next batches fail
    for k in (1, 2):
        stage.pending.put(item(k))
        wait_for(k + 1)
    stage.pending.put(None)
    stage.join(30)
    labelled, *failed = sink.events
    assert labelled.label in labelled.probs and labelled.error is None
    assert [e.interval.onset for e in failed] == [10, 20]
    for e in failed:
        assert e.label is None and e.probs == {} and e.model is None
        assert e.error.startswith("recognition failed: ")
    assert stage.recognition_errors == 2
    assert b'realtime_mer_recognition_errors_total{model="rcn-a"} 2.0' in metrics.exposition()
    assert RunSummary([], 3, 1.0, recognition_errors=stage.recognition_errors).exit_code == 5


@pytest.mark.parametrize("text", ["recognize:\n", "recognize:\nspot:\n  threshold: 6.0\nsinks:\n"])
def test_empty_config_sections_mean_the_defaults(tmp_path, text):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    config = load_pipeline_config(path)
    assert config.recognize == RecognizeConfig() and config.sinks == {}


# ---------------------------------------------------------------- per-frame cost


def _real_frames(path, n: int) -> list:
    from realtime_mer.capture import open_source
    from realtime_mer.types import Frame

    src = open_source("video", str(path))
    src.open()
    out = []
    try:
        while len(out) < n and (item := src.read()) is not None:
            out.append(Frame("evm", len(out), item[1], 0.0, item[0]))
    finally:
        src.close()
    return out


@pytest.mark.realdata
@pytest.mark.parametrize("every", [1, 2])
def test_warm_frames_allocate_no_image_buffers(shared_data, face_model, every):
    """Once warm, a frame of one face through the per-track path (registration, ring, EVM,
    spotting) allocates less than 16,384 bytes at its peak, MediaPipe's own allocations left out
    (its landmarks are replayed): that is one 128x128 grey uint8 plane, the smallest image buffer
    on the path (a crop is 49,152 bytes, a float32 grey crop 65,536, a magnified crop 196,608), so
    no image-sized buffer may be allocated per frame. What a frame does allocate is its records
    (the face's 478 landmarks, 5.7 kB, on frames between landmark frames) and NumPy's small
    constant temporaries. Before issue 10 a frame allocated 57 kB (landmark frames) to 92 kB."""
    import tracemalloc

    from realtime_mer.face import FaceConfig, FaceStage

    frames = _real_frames(shared_data / "video" / "evm_face.mp4", 70)
    with FaceStage(FaceConfig(model_path=str(face_model), landmark_every=1)) as stage:
        recorded = []
        detect = stage.landmarker.detect
        stage.landmarker.detect = lambda image, t_ms: recorded.append(detect(image, t_ms)) or recorded[-1]
        for f in frames:
            stage.process(f)
    assert len(recorded) == len(frames)
    config = merge_config(PipelineConfig(), {"face": {"model_path": str(face_model), "landmark_every": every}})
    proc = StreamProcessor("evm", config, lambda: 30.0)
    now = [0]
    proc.faces.landmarker.detect = lambda image, t_ms: recorded[now[0]]
    peaks = []
    try:
        for i, f in enumerate(frames):
            now[0] = i
            if i == 30:
                tracemalloc.start()
            if i >= 30:
                tracemalloc.reset_peak()
                base = tracemalloc.get_traced_memory()[0]
            spotted = proc.process(f)
            if i >= 30 and not spotted:  # an interval handed on carries copies of its crops
                peaks.append(tracemalloc.get_traced_memory()[1] - base)
            ((_, face),) = proc.found
            if i:  # a track's first crop comes before its ring; every later one is registered into it
                assert face.image.base is proc.tracks[face.track].ring.images
    finally:
        tracemalloc.stop()
        proc.close()
    print(f"\nlandmark_every={every}: per-frame peak allocation median {np.median(peaks):.0f} B, max {max(peaks)} B")
    assert len(peaks) > 30 and max(peaks) < 16_384


def test_without_magnify_no_evm_runs_and_spotting_is_the_same(clip):
    """``magnify=False`` builds no magnifier (frame sinks see ``magnified=None``, the dashboard still
    draws) and spots exactly what the default does."""
    from realtime_mer.capture import open_source
    from realtime_mer.display import FRAME_H, TRACE_H, render_dashboard
    from realtime_mer.types import Frame

    procs = [StreamProcessor("clip", PipelineConfig(), lambda: clip.fps, magnify=m) for m in (True, False)]
    src = open_source("video", str(clip.video))
    src.open()
    try:
        for i in range(60):
            image, t = src.read()
            frame = Frame("clip", i, t, 0.0, image)
            for p in procs:
                p.process(frame)
        on, off = (p.view(frame) for p in procs)
        board = render_dashboard(off, [])
    finally:
        src.close()
        for p in procs:
            p.close()
    assert procs[0].evm is not None and procs[1].evm is None
    assert on.tracks[0].magnified is not None and off.tracks[0].magnified is None
    np.testing.assert_array_equal(on.tracks[0].sigma, off.tracks[0].sigma)
    assert board.shape[0] == FRAME_H + TRACE_H
    assert "evm" in procs[0].clock.medians() and "evm" not in procs[1].clock.medians()


def test_magnify_is_needed_where_something_shows_or_spots_it():
    class Clock:
        name = "clock"
        uses_magnified = False

        def frame(self, view):
            pass

    class Overlay:
        name = "overlay"

        def frame(self, view):
            pass

    aligned, magnified = PipelineConfig(), PipelineConfig(spot_input="magnified")
    assert not StreamProcessor.needs_magnified(aligned, [])
    assert not StreamProcessor.needs_magnified(aligned, [Clock()])
    assert StreamProcessor.needs_magnified(aligned, [Clock(), Overlay()])  # a frame sink may show it
    assert StreamProcessor.needs_magnified(magnified, [])
    from realtime_mer.sinks import GuardedFrameSink

    assert not StreamProcessor.needs_magnified(aligned, [GuardedFrameSink(Clock())])  # through the guard
    proc = StreamProcessor("x", magnified, magnify=False)
    try:
        assert proc.magnify  # the spotter watches the magnified crops
    finally:
        proc.close()


def test_ring_slot_is_written_in_place():
    """A crop written into ``next_image()`` and pushed is stored without a copy; the oldest frame
    leaves the ring as soon as its slot is handed out."""
    from realtime_mer.buffer import FaceRing

    ring = FaceRing(3, (2, 2, 3))
    for i in range(3):
        ring.push(i, i / 30, np.full((2, 2, 3), i, np.uint8))
    slot = ring.next_image()
    assert ring.oldest_index == 1 and len(ring) == 2 and ring.slot(0) is None
    slot[...] = 7
    ring.push(3, 0.1, slot)
    assert ring.newest_index == 3 and len(ring) == 3 and ring.get(3)[2][0, 0, 0] == 7
    assert ring.get(3)[2].base is ring.images
