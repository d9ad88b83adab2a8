"""``streams``: how many live feeds a machine sustains, in-process and sharded over Ray workers.

For 1, 2, ... feeds (each a 640x480 replay at 30 fps of the planted synthetic face: one face,
events every 1-3 s), every backend runs the monitor for ``SECONDS`` and records per feed the rate
processed, the share of frames dropped, the stage medians and the event latency, and the whole
machine's CPU use (from ``/proc/stat``: the Ray workers are not this process's children). A run
keeps up when every feed does (at most ``MAX_DROPPED`` of its frames dropped, at least ``MIN_FPS``
processed) and its events go out on time: p99 of the event latency (capture of the offset frame ->
emission) within ``LATENCY_P99_MS``, the project's budget for one feed. A backend sustains N feeds
when every run up to N kept up. Rows carry ``stage: "streams"``, ``backend``, ``feeds`` (the feeds
of that run) and, on each backend's summary row, ``streams`` (the most feeds it sustained). A PNG
plots the processed rate per feed and the p99 event latency against the number of feeds.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .pipeline import SIZE, planted_clip
from .signal import Inputs
from .timing import Result

log = logging.getLogger(__name__)

SECONDS = 20.0  # measured run per (backend, feeds)
FPS = 30.0
MAX_DROPPED = 0.005  # a feed keeps up: at most 0.5 % of its frames dropped ...
MIN_FPS = 0.97 * FPS  # ... and processed at 97 % of its rate or more ...
LATENCY_P99_MS = 50.0  # ... and events out within 50 ms of their offset frame (p99)


def _cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine since boot."""
    with open("/proc/stat") as f:
        values = [float(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def run_feeds(clip: Path, feeds: int, backend: str, workers: int, seconds: float) -> dict[str, Any]:
    """One measured run of ``feeds`` replayed copies of ``clip``: per-feed rates, drops, stage
    medians, event latencies and the machine's CPU use (percent of one core)."""
    from realtime_mer.feeds import SourceSpec
    from realtime_mer.pipeline import Pipeline, load_pipeline_config
    from realtime_mer.sinks import CollectSink

    config = load_pipeline_config()
    specs = [SourceSpec("replay", str(clip), name=f"feed{k}") for k in range(feeds)]
    sink = CollectSink()
    if backend == "ray":
        from realtime_mer.cluster import RayPipeline

        pipeline: Any = RayPipeline(specs, config, [sink], workers=min(workers, feeds), log_level="WARNING")
    else:
        pipeline = Pipeline(specs, config, [sink], monitor=True)
    busy0, total0 = _cpu_times()
    summary = pipeline.run(seconds)
    busy1, total1 = _cpu_times()
    cpu_pct = 100.0 * (os.cpu_count() or 1) * (busy1 - busy0) / max(total1 - total0, 1.0)
    per_feed = [
        {
            "fps": s.fps * s.frames / max(s.frames + s.dropped, 1),  # the rate in, less what was dropped
            "dropped": s.dropped / max(s.frames + s.dropped, 1),
            "stage_ms": s.stage_ms,
        }
        for s in summary.streams
    ]
    lat = np.asarray([e.latency_ms["after_offset"] for e in sink.events]) if sink.events else np.zeros(0)
    return {"feeds": per_feed, "cpu_pct": cpu_pct, "latency_ms": lat, "events": len(sink.events)}


def _kept_up(run: dict[str, Any]) -> bool:
    lat = run["latency_ms"]
    on_time = not lat.size or float(np.percentile(lat, 99)) <= LATENCY_P99_MS
    return on_time and all(f["dropped"] <= MAX_DROPPED and f["fps"] >= MIN_FPS for f in run["feeds"])


def bench_streams(
    inp: Inputs,
    iters: int,
    *,
    max_feeds: int = 4,
    workers: int | None = None,
    plot: Path | None = None,
    seconds: float = SECONDS,
    clip: Path | None = None,
) -> list[Result]:
    """Feeds sustained per backend (in-process; Ray with ``workers`` processes, default one per CPU),
    trying 1..``max_feeds`` feeds of ``clip`` (default: the planted 640x480 clip) for ``seconds``
    each."""
    import ray

    clip = clip or planted_clip(inp.clip.parent)
    cores = os.cpu_count() or 1
    workers = workers or cores
    backends = [("inprocess", "inprocess"), ("ray", f"ray {workers} workers")]
    out: list[Result] = []
    curves: dict[str, list[tuple[int, float, float]]] = {}
    started = not ray.is_initialized()
    if started:
        ray.init(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    try:
        for backend, label in backends:
            sustained, behind = 0, False
            for n in range(1, max_feeds + 1):
                log.warning("streams: %s, %d feed(s), %.0f s", label, n, seconds)
                run = run_feeds(clip, n, backend, workers, seconds)
                fps = float(np.mean([f["fps"] for f in run["feeds"]]))
                lat = run["latency_ms"]
                curves.setdefault(label, []).append((n, fps, float(np.percentile(lat, 99)) if lat.size else np.nan))
                out.append(_row(label, n, run))
                behind = behind or not _kept_up(run)
                sustained = sustained if behind else n
            out.append(
                Result(
                    "streams",
                    label,
                    f"{SIZE[0]}x{SIZE[1]}@{FPS:.0f}",
                    0.0,
                    0.0,
                    extra={
                        "streams": sustained,
                        "cores": os.cpu_count(),
                        "per_core": sustained / (os.cpu_count() or 1),
                    },
                    note=f"feeds sustained at {FPS:.0f} fps: every feed <= {MAX_DROPPED:.1%} dropped and "
                    f">= {MIN_FPS:.1f} fps processed, event latency p99 <= {LATENCY_P99_MS:.0f} ms, "
                    f"over {seconds:.0f} s runs",
                )
            )
    finally:
        if started:
            ray.shutdown()
    if plot is not None:
        _plot(curves, plot)
    return out


def _row(label: str, n: int, run: dict[str, Any]) -> Result:
    feeds = run["feeds"]
    stages: dict[str, float] = {}
    for name in ("face", "evm", "spot"):
        values = [f["stage_ms"][name] for f in feeds if name in f["stage_ms"]]
        if values:
            stages[name] = round(float(np.median(values)), 3)
    lat = run["latency_ms"]
    med, p99 = (float(np.median(lat)), float(np.percentile(lat, 99))) if lat.size else (0.0, 0.0)
    fps = [f["fps"] for f in feeds]
    drops = [f["dropped"] for f in feeds]
    return Result(
        "streams",
        label,
        f"{SIZE[0]}x{SIZE[1]}@{FPS:.0f}",
        med,
        p99,
        float(np.sum(fps)),
        extra={
            "feeds": n,
            "fps_per_feed": round(float(np.mean(fps)), 2),
            "min_fps": round(float(np.min(fps)), 2),
            "dropped_max": round(float(np.max(drops)), 4),
            "cpu_pct": round(run["cpu_pct"], 1),
            "stage_ms": stages,
            "events": run["events"],
            "kept_up": _kept_up(run),
        },
        note="median/p99: event latency (capture of the offset frame -> emission); throughput: frames "
        "processed per second, all feeds",
    )


def _plot(curves: dict[str, Sequence[tuple[int, float, float]]], path: Path) -> None:
    """Two panels against the number of feeds: frames processed per second per feed, and the p99
    event latency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .timing import machine

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9.6, 4.0), dpi=120)
    for label, points in curves.items():
        n, fps, p99 = zip(*points, strict=True)
        ax.plot(n, fps, marker="o", label=label)
        ax2.plot(n, p99, marker="o", label=label)
    ax.axhline(FPS, color="grey", linestyle="--", linewidth=1, label=f"{FPS:.0f} fps")
    ax.set_ylim(0, FPS * 1.15)
    ax.set_ylabel("frames processed per second, per feed")
    ax2.axhline(LATENCY_P99_MS, color="grey", linestyle="--", linewidth=1, label=f"{LATENCY_P99_MS:.0f} ms budget")
    ax2.set_yscale("log")
    ax2.set_ylabel("event latency p99, ms (offset frame -> emission)")
    for a in (ax, ax2):
        a.set_xlabel("feeds (640x480 at 30 fps, one face each)")
        a.set_xticks(sorted({p[0] for pts in curves.values() for p in pts}))
        a.legend(fontsize=8)
    fig.suptitle(f"realtime-mer monitor: {machine()['cpu']}", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    log.warning("streams: plot written to %s", path)


STAGES = {"streams": bench_streams}
