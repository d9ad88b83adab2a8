"""One ``mer-train`` run: settings, datasets, preprocessing, the protocol, reports, the final model.

Settings come from, in increasing priority: :class:`RunConfig`'s defaults, the model's defaults
file ``configs/train/<model>.yaml`` (else ``configs/train/<family>.yaml``), a ``--config`` file, and
the command-line flags. Files hold a mapping with the fields of :class:`RunConfig`; ``train`` and
``preprocess`` are nested mappings (:class:`realtime_mer.train.train.TrainConfig`,
:class:`realtime_mer.train.preprocess.PreprocessConfig` without ``input`` and ``shapes``, which come from the
model).

Output folder (``--out``): ``results.md``, ``results.json``, ``confusion_<set>.png``
(:mod:`realtime_mer.train.report`), ``predictions.csv`` (one row per sample: fold, label, prediction,
probabilities), ``folds.json`` (per-fold training history), ``config.yaml`` (the merged settings)
and, unless ``final: false``, ``model.safetensors``: a model trained on every sample with the same
settings, its :class:`realtime_mer.models.checkpoint.ModelMeta` carrying the classes, the
preprocessing and a description of the training data.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml

from realtime_mer.config import ConfigError, find_config, from_mapping, load_yaml, settings
from realtime_mer.errors import UserError
from realtime_mer.models import build_model, get_spec
from realtime_mer.models.checkpoint import ModelMeta, load_checkpoint, save_checkpoint
from realtime_mer.train.datasets import Dataset, DatasetError, open_dataset
from realtime_mer.train.metrics import FULL, Scores, evaluate
from realtime_mer.train.preprocess import MODEL_FIELDS, Prepared, PreprocessConfig, config_for, preprocess
from realtime_mer.train.protocol import Fold, make_folds
from realtime_mer.train.report import final_line, markdown_table, write_report
from realtime_mer.train.train import FoldResult, TrainConfig, default_jobs, fold_data, run_folds, train_fold


@settings
class RunConfig:
    """Everything a training run needs besides the data.

    Attributes:
        model: registry name (``rcn-a``, ``strcn-g``, ...).
        model_config: overrides of the model's registry config (``num_classes`` is set from the data).
        protocol: ``loso`` or ``lovo``.
        per_dataset: one experiment per database instead of the composite.
        lovo_fraction: LOVO tests this share of videos a fold (seed 001: 0.05); ``None``: one video.
        seed: seeds folds, augmentation and the final model.
        final: also train a model on all samples and save it as ``model.safetensors``.
        train: optimisation settings.
        preprocess: preprocessing settings (fields of ``PreprocessConfig`` but ``input``, ``shapes``).
    """

    model: str = "rcn-a"
    model_config: dict[str, Any] = field(default_factory=dict)
    protocol: Literal["loso", "lovo"] = "loso"
    per_dataset: bool = False
    lovo_fraction: float | None = None
    seed: int = 1
    final: bool = True
    train: TrainConfig = field(default_factory=TrainConfig)
    preprocess: dict[str, Any] = field(default_factory=dict)


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in top.items():
        out[k] = (
            _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "model_config" else v
        )
    return out


def model_defaults_file(model: str) -> Path | None:
    """``configs/train/<model>.yaml``, else ``configs/train/<family>.yaml``, else None."""
    for name in (model, get_spec(model).family):
        try:
            return find_config(f"train/{name}")
        except ConfigError:
            continue
    return None


def load_run_config(config_file: str | Path | None = None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Merge the defaults file of the model, ``config_file`` and ``overrides`` (flags) into a RunConfig."""
    user = load_yaml(config_file) if config_file else {}
    flags = overrides or {}
    model = flags.get("model") or user.get("model") or RunConfig.model
    try:
        defaults_file = model_defaults_file(model)
    except KeyError as e:
        raise ConfigError(str(e.args[0])) from None
    merged = _merge(_merge(load_yaml(defaults_file) if defaults_file else {}, user), flags)
    merged.setdefault("model", model)
    return from_mapping(RunConfig, merged, "train config")


