"""Benchmarks of the whole pipeline: end-to-end frame rate of one stream with one face, and the
event latency (capture of the offset frame -> emission) on a live-paced stream.

The input is a 640x480 clip of the synthetic face with micro-expressions planted every 1-3 s
(``realtime_mer.synth.record``), so that events happen; recognition runs with the shipped weights.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .signal import Inputs
from .timing import Result

SIZE = (640, 480)
SECONDS = 45.0
GAP_S = (0.5, 1.5)  # still time between planted events: about 40 events in the clip


class _Clock:
    """A frame sink that notes when each frame leaves the pipeline (``time.monotonic()``); it shows
    no magnified crop, so the run magnifies nothing (as a run without a dashboard or overlay video)."""

    name = "clock"
    uses_magnified = False

    def __init__(self) -> None:
        self.times: list[float] = []

    def frame(self, view: object) -> None:
        self.times.append(time.monotonic())

    def close(self) -> None:
        pass


def planted_clip(workdir: Path) -> Path:
    """A 640x480 clip of ``SECONDS`` s with planted micro-expressions (rendered once per run)."""
    from realtime_mer.media import Mp4Writer
    from realtime_mer.synth import SynthConfig, SyntheticSource

    path = workdir / "planted_640x480.mp4"
    source = SyntheticSource(
        fps=30.0, seed=7, config=SynthConfig(size=SIZE), duration_s=SECONDS, realtime=False, gap_s=GAP_S
    )
    source.open()
    with Mp4Writer(path, 30.0, SIZE, 18) as writer:
        while (item := source.read()) is not None:
            writer.write(item[0])
    source.close()
    return path


def bench_pipeline(inp: Inputs, iters: int) -> list[Result]:
    """``pipeline``: frames per second of a file run end to end (decode, faces, EVM, spotting,
    recognition, sinks); ``event``: after-offset latency of events on a live-paced replay."""
    from realtime_mer.feeds import SourceSpec
    from realtime_mer.pipeline import Pipeline, load_pipeline_config
    from realtime_mer.sinks import CollectSink

    clip = planted_clip(inp.clip.parent)
    config = load_pipeline_config()

    clock, events = _Clock(), CollectSink()
    summary = Pipeline([SourceSpec("video", str(clip))], config, [clock, events]).run()
    gaps = np.diff(np.asarray(clock.times)) * 1e3
    fps = (len(clock.times) - 1) / (clock.times[-1] - clock.times[0])
    s = summary.streams[0]
    out = [
        Result(
            "pipeline",
            "file",
            "640x480",
            float(np.median(gaps)),
            float(np.percentile(gaps, 99)),
            fps,
            note=f"one stream, one face, landmarks every {config.face.landmark_every} frame(s), {s.frames} frames, "
            f"{summary.events} events; per frame; "
            f"stage medians {', '.join(f'{k} {v:.2f} ms' for k, v in s.stage_ms.items())}",
        )
    ]

    live = CollectSink()
    summary = Pipeline([SourceSpec("replay", str(clip))], config, [live]).run(SECONDS)
    lat = np.asarray([e.latency_ms["after_offset"] for e in live.events])
    s = summary.streams[0]
    if lat.size:
        out.append(
            Result(
                "event",
                "live 30 fps",
                "640x480",
                float(np.median(lat)),
                float(np.percentile(lat, 99)),
                note=f"capture of the offset frame -> emission, {lat.size} events, {s.dropped} of "
                f"{s.frames + s.dropped} frames dropped; recognition "
                f"{np.median([e.latency_ms.get('input', 0) + e.latency_ms.get('engine', 0) for e in live.events]):.2f}"
                " ms",
            )
        )
    return out


STAGES = {"pipeline": bench_pipeline}
