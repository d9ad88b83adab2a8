"""Soak test of ``realtime-mer monitor``: feeds of a real clip with planted micro-expressions over a
real RTSP server that is killed and restarted, one feed sending a truncated file; then every event
is checked against an offline run of the same frames. It needs Debian's GStreamer RTSP server for
the system python3 (:mod:`realtime_mer.bench.rtsp`)::

    python -m realtime_mer.bench.soak --minutes 10 --landmark-every 2 --json soak.json

It passes when the monitor stays up and every feed recovers, each session of the looping feeds
gives exactly the events (onset, apex, offset, kind, label) that a recording of that session gives,
the RSS grows by at most 10 % after minute one, and the reconnections show in the metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import av
import yaml

from realtime_mer.config import find_config
from realtime_mer.metrics import scrape

from .rtsp import RtspServer, free_port, has_rtsp_server
from .timing import machine

ROOT = Path(__file__).resolve().parents[1]
REAL_FACE = ROOT.parent / "shared" / "data" / "video" / "evm_face.mp4"


def loop_file(src: Path, dst: Path, loops: int) -> None:
    """``src`` repeated ``loops`` times into ``dst`` without re-encoding (packets with shifted times)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        s_in = inp.streams.video[0]
        s_out = out.add_stream_from_template(s_in)
        packets = [p for p in inp.demux(s_in) if p.size]
        span = max(p.pts + p.duration for p in packets) - min(p.pts for p in packets)
        for k in range(loops):
            for p in packets:
                q = av.Packet(bytes(p))
                q.pts, q.dts, q.duration = p.pts + k * span, p.dts + k * span, p.duration
                q.is_keyframe, q.time_base, q.stream = p.is_keyframe, p.time_base, s_out
                out.mux(q)


def truncated_file(src: Path, dst: Path, seconds: float = 4.0, keep: float = 0.6) -> None:
    """The first ``seconds`` of ``src`` remuxed with the index first (so it plays as far as its data
    goes), then cut to ``keep`` of its size: a feed that plays a little and breaks, again and again."""
    full = dst.with_suffix(".full.mp4")
    with av.open(str(src)) as inp, av.open(str(full), "w", options={"movflags": "+faststart"}) as out:
        s_out = out.add_stream_from_template(inp.streams.video[0])
        for p in inp.demux(inp.streams.video[0]):
            if p.size and p.pts is not None and p.pts * p.time_base < seconds:
                p.stream = s_out
                out.mux(p)
    data = full.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    full.unlink()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def offline(path: str, first: int, count: int, config_path: str | None = None) -> list[tuple]:
    """What a recording of the first ``count`` frames of ``path`` gives (numbered from ``first``), with
    the pipeline config at ``config_path`` (default: the shipped one) and its recognizer:
    ``(onset, apex, offset, kind, label)``."""
    from realtime_mer.capture import open_source, read_keyframe
    from realtime_mer.pipeline import StreamProcessor, load_pipeline_config
    from realtime_mer.recognize import Recognizer
    from realtime_mer.types import Frame

    config = load_pipeline_config(config_path)
    source = open_source("video", path)
    source.open()
    proc = StreamProcessor("offline", config, lambda: 30.0)
    spotted = []
    try:
        for k in range(count):
            item = source.read()
            if item is None:
                break
            key = read_keyframe(source)
            spotted += proc.process(Frame("offline", first + k, item[1], time.monotonic(), item[0], key=key))
    finally:
        spotted += proc.close()
        source.close()
    recognizer = Recognizer(config.recognize)
    labels = [r.label for r in recognizer.classify([(s.onset, s.apex) for s in spotted])] if spotted else []
    recognizer.close()
    return sorted(
        (s.interval.onset, s.interval.apex, s.interval.offset, s.interval.kind, lab) for s, lab in zip(spotted, labels)
    )


def sessions_of(records: list[dict], stream: str, last: int) -> list[tuple[int, int]]:
    """``(first frame, frames)`` of each session of ``stream``, from its status records; ``last`` is the
    number of the last frame processed."""
    starts = [
        r["index"]
        for r in records
        if r["type"] == "status" and r["stream"] == stream and r["state"] == "running" and r["previous"] != "stalled"
    ]
    breaks = [
        r["index"] + 1
        for r in records
        if r["type"] == "status"
        and r["stream"] == stream
        and r["state"] == "reconnecting"
        and r["previous"] in ("running", "stalled")
    ]
    ends = breaks + [last + 1]
    return [(a, b - a) for a, b in zip(starts, ends)]


