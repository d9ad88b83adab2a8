"""``realtime-mer bench``: stage latencies as a table of medians and p99, and as JSON.

JSON shape: ``{"machine": {"cpu", "gpu", "platform", "versions"}, "results": [{"stage", "backend",
"size", "median_ms", "p99_ms", "throughput_fps", ...}, ...]}``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .timing import Result, machine

log = logging.getLogger(__name__)


def _stages() -> dict[str, Callable]:
    from . import engines, models, pipeline, signal, streams

    return {**signal.STAGES, **engines.STAGES, **models.STAGES, **pipeline.STAGES, **streams.STAGES}


def table(results: Sequence[Result]) -> str:
    """A fixed-width text table of the results."""
    head = f"{'stage':<10} {'backend':<24} {'size':<12} {'batch':>5} {'median ms':>10} {'p99 ms':>9} {'items/s':>9}"
    lines = [head, "-" * len(head)]
    for r in results:
        fps = f"{r.throughput_fps:9.0f}" if r.throughput_fps else f"{'':9}"
        lines.append(
            f"{r.stage:<10} {r.backend:<24} {r.size:<12} {r.batch or '':>5} {r.median_ms:10.3f} {r.p99_ms:9.3f} {fps}"
            + "".join(f" {k}={v}" for k, v in r.extra.items())
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    stages = _stages()
    p = argparse.ArgumentParser(prog="realtime-mer bench", description=__doc__.splitlines()[0])
    p.add_argument(
        "--stages", default=",".join(stages), help=f"comma-separated, from: {', '.join(stages)} (default: all)"
    )
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--video", metavar="PATH", help="a face video to benchmark on (default: a still real face)")
    p.add_argument("--iters", type=int, default=100, help="timed calls per row (default 100)")
    p.add_argument("--feeds", type=int, default=4, metavar="N", help="streams: most feeds tried (default 4)")
    p.add_argument(
        "--workers", type=int, default=None, metavar="W", help="streams: Ray worker processes (default: one per CPU)"
    )
    p.add_argument("--plot", metavar="PNG", help="streams: plot fps against feeds into PNG")
    args = p.parse_args(argv)
    chosen = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in stages]
    if unknown:
        p.error(f"unknown stage(s) {', '.join(unknown)}; known: {', '.join(stages)}")
    from .signal import make_inputs, workdir

    results: list[Result] = []
    done: set[Callable] = set()
    with workdir() as tmp:
        inputs = make_inputs(Path(tmp), args.video)
        for name in chosen:
            fn = stages[name]
            if fn in done:  # two names for one benchmark (landmarks and alignment)
                continue
            done.add(fn)
            print(f"bench: {name} ...", file=sys.stderr, flush=True)
            if name == "streams":
                plot = Path(args.plot) if args.plot else None
                results.extend(fn(inputs, args.iters, max_feeds=args.feeds, workers=args.workers, plot=plot))
            else:
                results.extend(fn(inputs, args.iters))
    info = machine()
    print(f"machine: {info['cpu']}; gpu: {info['gpu'] or 'none'}")
    print(table(results))
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"machine": info, "results": [r.to_json() for r in results]}, indent=1) + "\n")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
