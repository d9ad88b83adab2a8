"""The wired pipeline on a synthetic clip it did not make itself: real MediaPipe, real PyAV, real EVM."""

from dataclasses import replace

import numpy as np
import pytest

from realtime_mer.pipeline import PipelineConfig, SourceSpec, StreamProcessor, load_pipeline_config, run_pipeline
from realtime_mer.recognize import RecognizeConfig
from realtime_mer.sinks import CollectSink
from realtime_mer.spotting import match_intervals


@pytest.fixture(scope="module")
def clip(face_model, tmp_path_factory):
    """One 4 s clip at 30 fps with a single clear micro-expression (2.5-3 px) and default nuisances."""
    from realtime_mer.synth import SynthConfig, load_ground_truth, write_dataset
    from realtime_mer.synth.config import EventConfig

    cfg = SynthConfig(subjects=1, clip_seconds=(4.0, 4.0),
                      events=EventConfig(micro_amplitude=(2.5, 3.0), events_per_clip=(1, 1), neutral_fraction=0.0))
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
    assert all(e.latency_ms["after_offset"] >= 0 for e in sink.events)


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
        board = render_dashboard(frame, proc.found, proc.tracks)
    finally:
        src.close()
        proc.close()
    assert board.shape[0] == FRAME_H + TRACE_H and board.dtype == np.uint8
    face_panel = board[:FRAME_H, -160:]
    assert face_panel[:160].std() > 10 and face_panel[160:].std() > 10  # aligned and magnified faces drawn
    assert (board[FRAME_H:, :, 2] > 200).sum() > 50  # the sigma trace (orange) is drawn
