"""Training of one model on one fold, the protocol over all folds (in parallel processes or as Ray
tasks, :mod:`realtime_mer.train.cluster`), prediction.

Every fold trains a fresh model, seeded with ``(seed, fold number)``, for a fixed number of epochs;
with a validation split (:func:`realtime_mer.train.protocol.with_validation`, training subjects only) the
weights of the epoch with the best validation UF1 are kept instead of the last ones. The test fold
is only predicted, once, at the end.

Inputs are the rows of :class:`realtime_mer.train.preprocess.Prepared`: training uses every variant of the
training samples (STRCN's augmentation), validation and test only each sample's test variant.
Models with several ``logits*`` outputs (DTSCNN's fused and per-stream logits) are trained on the
sum of their losses; the region CNN-LSTM adds its per-region "not me" focal loss (seed 002) when the
classes are the MEGC ones.
"""

from __future__ import annotations

import concurrent.futures as cf
import copy
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from realtime_mer.config import settings
from realtime_mer.flow import pack_mask
from realtime_mer.inputs import strcn_a_dataset_mask, strcn_a_select
from realtime_mer.models import build_model, get_spec
from realtime_mer.train.augment import balanced_indices, flip_input, nine_crop_sequence
from realtime_mer.train.losses import RegionFocalLoss, make_loss, responsible_indices
from realtime_mer.train.metrics import uf1
from realtime_mer.train.preprocess import STATE_INPUTS, Prepared
from realtime_mer.train.protocol import Fold

FLIP_SCALE = {"rcn": "minmax", "strcn-g": "raw", "dtscnn": "raw"}
"""Input kinds a mirror flip applies to, and how their ``u`` channel is scaled."""


@settings
class TrainConfig:
    """Optimisation of one fold.

    Attributes:
        epochs: passes over the (augmented) training rows; fixed, never chosen on the test fold.
        lr: learning rate.
        batch: mini-batch size.
        optimizer: ``"sgd"`` (with ``momentum``; the RCN code) or ``"adam"``.
        momentum: SGD momentum.
        weight_decay: L2 penalty.
        loss: ``crossentropy``, ``balanced``, ``batchfocal`` or ``focal`` (:mod:`realtime_mer.train.losses`).
        gamma: focusing parameter of the focal losses.
        flip: mirror half of the training inputs at random (flow inputs only).
        balance: ``"nine-crop"``: DTSCNN's balanced resampling of ``per_class`` clips a class per
            epoch with nine-crop jitter (sequence inputs only); ``"none"``.
        per_class: clips a class for ``balance="nine-crop"``.
        val_fraction: share of the training subjects held out to pick the epoch (0: last epoch).
        init: checkpoint file every fold and the final model start from (``mer-train --init``;
            checked by :func:`realtime_mer.train.experiment.check_init`); ``None`` or ``"none"``:
            fresh weights; ``"shipped"``: the model's shipped weights where they fit the run, else
            fresh ones (:func:`realtime_mer.train.experiment.resolve_init`).
        cnn_epochs: the region CNN-LSTM's two stages (seed 002): first this many epochs of the
            region CNNs alone, each on its "not me" targets at every window's peak frame, then
            ``epochs`` of the LSTMs and the dense head with the CNNs frozen; 0: one stage, the
            whole model with the region loss added.
        threads: torch threads of a fold (1: these small models train fastest on one thread a
            fold, and more threads than free cores makes torch's OpenMP spin: 80x slower measured
            on the shared 2-core machine; parallelise with ``--jobs`` instead).
    """

    epochs: int = 20
    lr: float = 1e-3
    batch: int = 32
    optimizer: Literal["sgd", "adam"] = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    loss: str = "crossentropy"
    gamma: float = 2.0
    flip: bool = True
    balance: Literal["none", "nine-crop"] = "none"
    per_class: int = 500
    val_fraction: float = 0.0
    cnn_epochs: int = 0
    threads: int = 1
    init: str | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch < 1 or self.lr <= 0:
            raise ValueError(f"epochs and batch must be >= 1 and lr > 0, got {self.epochs}, {self.batch}, {self.lr}")
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")
        if self.cnn_epochs < 0:
            raise ValueError(f"cnn_epochs must be >= 0, got {self.cnn_epochs}")
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")