def open_datasets(specs: Sequence[str]) -> Dataset:
    """Open every ``KIND:PATH`` and pool them; their class lists must agree."""
    if not specs:
        raise DatasetError("give at least one --dataset KIND:PATH")
    sets = [open_dataset(s) for s in specs]
    classes = {d.classes for d in sets}
    if len(classes) > 1:
        raise DatasetError(
            f"the datasets have different classes ({'; '.join(', '.join(c) for c in classes)}): "
            "open them with the same scheme, e.g. KIND:PATH?classes=megc3"
        )
    if len(sets) == 1:
        return sets[0]
    return Dataset("+".join(d.name for d in sets), sets[0].classes, tuple(s for d in sets for s in d.samples),
                   " + ".join(d.source for d in sets), tuple(e for d in sets for e in d.excluded))  # fmt: skip


def preprocess_config(run: RunConfig, num_classes: int) -> tuple[dict[str, Any], PreprocessConfig]:
    """The model config (with ``num_classes``) and the preprocessing config of ``run``."""
    spec = get_spec(run.model)
    bad = sorted(set(run.preprocess) & set(MODEL_FIELDS))
    if bad:
        raise ConfigError(f"preprocess.{bad[0]} comes from the model's input spec and config; leave it out")
    model_config = spec.config({**run.model_config, "num_classes": num_classes})
    base = asdict(config_for(spec, model_config))
    fixed = {k: base[k] for k in MODEL_FIELDS}
    pre = from_mapping(PreprocessConfig, {**run.preprocess, **fixed}, "preprocess")
    return model_config, pre


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_experiment(
    specs: Sequence[str],
    run: RunConfig,
    out: str | Path,
    jobs: int | None = None,
    workers: int = 1,
    cache_dir: str | Path | None = None,
    verbose: bool = False,
    backend: Literal["local", "ray"] = "local",
    address: str | None = None,
    gpus_per_fold: float | None = None,
) -> dict[str, Scores]:
    """Train and evaluate ``run`` on the datasets ``specs`` under its protocol; write the reports to ``out``.

    The folds train ``jobs`` at a time in processes (``backend="local"``; ``None``: one a usable CPU
    core, :func:`realtime_mer.train.train.default_jobs`) or as Ray tasks on the
    cluster at ``address`` (``"ray"``, :mod:`realtime_mer.train.cluster`). Returns the pooled
    scores (``"full"`` and per database). Prints the results table to stdout.
    """
    if backend == "ray":
        from realtime_mer.cluster import require_ray

        require_ray()  # fail before preprocessing where Ray is missing
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = open_datasets(specs)
    _log(data.summary())
    model_config, pre = preprocess_config(run, len(data.classes))
    run = replace(run, train=replace(run.train, init=resolve_init(run, model_config, data)))
    (out / "config.yaml").write_text(yaml.safe_dump(_plain(asdict(run)), sort_keys=False))
    t0 = time.perf_counter()
    prepared = preprocess(data, pre, cache_dir, workers)
    t_pre = time.perf_counter() - t0
    for line in prepared.failed:
        _log(f"left out: {line}")
    samples = prepared.samples
    try:
        folds = make_folds(samples, run.protocol, run.per_dataset, run.lovo_fraction, run.train.val_fraction, run.seed)
    except ValueError as e:
        raise UserError(str(e)) from None
    if jobs is None:
        jobs = default_jobs(len(folds), run.train.threads)
    _log(
        f"{run.protocol.upper()}: {len(folds)} folds, model {run.model}, {run.train.epochs} epochs, "
        f"{len(prepared.owner)} training rows" + ("" if backend == "ray" else f", {jobs} fold(s) at a time")
    )
    t0 = time.perf_counter()
    results = run_folds(prepared, folds, run.model, model_config, data.classes, pre.input, run.train, run.seed, jobs,
                        verbose, backend, address, gpus_per_fold)  # fmt: skip
    t_train = time.perf_counter() - t0
    y_true, y_pred, probs, fold_of = _pool(prepared, folds, results)
    scores = evaluate(y_true, y_pred, len(data.classes), [s.dataset for s in samples])
    epoch_s = [t for r in results for t in r.epoch_seconds]
    meta = {
        "datasets": list(specs), "model": run.model, "model_config": model_config, "protocol": run.protocol,
        "per_dataset": run.per_dataset, "folds": len(folds), "samples": len(samples), "left_out": prepared.failed,
        "preprocess": asdict(pre), "train": asdict(run.train), "seed": run.seed,
        "seconds": {"preprocess": t_pre, "folds": t_train, "epoch_median": float(np.median(epoch_s)),
                    "epoch_p99": float(np.percentile(epoch_s, 99)), "backend": backend, "jobs": jobs,
                    "threads_per_fold": run.train.threads},
    }  # fmt: skip
    write_report(out, scores, data.classes, meta)
    _write_predictions(out / "predictions.csv", samples, y_true, y_pred, probs, fold_of, data.classes)
    (out / "folds.json").write_text(json.dumps([_fold_doc(f, r) for f, r in zip(folds, results)], indent=1))
    if run.final:
        _final_model(prepared, run, model_config, pre, data, scores, out)
    print(markdown_table(scores), end="")
    sec = meta["seconds"]
    at_once = "Ray tasks" if backend == "ray" else f"{jobs} fold(s) at a time"
    print(
        f"epoch time: median {sec['epoch_median']:.3f} s, p99 {sec['epoch_p99']:.3f} s ({at_once}, "
        f"{run.train.threads} thread(s) each); preprocessing {t_pre:.1f} s; folds {t_train:.1f} s"
    )
    return scores


