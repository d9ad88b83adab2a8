"""``realtime-mer eval-spotting``: the live signal path run over a synthetic set, scored the MEGC way.

Each clip goes through the same :class:`~realtime_mer.pipeline.StreamProcessor` as a live stream
(faces, alignment, EVM, spotting) at full decoding speed. A spotted interval belongs to the planted
face whose box holds the track's box centre; it is a true positive when its IoU with a planted
interval of the same kind (micro or macro) is >= 0.5. Counts are pooled over all clips (MEGC);
blinks are not expression events, so an interval spotted on a blink is a false positive.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .capture import open_source
from .pipeline import PipelineConfig, StreamProcessor
from .spotting import SpotScore, match_intervals
from .types import Frame

log = logging.getLogger(__name__)

KINDS = ("micro", "macro")


@dataclass
class SpotReport:
    """Pooled scores per kind, apex errors (frames) of the micro matches, and the clips scored."""

    scores: dict[str, SpotScore] = field(default_factory=lambda: {k: SpotScore() for k in KINDS})
    apex_errors: list[int] = field(default_factory=list)
    clips: int = 0
    frames: int = 0
    seconds: float = 0.0

    def add(self, other: SpotReport) -> None:
        for k in KINDS:
            self.scores[k] = self.scores[k] + other.scores[k]
        self.apex_errors += other.apex_errors
        self.clips += other.clips
        self.frames += other.frames
        self.seconds += other.seconds

    @property
    def overall(self) -> SpotScore:
        return self.scores["micro"] + self.scores["macro"]

    def lines(self) -> list[str]:
        """The printed report; the last line is ``spotting F1: <micro-expression F1>``."""
        out = [
            f"{self.clips} clips, {self.frames} frames, {self.frames / max(self.seconds, 1e-9):.0f} frames/s "
            f"per process"
        ]
        for name, s in (*self.scores.items(), ("overall", self.overall)):
            out.append(
                f"{name:<8} TP {s.tp:4d}  FP {s.fp:4d}  FN {s.fn:4d}  precision {s.precision:.3f}  "
                f"recall {s.recall:.3f}  F1 {s.f1:.3f}"
            )
        if self.apex_errors:
            e = np.abs(np.asarray(self.apex_errors))
            out.append(f"micro apex error: mean {e.mean():.2f} frames, median {np.median(e):.1f}, max {e.max()}")
        out.append(f"spotting F1: {self.scores['micro'].f1:.4f}")
        return out


def _face_of(bbox: tuple[float, float, float, float], faces) -> int:
    """Index of the planted face whose box holds (or is nearest to) the centre of ``bbox``."""
    cx, cy = (bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2
    dist = [np.hypot(cx - (f.bbox[0] + f.bbox[2]) / 2, cy - (f.bbox[1] + f.bbox[3]) / 2) for f in faces]
    return int(np.argmin(dist))


def evaluate_clip(truth, config: PipelineConfig) -> SpotReport:
    """Spot one synthetic clip with the live signal path and score it against its ground truth."""
    source = open_source("video", str(truth.video), config.capture)
    source.open()
    proc = StreamProcessor(truth.clip, config, lambda: truth.fps)
    spotted = []
    t0 = time.perf_counter()
    index = 0
    try:
        while (item := source.read()) is not None:
            image, t = item
            spotted += proc.process(
                Frame(truth.clip, index, index / truth.fps if t is None else t, time.monotonic(), image)
            )
            index += 1
    finally:
        spotted += proc.close()
        source.close()
    report = SpotReport(clips=1, frames=index, seconds=time.perf_counter() - t0)
    for face in range(len(truth.faces)):
        pred = [s.interval for s in spotted if _face_of(s.bbox, truth.faces) == face]
        for kind in KINDS:
            planted = [(e.onset, e.apex, e.offset, kind) for e in truth.events if e.face == face and e.kind == kind]
            m = match_intervals([p for p in pred if p.kind == kind], planted)
            report.scores[kind] = report.scores[kind] + m.score
            if kind == "micro":
                report.apex_errors += list(m.apex_errors)
    return report


def _evaluate_one(args: tuple) -> SpotReport:
    truth, config = args
    return evaluate_clip(truth, config)


def evaluate_dataset(data: str | Path, config: PipelineConfig, workers: int = 1) -> SpotReport:
    """Score every clip of a ``realtime-mer synth`` folder; ``workers`` processes share the clips."""
    from .synth import load_ground_truth

    truths = list(load_ground_truth(data).values())
    total = SpotReport()
    jobs = [(t, config) for t in truths]

    def collect(results) -> None:
        for k, r in enumerate(results, 1):
            total.add(r)
            log.info("clip %d/%d: micro %s", k, len(jobs), total.scores["micro"])

    if workers <= 1:
        collect(map(_evaluate_one, jobs))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            collect(pool.map(_evaluate_one, jobs))
    return total


def demo_report(planted, events) -> str:
    """One line: how many planted micro-expressions of a live synthetic source were spotted.

    Both sides are compared in time (the live source may skip frames), on a 1 ms grid.
    """
    ms = 1000.0
    truth = [
        (round(e.t_onset * ms), round(e.t_apex * ms), round(e.t_offset * ms), e.kind)
        for e in planted
        if e.kind in KINDS
    ]
    pred = [
        (
            round(e.interval.t_onset * ms),
            round(e.interval.t_apex * ms),
            round(e.interval.t_offset * ms),
            e.interval.kind,
        )
        for e in events
    ]
    m = match_intervals(pred, truth, by_kind=True)
    kept = [e for e in planted if e.kind in KINDS]
    micro = sum(1 for t in truth if t[3] == "micro")
    hits = [(events[i], kept[j]) for i, j, _ in m.pairs if truth[j][3] == "micro"]
    labelled = [(e.label, p.label) for e, p in hits if e.label is not None and p.label in e.probs]
    line = (
        f"demo: spotted {len(hits)} of {micro} planted micro-expressions (IoU >= 0.5); "
        f"{len(pred)} intervals reported, {m.score.tp} matched a planted event of their kind, "
        f"{m.score.fp} did not; {sum(1 for e in planted if e.kind == 'blink')} blinks planted"
    )
    if labelled:
        line += f"; {sum(a == b for a, b in labelled)} of {len(labelled)} recognized as the planted class"
    return line