@dataclass
class FoldData:
    """The arrays one fold needs (a picklable slice of :class:`Prepared`).

    ``inputs`` name -> rows; ``labels`` per row; ``train``/``val``/``test`` row indices into them.
    """

    inputs: dict[str, np.ndarray]
    labels: np.ndarray
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


@dataclass
class FoldResult:
    """What a fold returns: test probabilities ``(n_test, K)`` and the training history."""

    name: str
    probs: np.ndarray
    epoch_seconds: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_uf1: list[float] = field(default_factory=list)
    best_epoch: int = 0
    state_dict: dict[str, torch.Tensor] | None = None
    model_config: dict[str, Any] = field(default_factory=dict)
    """The config the fold's model was built with (with STRCN-A's data-set mask once chosen)."""


def fold_data(prepared: Prepared, fold: Fold) -> FoldData:
    """Slice ``prepared`` to the rows of ``fold``: all variants for training, test variants otherwise."""
    parts = (prepared.rows_of(fold.train, True), prepared.rows_of(fold.val, False), prepared.rows_of(fold.test, False))
    rows = np.concatenate(parts)
    labels = np.array([s.label for s in prepared.samples])[prepared.owner[rows]]
    starts = np.cumsum([0, *map(len, parts)])
    idx = [np.arange(starts[i], starts[i + 1]) for i in range(3)]
    return FoldData({k: v[rows] for k, v in prepared.inputs.items()}, labels, *idx)


def resolve_mask(data: FoldData, model_name: str, model_config: dict[str, Any]) -> tuple[FoldData, dict[str, Any]]:
    """STRCN-A with ``mask: dataset``: the paper's data-set mask chosen from this fold's training rows
    (never its validation or test rows: :func:`realtime_mer.inputs.strcn_a_dataset_mask`), every row
    cut to it and differenced (:func:`realtime_mer.inputs.strcn_a_select`); the returned config holds
    the packed mask, as the checkpoint stores it for the live path. Any other model: unchanged."""
    cfg = get_spec(model_name).config(model_config)
    if cfg.get("mask") != "dataset":
        return data, model_config
    ((name, rows),) = data.inputs.items()
    mask = strcn_a_dataset_mask(rows, int(cfg["pixels"]), data.train)
    x = strcn_a_select(rows, mask, float(cfg.get("difference", 0.0)))
    return replace(data, inputs={name: x}), {**model_config, "mask": pack_mask(mask)}


# ---------------------------------------------------------------- the model as the trainer sees it


def input_names(model_name: str, model_config: dict[str, Any]) -> list[str]:
    return [t.name for t in get_spec(model_name).inputs(model_config)]


def forward(
    model: nn.Module, names: Sequence[str], batch: dict[str, torch.Tensor], state_shapes: dict[str, tuple[int, ...]]
) -> tuple[torch.Tensor, ...]:
    """The model's outputs (a tuple) for a batch; state inputs (``h0``, ``c0``) start at zeros. A
    padded window with its ``length`` (the region CNN-LSTM's) is read after its last real step."""
    if "length" in batch and hasattr(model, "window_logits"):
        regions = [batch[k] for k in names if k not in state_shapes]
        return (model.window_logits(*regions, lengths=batch["length"][:, 0]),)
    first = next(iter(batch.values()))
    args = [batch[k] if k in batch else torch.zeros((first.shape[0], *state_shapes[k]), device=first.device)
            for k in names]  # fmt: skip
    out = model(*args)
    return out if isinstance(out, tuple) else (out,)


