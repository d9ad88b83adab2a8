"""``mer-train``: train and evaluate micro-expression recognisers, export them, search architectures.

Commands (the first is the default, so ``mer-train --dataset ...`` trains)::

    mer-train [train] --dataset KIND:PATH [--dataset ...] --model NAME --protocol loso|lovo
              [--epochs N] [--lr X] [--batch N] [--loss NAME] [--optimizer sgd|adam] [--jobs N]
              [--workers N] [--out DIR] [--config FILE] [--seed N] [--cache DIR] [--per-dataset]
              [--lovo-fraction F] [--val-fraction F] [--no-final] [--verbose]
              [--backend local|ray] [--address ADDR] [--gpus-per-fold X] [--init CHECKPOINT]
    mer-train evaluate --checkpoint FILE|default|MODEL --dataset KIND:PATH [--engine torch|onnxruntime]
              [--preprocess KEY=VALUE ...] [--out DIR]
    mer-train export --checkpoint FILE|default|MODEL --out FILE.onnx
    mer-train flowimages --dataset KIND:PATH --out DIR [--size N] [--flow-method dis|farneback|tvl1]
              [--suffix TEXT]
    mer-train search --dataset KIND:PATH [--epochs N] [--out DIR] [--seed N]

``--checkpoint default`` is the live pipeline's default recognizer (its shipped weights), ``rcn-a``
the weights shipped for that model. ``--init`` starts every fold (and the final model) from a
checkpoint, e.g. synthetic-pretrained weights (``default``), for fine-tuning on real data; it must
not have been trained on the run's datasets. The RCN family starts from its shipped weights by
default where they fit the run (``shipped``, ``configs/train/rcn.yaml``); ``--init none`` trains from
fresh ones. ``flowimages`` writes any dataset as MEGC 2019 composite-style flow images
(:mod:`realtime_mer.train.flowimages`), readable as ``flowimages:DIR``.
``--jobs`` folds train in parallel processes, by default one a usable CPU core (or, with
``--backend ray``, one Ray task a fold on the cluster at ``--address``:
:mod:`realtime_mer.train.cluster`), ``--workers`` processes preprocess.
The last line printed by ``train`` and ``evaluate`` is ``UF1 <value> UAR <value>`` (pooled over all
folds, MEGC).
Dataset syntax: :mod:`realtime_mer.train.datasets`; settings files: :mod:`realtime_mer.train.experiment`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

COMMANDS = ("train", "evaluate", "export", "search", "flowimages")


CHECKPOINT_HELP = (
    "a .safetensors/.pt file written by mer-train; 'default': the weights the live pipeline uses by default; "
    "or a model name with shipped weights (rcn-a)"
)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dataset",
        action="append",
        default=[],
        metavar="KIND:PATH",
        help="dataset to use (repeat to pool several), e.g. synth:/data/synth?classes=megc3",
    )
    p.add_argument("--workers", type=int, default=1, help="preprocessing processes (default 1)")
    p.add_argument("--cache", default=None, help="preprocessing cache (default ~/.cache/realtime-mer/preprocess)")


def _parser(command: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"mer-train {command}" if command != "train" else "mer-train",
                                description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    if command in ("train", "search", "flowimages"):
        _common(p)
    if command in ("train", "search"):
        p.add_argument("--config", default=None, help="settings file (YAML), e.g. configs/train/rcn.yaml")
        p.add_argument("--epochs", type=int, default=None)
        p.add_argument("--seed", type=int, default=None)
        p.add_argument("--out", default="runs/latest" if command == "train" else "runs/search", help="output folder")
    if command == "train":
        p.add_argument("--model", default=None, help="registry name, e.g. rcn-a (default from --config, else rcn-a)")
        p.add_argument("--protocol", choices=("loso", "lovo"), default=None)
        p.add_argument("--lr", type=float, default=None)
        p.add_argument("--batch", type=int, default=None)
        p.add_argument("--loss", default=None, help="crossentropy, balanced, batchfocal or focal")
        p.add_argument("--optimizer", choices=("sgd", "adam"), default=None)
        p.add_argument(
            "--val-fraction",
            type=float,
            default=None,
            help="share of the TRAINING subjects held out to pick the epoch (0: fixed epochs)",
        )
        p.add_argument("--per-dataset", action="store_true", default=None, help="one experiment per database")
        p.add_argument(
            "--lovo-fraction", type=float, default=None, help="LOVO: test this share of videos a fold (0.05)"
        )
        p.add_argument(
            "--jobs",
            type=int,
            default=None,
            help="folds trained in parallel processes (default: one a usable CPU core, at most one a fold)",
        )
        p.add_argument(
            "--backend",
            choices=("local", "ray"),
            default="local",
            help="local: --jobs processes; ray: one Ray task a fold (pip install 'realtime-mer[cluster]')",
        )
        p.add_argument(
            "--address",
            default=None,
            metavar="ADDR",
            help="--backend ray: join this Ray cluster (host:port, ray://host:10001, auto); "
            "default: $RAY_ADDRESS or the cluster of `ray start` here, else a local one for this run",
        )
        p.add_argument(
            "--gpus-per-fold",
            type=float,
            default=None,
            metavar="X",
            help="--backend ray: GPUs a fold takes (default 0.5 where the cluster has GPUs, else 0)",
        )
        p.add_argument("--no-final", action="store_true", help="do not train and save the all-data model")
        p.add_argument(
            "--init",
            default=None,
            metavar="CHECKPOINT",
            help="start every fold and the final model from these weights (a file, 'default' or a model "
            "with shipped weights, e.g. synthetic-pretrained rcn-a); 'shipped' (the RCN family's default): "
            "the model's shipped weights where they fit the run; 'none': fresh weights",
        )
        p.add_argument("--verbose", "-v", action="store_true", help="log every epoch of every fold")
    if command == "evaluate":
        _common(p)
        p.add_argument("--checkpoint", required=True, help=CHECKPOINT_HELP)
        p.add_argument("--engine", choices=("torch", "onnxruntime"), default="torch")
        p.add_argument(
            "--preprocess",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="change a preprocessing setting of the checkpoint's (e.g. flow_method=tvl1, "
            "face_size=[112,112]): score the weights on maps made another way (repeatable)",
        )
        p.add_argument("--out", default="runs/evaluate", help="output folder")
    if command == "export":
        p.add_argument("--checkpoint", required=True, help=CHECKPOINT_HELP)
        p.add_argument("--out", required=True, help="the .onnx file to write")
    if command == "flowimages":
        p.add_argument("--out", required=True, help="output folder: PNGs and labels.csv")
        p.add_argument("--size", type=int, default=28, help="map side, pixels (MEGC 2019 composite maps: 28)")
        p.add_argument("--flow-method", choices=("dis", "farneback", "tvl1"), default="dis")
        p.add_argument("--face-size", type=int, default=128, help="aligned face crop side, pixels (live: 128)")
        p.add_argument("--suffix", default="", help="appended to every sample name, e.g. _tvl1: maps of the same "
                       "clips made another way then pool with these in one run")  # fmt: skip
    return p


def _train(a: argparse.Namespace) -> str:
    from realtime_mer.errors import UserError
    from realtime_mer.train.experiment import load_run_config, report_last_line, run_experiment

    train = {k: v for k, v in {"epochs": a.epochs, "lr": a.lr, "batch": a.batch, "loss": a.loss,
                               "optimizer": a.optimizer, "val_fraction": a.val_fraction}.items()
             if v is not None}  # fmt: skip
    flags = {k: v for k, v in {"model": a.model, "protocol": a.protocol, "seed": a.seed,
                               "per_dataset": a.per_dataset,
                               "lovo_fraction": a.lovo_fraction}.items() if v is not None}  # fmt: skip
    if train:
        flags["train"] = train
    if a.no_final:
        flags["final"] = False
    if a.init is not None:
        flags.setdefault("train", {})["init"] = a.init
    run = load_run_config(a.config, flags)
    if a.backend == "local" and (a.address is not None or a.gpus_per_fold is not None):
        raise UserError("--address and --gpus-per-fold are options of --backend ray")
    scores = run_experiment(a.dataset, run, a.out, jobs=a.jobs, workers=a.workers, cache_dir=a.cache,
                            verbose=a.verbose, backend=a.backend, address=a.address,
                            gpus_per_fold=a.gpus_per_fold)  # fmt: skip
    print(f"reports in {a.out}" + (f"; model {Path(a.out) / 'model.safetensors'}" if run.final else ""))
    return report_last_line(scores)


def _evaluate(a: argparse.Namespace) -> str:
    from realtime_mer.train.experiment import evaluate_checkpoint, report_last_line

    scores = evaluate_checkpoint(a.checkpoint, a.dataset, a.out, a.engine, a.workers, a.cache,
                                 preprocess_overrides=_key_values(a.preprocess, "--preprocess"))  # fmt: skip
    print(f"reports in {a.out}")
    return report_last_line(scores)


def _key_values(items: Sequence[str], flag: str) -> dict[str, object]:
    """``["a=1", "b=[2, 3]"]`` -> ``{"a": 1, "b": [2, 3]}`` (values read as YAML)."""
    import yaml

    from realtime_mer.errors import UserError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"{flag} takes KEY=VALUE, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def _export(a: argparse.Namespace) -> str:
    from realtime_mer.models.checkpoint import load_checkpoint
    from realtime_mer.models.export import export_onnx
    from realtime_mer.train.experiment import resolve_checkpoint

    model, meta = load_checkpoint(resolve_checkpoint(a.checkpoint))
    path = export_onnx(model, meta, a.out)
    return f"exported {meta.model} ({', '.join(meta.classes)}) to {path}"


def _search(a: argparse.Namespace) -> str:
    import yaml

    from realtime_mer.config import from_mapping, load_yaml
    from realtime_mer.models import get_spec
    from realtime_mer.train.experiment import open_datasets
    from realtime_mer.train.preprocess import config_for, preprocess
    from realtime_mer.train.search import SearchConfig, search, write_architecture

    settings = load_yaml(a.config) if a.config else {}
    if a.epochs is not None:
        settings["epochs"] = a.epochs
    cfg = from_mapping(SearchConfig, settings, "search config")
    data = open_datasets(a.dataset)
    print(data.summary(), file=sys.stderr)
    spec = get_spec("rcn-f")
    pre = config_for(spec, {"num_classes": len(data.classes)})
    prepared = preprocess(data, pre, a.cache, a.workers)
    result = search(prepared, len(data.classes), cfg, a.seed if a.seed is not None else 1,
                    log=lambda s: print(s, file=sys.stderr, flush=True))  # fmt: skip
    out = Path(a.out)
    path = write_architecture(result, out / "architecture.yaml")
    (out / "search.yaml").write_text(yaml.safe_dump({"config": asdict(cfg), "probabilities": result.probabilities,
                                                      "ranking": [list(r) for r in result.ranking],
                                                      "history": result.history}, sort_keys=False))  # fmt: skip
    for i, (name, score) in enumerate(result.ranking[:3]):
        print(f"{i + 1}. {name} (log-probability {score:.4f})")
    return f"architecture {result.best} written to {path}"


def _flowimages(a: argparse.Namespace) -> str:
    from realtime_mer.train.experiment import open_datasets
    from realtime_mer.train.flowimages import write_flow_images

    data = open_datasets(a.dataset)
    print(data.summary(), file=sys.stderr)
    written = write_flow_images(
        data, a.out, a.size, a.flow_method, (a.face_size, a.face_size), a.cache, a.workers, a.suffix
    )
    return f"wrote {written.images} flow images and labels.csv to {a.out}" + (
        f" ({len(written.failed)} left out: no face on the onset frame)" if written.failed else ""
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mer-train`` console script; returns the exit status."""
    from realtime_mer.errors import UserError
    from realtime_mer.models.checkpoint import CheckpointError
    from realtime_mer.models.export import ExportError

    args = list(sys.argv[1:] if argv is None else argv)
    command = args.pop(0) if args and args[0] in COMMANDS else "train"
    a = _parser(command).parse_args(args)
    if command in ("train", "evaluate", "search", "flowimages") and not a.dataset:
        _parser(command).error("give at least one --dataset KIND:PATH")
    run = {"train": _train, "evaluate": _evaluate, "export": _export, "search": _search,
           "flowimages": _flowimages}[command]  # fmt: skip
    try:
        last = run(a)
    except (UserError, CheckpointError, ExportError) as e:
        print(f"mer-train: error: {e}", file=sys.stderr)
        return 2
    print(last, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