def _pool(prepared: Prepared, folds, results: list[FoldResult]):
    n, k = len(prepared.samples), results[0].probs.shape[1]
    probs, fold_of = np.zeros((n, k), np.float32), [""] * n
    for f, r in zip(folds, results):
        probs[f.test] = r.probs
        for i in f.test:
            fold_of[i] = f.name
    y_true = np.array([s.label for s in prepared.samples])
    return y_true, probs.argmax(1), probs, fold_of


def _fold_doc(fold, r: FoldResult) -> dict[str, Any]:
    return {"fold": fold.name, "train": len(fold.train), "val": len(fold.val), "test": len(fold.test),
            "epoch_seconds": r.epoch_seconds, "train_loss": r.train_loss, "val_uf1": r.val_uf1,
            "best_epoch": r.best_epoch + 1}  # fmt: skip


def _write_predictions(path: Path, samples, y_true, y_pred, probs, fold_of, classes) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["dataset", "subject", "sample", "fold", "label", "prediction", *(f"p_{c}" for c in classes)])
        for i, s in enumerate(samples):
            w.writerow([s.dataset, s.subject, s.sample_id, fold_of[i], classes[y_true[i]], classes[y_pred[i]],
                        *(f"{p:.5f}" for p in probs[i])])  # fmt: skip