def _state_shapes(model_name: str, model_config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    return {t.name: tuple(t.shape) for t in get_spec(model_name).inputs(model_config) if t.name in STATE_INPUTS}


def predict(
    model: nn.Module, model_name: str, model_config: dict[str, Any], inputs: dict[str, np.ndarray], batch: int = 128
) -> np.ndarray:
    """Class probabilities ``(N, K)`` float32 of ``inputs`` (name -> ``(N, ...)``) with ``model`` in eval mode
    (on the model's device)."""
    device = next(model.parameters()).device
    names = input_names(model_name, model_config)
    states = _state_shapes(model_name, model_config)
    n = len(next(iter(inputs.values())))
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, n, batch):
            b = {k: torch.from_numpy(np.ascontiguousarray(v[i : i + batch])).to(device) for k, v in inputs.items()}
            out.append(torch.softmax(forward(model, names, b, states)[0], dim=1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


# ---------------------------------------------------------------- one fold


def _augment(x: dict[str, np.ndarray], kind: str, cfg: TrainConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random mirror flips (and nine-crop jitter) of one batch; returns new arrays where changed."""
    if cfg.balance == "nine-crop":
        x = {k: np.stack([nine_crop_sequence(s, rng) for s in v]) if v.ndim == 5 else v for k, v in x.items()}
    if cfg.flip and kind in FLIP_SCALE:
        n = len(next(iter(x.values())))
        flip = rng.random(n) < 0.5
        if flip.any():
            x = {k: v.copy() for k, v in x.items()}
            for v in x.values():
                for i in np.flatnonzero(flip):
                    v[i] = flip_input(v[i], FLIP_SCALE[kind])
    return x


def train_fold(
    name: str,
    data: FoldData,
    model_name: str,
    model_config: dict[str, Any],
    classes: Sequence[str],
    input_kind: str,
    cfg: TrainConfig,
    seed: int,
    keep_state: bool = False,
    log: Callable[[str], None] | None = None,
    device: str = "cpu",
) -> FoldResult:
    """Train a fresh ``model_name`` on ``data.train`` and predict ``data.test``.

    Args:
        name: fold name (for the log).
        data: the fold's rows.
        model_name, model_config: registry name and config overrides.
        classes: class names (``len`` = K).
        input_kind: :data:`realtime_mer.train.preprocess.InputKind` of the rows (decides the flip).
        cfg: optimisation settings.
        seed: seeds torch and NumPy for this fold.
        keep_state: return the trained weights in the result (on the CPU).
        log: called with one line per epoch.
        device: torch device of the model and the batches (``cuda`` in a Ray task given a GPU).
    """
    if cfg.balance == "nine-crop" and input_kind != "dtscnn":
        raise ValueError(f"balance: nine-crop is DTSCNN's resampling of flow sequences, not for {input_kind} inputs")
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    data, model_config = resolve_mask(data, model_name, model_config)
    model = build_model(model_name, model_config)
    if cfg.init == "shipped":
        raise ValueError("train.init 'shipped' names no file: resolve it first (experiment.resolve_init)")
    if cfg.init and cfg.init != "none":
        from realtime_mer.models.checkpoint import load_checkpoint

        model.load_state_dict(load_checkpoint(cfg.init, expected_model=model_name)[0].state_dict())
    model = model.to(device)
    names = input_names(model_name, model_config)
    states = _state_shapes(model_name, model_config)
    k = len(classes)
    y_train = data.labels[data.train]
    criterion = make_loss(cfg.loss, np.bincount(y_train, minlength=k).tolist(), cfg.gamma).to(device)
    region_loss = None
    if hasattr(model, "region_logits") and set(classes) == {"negative", "positive", "surprise"}:
        region_loss = RegionFocalLoss(responsible_indices(list(classes)), k, cfg.gamma).to(device)
    result = FoldResult(name, np.zeros((0, k), np.float32), model_config=model_config)
    frozen: nn.Module | None = None
    if cfg.cnn_epochs:
        if region_loss is None or not hasattr(model, "peak_region_logits"):
            raise ValueError(
                f"cnn_epochs (two-stage training) is for the region CNN-LSTM with the MEGC classes, not "
                f"{model_name} with {list(classes)}: set cnn_epochs: 0"
            )
        _train_region_cnns(name, model, data, names, region_loss, input_kind, cfg, rng, device, result, log)
        frozen = model.cnns
        frozen.requires_grad_(False)
        region_loss = None
    opt = _optimizer(model.sequence_parameters() if frozen is not None else model.parameters(), cfg)
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    for epoch in range(cfg.epochs):
        t0 = time.perf_counter()
        model.train()
        if frozen is not None:
            frozen.eval()  # no dropout in the frozen CNNs
        order = (
            balanced_indices(y_train, cfg.per_class, rng)
            if cfg.balance == "nine-crop"
            else rng.permutation(len(y_train))
        )
        losses = []
        for i in range(0, len(order), cfg.batch):
            rows = data.train[order[i : i + cfg.batch]]
            if len(rows) < 2:  # batch norm cannot train on one sample
                continue
            x = _augment({kk: v[rows] for kk, v in data.inputs.items()}, input_kind, cfg, rng)
            batch = {kk: torch.from_numpy(np.ascontiguousarray(v)).to(device) for kk, v in x.items()}
            target = torch.from_numpy(data.labels[rows]).to(device)
            outputs = forward(model, names, batch, states)
            loss = sum(criterion(o, target) for o in outputs if o.ndim == 2 and o.shape[1] == k)
            if region_loss is not None:
                loss = loss + region_loss(model.region_logits(*[batch[n] for n in names if n in batch]), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        result.epoch_seconds.append(time.perf_counter() - t0)
        result.train_loss.append(float(np.mean(losses)) if losses else float("nan"))
        line = (
            f"{name}: epoch {epoch + 1}/{cfg.epochs} loss {result.train_loss[-1]:.4f} "
            f"({result.epoch_seconds[-1]:.2f} s)"
        )
        if len(data.val):
            probs = predict(model, model_name, model_config, {kk: v[data.val] for kk, v in data.inputs.items()})
            score = uf1(data.labels[data.val], probs.argmax(1))
            result.val_uf1.append(score)
            line += f" val UF1 {score:.4f}"
            if best is None or score > best[0]:
                best = (score, epoch, copy.deepcopy(model.state_dict()))
        if log:
            log(line)
    result.best_epoch = cfg.epochs - 1
    if best is not None:
        result.best_epoch = best[1]
        model.load_state_dict(best[2])
    if len(data.test):
        result.probs = predict(model, model_name, model_config, {kk: v[data.test] for kk, v in data.inputs.items()})
    if keep_state:
        result.state_dict = {kk: v.detach().cpu().clone() for kk, v in model.state_dict().items()}
    return result


def _optimizer(params: Any, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, cfg.lr, cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, cfg.lr, weight_decay=cfg.weight_decay)


def _train_region_cnns(
    name: str,
    model: nn.Module,
    data: FoldData,
    names: Sequence[str],
    region_loss: RegionFocalLoss,
    input_kind: str,
    cfg: TrainConfig,
    rng: np.random.Generator,
    device: str,
    result: FoldResult,
    log: Callable[[str], None] | None,
) -> None:
    """Stage one of seed 002: ``cfg.cnn_epochs`` epochs of the region CNNs and their "not me" heads
    alone, on every training window's peak frame (:meth:`RegionLSTM.peak_region_logits`)."""
    cnns = model.cnns
    assert isinstance(cnns, nn.Module)
    opt = _optimizer(cnns.parameters(), cfg)
    for epoch in range(cfg.cnn_epochs):
        t0 = time.perf_counter()
        model.train()
        order = rng.permutation(len(data.train))
        losses = []
        for i in range(0, len(order), cfg.batch):
            rows = data.train[order[i : i + cfg.batch]]
            x = _augment({kk: v[rows] for kk, v in data.inputs.items()}, input_kind, cfg, rng)
            batch = [torch.from_numpy(np.ascontiguousarray(x[n])).to(device) for n in names if n in x]
            loss = region_loss(model.peak_region_logits(*batch), torch.from_numpy(data.labels[rows]).to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        result.epoch_seconds.append(time.perf_counter() - t0)
        result.train_loss.append(float(np.mean(losses)))
        if log:
            log(f"{name}: region CNNs epoch {epoch + 1}/{cfg.cnn_epochs} loss {result.train_loss[-1]:.4f} "
                f"({result.epoch_seconds[-1]:.2f} s)")  # fmt: skip


# ---------------------------------------------------------------- all folds


@dataclass(frozen=True)
class FoldJob:
    """What every fold of a run shares; calling it trains fold number ``i`` (the one function of
    both backends: processes of ``--jobs`` and Ray tasks)."""

    model_name: str
    model_config: dict[str, Any]
    classes: Sequence[str]
    input_kind: str
    cfg: TrainConfig
    seed: int
    verbose: bool = False
    device: str = "cpu"

    def __call__(self, i: int, name: str, data: FoldData) -> FoldResult:
        """Train fold ``i`` (seed ``seed * 1000 + i``) on ``data`` and predict its test rows."""
        log = (lambda s: print(s, file=sys.stderr, flush=True)) if self.verbose else None
        return train_fold(name, data, self.model_name, self.model_config, self.classes, self.input_kind, self.cfg,
                          self.seed * 1000 + i, log=log, device=self.device)  # fmt: skip


def fold_bar(folds: int) -> tqdm:
    """The progress bar of the folds (stderr)."""
    return tqdm(total=folds, desc="folds", unit="fold", file=sys.stderr)


def default_jobs(folds: int, threads: int = 1) -> int:
    """Folds to train at once by default: one a usable CPU core (``threads`` torch threads each),
    at most one a fold.

    >>> 1 <= default_jobs(68) <= 68
    True
    >>> default_jobs(1)
    1
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores // max(threads, 1), folds))


def run_folds(
    prepared: Prepared,
    folds: Sequence[Fold],
    model_name: str,
    model_config: dict[str, Any],
    classes: Sequence[str],
    input_kind: str,
    cfg: TrainConfig,
    seed: int,
    jobs: int = 1,
    verbose: bool = False,
    backend: Literal["local", "ray"] = "local",
    address: str | None = None,
    gpus_per_fold: float | None = None,
) -> list[FoldResult]:
    """Train and test every fold; results in fold order.

    ``backend="local"``: ``jobs`` folds at a time in separate processes (1: in this one);
    ``"ray"``: one Ray task a fold on the cluster at ``address``
    (:func:`realtime_mer.train.cluster.run_on_ray`, which also explains ``gpus_per_fold``).
    """
    job = FoldJob(model_name, model_config, tuple(classes), input_kind, cfg, seed, verbose)
    if backend == "ray":
        from realtime_mer.train.cluster import run_on_ray

        return run_on_ray(job, prepared, folds, address, gpus_per_fold)
    with fold_bar(len(folds)) as bar:
        if jobs <= 1:
            out = []
            for i, f in enumerate(folds):
                out.append(job(i, f.name, fold_data(prepared, f)))
                bar.update()
            return out
        results: dict[int, FoldResult] = {}
        # A fold's data is sliced and pickled only when a process is about to be free: queueing
        # every fold at once would hold a copy of the data set per fold in memory.
        todo = iter(enumerate(folds))
        with cf.ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
            running: dict[cf.Future[FoldResult], int] = {}
            while True:
                while len(running) < jobs and (nxt := next(todo, None)) is not None:
                    i, f = nxt
                    running[pool.submit(job, i, f.name, fold_data(prepared, f))] = i
                if not running:
                    break
                done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    results[running.pop(fut)] = fut.result()
                    bar.update()
        return [results[i] for i in range(len(folds))]