def closing_frames(log: str, stream: str) -> tuple[int, int, int]:
    """``(frames processed, dropped, last frame number)`` of ``stream`` from the monitor's closing line."""
    m = re.search(re.escape(stream) + r": \w+, (\d+) frames .*? (\d+) dropped.*?last frame (-?\d+)", log)
    if not m:
        raise SystemExit(f"no summary for {stream} in the monitor's log")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--outages", type=int, default=2, help="times the servers are killed and restarted")
    p.add_argument("--outage-s", type=float, default=5.0, help="seconds the servers stay down")
    p.add_argument("--clip-s", type=float, default=60.0, help="length of the planted clip that loops")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    p.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (events, logs)")
    p.add_argument(
        "--landmark-every",
        type=int,
        default=1,
        metavar="N",
        help="face.landmark_every for the monitor and the offline runs (1: the shipped setting)",
    )
    args = p.parse_args(argv)
    if not has_rtsp_server():
        raise SystemExit("the system python3 has no GStreamer RTSP server bindings (see benchmarks/rtsp.py)")
    from realtime_mer.synth import record

    work = Path(args.keep or tempfile.mkdtemp(prefix="mer-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    seconds = args.minutes * 60
    clip, looping, truncated = work / "planted.mp4", work / "looping.mp4", work / "truncated.mp4"
    base = REAL_FACE if REAL_FACE.exists() else None
    planted = record(clip, args.clip_s, seed=args.seed, base=base)
    loop_file(clip, looping, int(seconds // args.clip_s) + 2)
    truncated_file(clip, truncated)
    config = work / "pipeline.yaml"
    settings = yaml.safe_load(find_config("pipeline").read_text())
    settings["face"]["landmark_every"] = args.landmark_every
    config.write_text(yaml.safe_dump(settings))
    print(
        f"soak: {work}; clip of {args.clip_s:g} s on {base or 'the built-in face'} with {len(planted)} planted "
        f"events, looped; {args.minutes:g} min",
        file=sys.stderr,
    )
    servers = [RtspServer(looping), RtspServer(looping), RtspServer(truncated)]
    for s in servers:
        s.start()
    events = work / "events.jsonl"
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "realtime_mer.cli",
        "monitor",
        "--events",
        str(events),
        "--metrics-port",
        str(port),
        "--health-s",
        "30",
        "--config",
        str(config),
        *[a for s in servers for a in ("--rtsp", s.url)],
    ]
    log_path = work / "monitor.log"
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log_file)
        t0 = time.monotonic()
        rss: list[tuple[float, float]] = []
        outages = [seconds * (k + 1) / (args.outages + 1) for k in range(args.outages)]
        scrapes = []
        try:
            while (now := time.monotonic() - t0) < seconds:
                if proc.poll() is not None:
                    raise SystemExit(f"the monitor exited early with {proc.returncode}; see {log_path}")
                rss.append((now, rss_mb(proc.pid)))
                if outages and now >= outages[0]:
                    outages.pop(0)
                    for s in servers[:2]:
                        s.kill()
                    time.sleep(args.outage_s)
                    for s in servers[:2]:
                        s.start()
                    print(f"soak: servers down {args.outage_s:g} s at {now:.0f} s", file=sys.stderr)
                time.sleep(5)
            time.sleep(10)  # the last reconnection settles
            scrapes.append(scrape(f"http://127.0.0.1:{port}/metrics"))
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=120)
            for s in servers:
                s.kill()
    log = log_path.read_text()
    records = [json.loads(line) for line in events.read_text().splitlines()]
    report = {
        "machine": machine(),
        "minutes": args.minutes,
        "outages": args.outages,
        "outage_s": args.outage_s,
        "landmark_every": args.landmark_every,
        "clip_s": args.clip_s,
        "seed": args.seed,
        "base_face": str(base or "built-in"),
        "planted_events": len(planted),
        "exit_code": code,
        "feeds": {},
    }
    jobs = []
    for s in servers[:2]:
        processed, dropped, last = closing_frames(log, s.url)
        sess = sessions_of(records, s.url, last)
        jobs += [(s.url, first, count) for first, count in sess]
        report["feeds"][s.url] = {"frames": processed, "dropped": dropped, "sessions": sess}
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        results = list(
            pool.map(
                offline,
                [str(looping)] * len(jobs),
                [j[1] for j in jobs],
                [j[2] for j in jobs],
                [str(config)] * len(jobs),
            )
        )
    for url, feed in report["feeds"].items():
        expected = sorted(x for job, res in zip(jobs, results) if job[0] == url for x in res)
        live = sorted(
            (r["onset"], r["apex"], r["offset"], r["kind"], r["label"])
            for r in records
            if r["type"] == "event" and r["stream"] == url
        )
        keys = [(r["track"], r["onset"]) for r in records if r["type"] == "event" and r["stream"] == url]
        feed.update(
            events=len(live),
            offline_events=len(expected),
            identical=len(set(live) & set(expected)),
            missing=len(set(expected) - set(live)),
            extra=len(set(live) - set(expected)),
            duplicated=len(keys) - len(set(keys)),
            reconnects_metric=scrapes[-1].get(f'realtime_mer_reconnects_total{{stream="{url}"}}'),
            state=scrapes[-1].get(f'realtime_mer_stream_state{{state="running",stream="{url}"}}'),
        )
    trunc = servers[2].url
    report["truncated_feed"] = {
        "reconnects_metric": scrapes[-1].get(f'realtime_mer_reconnects_total{{stream="{trunc}"}}'),
        "bad_frames_metric": scrapes[-1].get(f'realtime_mer_bad_frames_total{{stream="{trunc}"}}'),
        "frames_metric": scrapes[-1].get(f'realtime_mer_frames_total{{stream="{trunc}"}}'),
    }
    after_1 = [m for t, m in rss if t >= 60]
    report["rss_mb"] = {
        "at_1_min": after_1[0],
        "max_after_1_min": max(after_1),
        "end": rss[-1][1],
        "growth_after_1_min_pct": 100 * (max(after_1) / after_1[0] - 1),
        "every_30_s": [round(m, 1) for t, m in rss[::6]],
    }
    feeds = report["feeds"].values()
    report["passed"] = bool(
        code == 0
        and all(
            f["missing"] == 0
            and f["extra"] == 0
            and f["duplicated"] == 0
            and f["state"] == 1.0
            and (f["reconnects_metric"] or 0) >= args.outages
            for f in feeds
        )
        and report["rss_mb"]["growth_after_1_min_pct"] <= 10.0
    )
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