def _plain(x: Any) -> Any:
    """Tuples -> lists, recursively (for YAML/JSON)."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def describe_sources(data: Dataset) -> list[dict[str, Any]]:
    """Where each dataset came from; for a synthetic set also its generator settings (``dataset.json``)."""
    out = []
    for spec in data.source.split(" + "):
        doc: dict[str, Any] = {"spec": spec}
        root = Path(spec.partition(":")[2].partition("?")[0])
        info = root / "dataset.json"
        if spec.startswith("synth:") and info.is_file():
            gen = json.loads(info.read_text())
            doc.update({k: gen.get(k) for k in ("generator", "seed", "fps", "bases")})
            doc["clips"] = len(gen.get("clips", []))
            doc["synth_config"] = gen.get("config")
        out.append(doc)
    return out


def training_meta(
    pre: PreprocessConfig, run: RunConfig, data: Dataset, scores: dict[str, Scores] | None
) -> dict[str, Any]:
    """The ``training`` field of a checkpoint: data, preprocessing, optimisation, protocol scores."""
    return _plain({
        "data": {"datasets": data.source, "summary": data.summary(), "sources": describe_sources(data)},
        "preprocess": asdict(pre),
        "train": asdict(run.train),
        "seed": run.seed,
        "protocol": run.protocol,
        "protocol_scores": {k: {"uf1": v.uf1, "uar": v.uar, "n": v.n} for k, v in (scores or {}).items()},
    })  # fmt: skip


def _final_model(prepared: Prepared, run: RunConfig, model_config, pre, data: Dataset, scores, out: Path) -> Path:
    everyone = np.arange(len(prepared.samples))
    fold = Fold("final", everyone, np.zeros(0, np.int64), np.zeros(0, np.int64))
    cfg = replace(run.train, val_fraction=0.0)
    _log(f"final model on all {len(everyone)} samples ({cfg.epochs} epochs)")
    result = train_fold("final", fold_data(prepared, fold), run.model, model_config, data.classes, pre.input, cfg,
                        run.seed, keep_state=True)  # fmt: skip
    model = build_model(run.model, result.model_config)
    model.load_state_dict(result.state_dict)
    meta = ModelMeta.from_spec(
        run.model, result.model_config, classes=data.classes, training=training_meta(pre, run, data, scores)
    )
    return save_checkpoint(model, out / "model.safetensors", meta)


def report_last_line(scores: dict[str, Scores]) -> str:
    """``UF1 x UAR y`` of the pooled (full) scores."""
    return final_line(scores[FULL].uf1, scores[FULL].uar)


def checkpoint_preprocess(meta: ModelMeta, overrides: dict[str, Any] | None = None) -> PreprocessConfig:
    """The preprocessing a checkpoint was trained with (``training["preprocess"]``), else the model's
    defaults; ``overrides`` change fields (e.g. ``{"flow_method": "tvl1"}``: evaluate under another
    preprocessing than the training one). ``input``, ``shapes``, ``rate``, ``difference`` and ``mask``
    belong to the model (:data:`realtime_mer.train.preprocess.MODEL_FIELDS`)."""
    stored = meta.training.get("preprocess") if isinstance(meta.training, dict) else None
    model = asdict(config_for(get_spec(meta.model), meta.config))
    base = {**(stored or model), **{k: model[k] for k in MODEL_FIELDS}}
    bad = sorted(set(overrides or {}) & set(MODEL_FIELDS))
    if bad:
        raise ConfigError(f"preprocess.{bad[0]} comes from the checkpoint's model; leave it out")
    return from_mapping(PreprocessConfig, {**base, **(overrides or {})}, "checkpoint preprocess")


def resolve_checkpoint(name: str | Path) -> Path:
    """A ``--checkpoint``/``--init`` argument as a file: an existing path; ``default``, the weights the
    live pipeline loads by default (:class:`realtime_mer.recognize.RecognizeConfig`'s model and
    weights); or a registry name with shipped weights (``rcn-a``: :func:`realtime_mer.weights.default_weights`).
    Anything else is returned as a path (loading it says it is missing)."""
    from realtime_mer.recognize import RecognizeConfig
    from realtime_mer.weights import available, default_weights

    path = Path(name)
    if path.is_file():
        return path
    if str(name) == "default":
        live = RecognizeConfig()
        if live.model is None:
            raise UserError("the live pipeline's default recognizer is off (model: null): give a checkpoint file")
        return Path(live.weights) if live.weights != "default" else default_weights(live.model)
    if str(name) in available():
        return default_weights(str(name))
    return path


def check_init(name: str | Path, run: RunConfig, model_config: dict[str, Any], data: Dataset) -> Path:
    """The file of ``--init`` after checking that it fits the run and cannot leak the test subjects.

    It must hold ``run.model`` with the same config (``model_config``) and classes (``data.classes``)
    and must not have been trained on any dataset of this run: weights that have seen a subject
    would be tested on it in its LOSO/LOVO fold. Raises UserError/CheckpointError saying what differs.
    """
    from realtime_mer.models.checkpoint import read_checkpoint_meta

    path = resolve_checkpoint(name)
    meta = read_checkpoint_meta(path)
    if meta.model != run.model:
        raise UserError(
            f"--init {path} holds model {meta.model!r}, this run trains {run.model!r}: pass --model {meta.model}"
        )
    differ = sorted(
        k for k in set(meta.config) | set(model_config) if _plain(meta.config.get(k)) != _plain(model_config.get(k))
    )
    if differ:
        d = ", ".join(f"{k}: {meta.config.get(k)!r} vs {model_config.get(k)!r}" for k in differ)
        raise UserError(f"--init {path} has another {run.model} config than this run ({d}): set model_config to match")
    if tuple(meta.classes) != tuple(data.classes):
        raise UserError(
            f"--init {path} predicts {', '.join(meta.classes)}, the data have {', '.join(data.classes)}: "
            "open the datasets with the checkpoint's class scheme (e.g. ?classes=megc3)"
        )
    seen = _roots(meta.training.get("data", {}).get("datasets", "")) if isinstance(meta.training, dict) else set()
    leak = seen & _roots(data.source)
    if leak:
        raise UserError(
            f"--init {path} was trained on {', '.join(sorted(leak))}, which this run tests on: its weights have "
            "seen every test subject (a leak). Pretrain on other data, e.g. a synthetic set"
        )
    return path


def resolve_init(run: RunConfig, model_config: dict[str, Any], data: Dataset) -> str | None:
    """The weights file the run starts from (``train.init``), or None for fresh weights.

    ``None``/``"none"``: fresh weights. ``"shipped"`` (the RCN family's default,
    ``configs/train/rcn.yaml``): the model's shipped synthetic-pretrained weights where they fit the
    run (:func:`check_init`), else fresh weights; the log says which and why. Anything else must
    pass :func:`check_init` (a file, ``default`` or a model name).
    """
    from realtime_mer.weights import available

    init = run.train.init
    if init is None or init == "none":
        return None
    if init != "shipped":
        return str(check_init(init, run, model_config, data))
    if run.model not in available():
        _log(f"init: fresh weights ({run.model} has no shipped weights)")
        return None
    try:
        path = check_init(run.model, run, model_config, data)
    except UserError as e:
        _log(f"init: fresh weights; the shipped {run.model} weights do not fit this run: {e}")
        return None
    _log(f"init: the shipped {run.model} weights, pretrained on synthetic data ({path}); --init none: fresh weights")
    return str(path)


def _roots(source: str) -> set[str]:
    """Resolved dataset paths of a ``KIND:PATH?... + KIND:PATH`` source string."""
    out = set()
    for spec in filter(None, (x.strip() for x in source.split(" + "))):
        path = spec.partition(":")[2].partition("?")[0]
        if path:
            out.add(str(Path(path).expanduser().resolve()))
    return out


def evaluate_checkpoint(
    checkpoint: str | Path,
    specs: Sequence[str],
    out: str | Path,
    engine: str = "torch",
    workers: int = 1,
    cache_dir: str | Path | None = None,
    batch: int = 64,
    preprocess_overrides: dict[str, Any] | None = None,
) -> dict[str, Scores]:
    """Score a checkpoint on datasets through an inference engine (``torch`` or ``onnxruntime``).

    ``checkpoint`` is a file or a name of :func:`resolve_checkpoint` (``default``, ``rcn-a``). The data
    are preprocessed as the checkpoint's training data were, but for ``preprocess_overrides``
    (:func:`checkpoint_preprocess`); the dataset's class names must be among the checkpoint's.
    Writes the reports to ``out`` and returns the pooled scores.
    """
    from realtime_mer.engines import make_engine, probabilities

    checkpoint = resolve_checkpoint(checkpoint)
    model, meta = load_checkpoint(checkpoint)
    data = open_datasets(specs)
    unknown = sorted(set(data.classes) - set(meta.classes))
    if unknown:
        raise DatasetError(
            f"the dataset has classes {unknown} that the checkpoint ({', '.join(meta.classes)}) cannot predict: "
            "open it with a matching class scheme, e.g. ?classes=megc3"
        )
    _log(data.summary())
    pre = checkpoint_preprocess(meta, preprocess_overrides)
    prepared = preprocess(data, pre, cache_dir, workers)
    rows = prepared.test_rows
    inputs = {k: v[rows] for k, v in prepared.inputs.items()}
    states = {t.name: t.shape for t in meta.inputs if t.name not in inputs}
    probs = []
    if "length" in inputs:  # the region CNN-LSTM's padded windows: step by step, as live
        from realtime_mer.region_stream import StepRunner

        steps = StepRunner(model, meta, engine)
        eng = steps.engine
        _log(f"engine: {eng.describe()}")
        for i in range(len(rows)):
            probs.append(probabilities(steps.run_window({k: v[i] for k, v in inputs.items()})[None]))
    else:
        eng = make_engine(engine, model=model, meta=meta, device="cpu")  # type: ignore[arg-type]
        _log(f"engine: {eng.describe()}")
        for i in range(0, len(rows), batch):
            b = {k: np.ascontiguousarray(v[i : i + batch]) for k, v in inputs.items()}
            n = len(next(iter(b.values())))
            b.update({k: np.zeros((n, *s), np.float32) for k, s in states.items()})
            probs.append(probabilities(eng.predict(b)))
    eng.close()
    p = np.concatenate(probs)
    y_true = np.array([meta.classes.index(s.label_name) for s in prepared.samples])
    scores = evaluate(y_true, p.argmax(1), len(meta.classes), [s.dataset for s in prepared.samples])
    out = Path(out)
    write_report(out, scores, meta.classes, {"checkpoint": str(checkpoint), "engine": eng.describe(),
                                              "datasets": list(specs), "preprocess": asdict(pre),
                                              "left_out": prepared.failed})  # fmt: skip
    _write_predictions(out / "predictions.csv", prepared.samples, y_true, p.argmax(1), p, ["-"] * len(p), meta.classes)
    print(markdown_table(scores), end="")
    return scores
