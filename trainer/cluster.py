"""LOSO/LOVO folds as Ray tasks (``mer-train --backend ray``), one task a fold.

Ray is optional (``pip install 'realtime-mer[cluster]'``) and imported only here, when asked for.
Each task takes one CPU and, where the cluster has GPUs, a share of one (``gpus_per_fold``; default
0.5, two folds a GPU) and trains on it. The prepared data go into the object store once; every task
slices its fold out of it and runs the same :class:`realtime_mer.train.train.FoldJob` as ``--jobs``,
so on CPUs the scores are those of ``--jobs``.

``address`` is anything ``ray.init`` takes (``host:port``, ``ray://host:10001``, ``auto``); without
it Ray joins the cluster of ``RAY_ADDRESS`` or of ``ray start`` on this machine, else starts a local
one for the run. Ray is shut down at the end only where this process connected it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from types import ModuleType
from typing import Any

from realtime_mer.cluster import require_ray
from realtime_mer.errors import UserError
from realtime_mer.train.preprocess import Prepared
from realtime_mer.train.protocol import Fold
from realtime_mer.train.train import FoldJob, FoldResult, fold_bar, fold_data


class FoldError(RuntimeError):
    """A fold's Ray task failed; the message names the fold and the cause."""


@contextmanager
def connect(address: str | None = None, log_to_driver: bool = False) -> Iterator[ModuleType]:
    """Ray, connected to the cluster at ``address`` (``None``: ``ray.init()``'s choice) and shut down
    on exit; an existing connection of this process is used as it is and left open."""
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    ray.init(address, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=log_to_driver)
    try:
        yield ray
    finally:
        ray.shutdown()


def _fold_task(job: FoldJob, i: int, fold: Fold, prepared: Prepared) -> FoldResult:
    """One fold's Ray task: its rows out of the shared ``prepared``, then ``job``."""
    return job(i, fold.name, fold_data(prepared, fold))


def gpu_share(resources: dict[str, Any], gpus_per_fold: float | None) -> float:
    """GPUs a fold asks for: ``gpus_per_fold``, else 0.5 where the cluster has GPUs and 0 otherwise."""
    have = float(resources.get("GPU", 0))
    if gpus_per_fold is None:
        return 0.5 if have else 0.0
    if gpus_per_fold < 0 or (gpus_per_fold > 1 and not float(gpus_per_fold).is_integer()):
        raise UserError(f"--gpus-per-fold must be a share of one GPU (0 to 1) or a whole number, got {gpus_per_fold}")
    if gpus_per_fold > have:
        raise UserError(f"--gpus-per-fold {gpus_per_fold}: the Ray cluster has {have:g} GPU(s)")
    return float(gpus_per_fold)


def run_on_ray(
    job: FoldJob,
    prepared: Prepared,
    folds: Sequence[Fold],
    address: str | None = None,
    gpus_per_fold: float | None = None,
) -> list[FoldResult]:
    """Train every fold as a Ray task (1 CPU, :func:`gpu_share` GPU); results in fold order.

    A progress bar advances as folds finish. The first failed fold cancels the others and raises
    :class:`FoldError` (chained to Ray's error, which holds the task's traceback).
    """
    with connect(address, log_to_driver=job.verbose) as ray:
        resources = ray.cluster_resources()
        gpus = gpu_share(resources, gpus_per_fold)
        print(f"Ray: {resources.get('CPU', 0):g} CPU(s), {resources.get('GPU', 0):g} GPU(s); "
              f"each fold takes 1 CPU and {gpus:g} GPU", file=sys.stderr, flush=True)  # fmt: skip
        task = ray.remote(_fold_task).options(num_cpus=1, num_gpus=gpus)
        job_ref = ray.put(replace(job, device="cuda" if gpus else "cpu"))
        data_ref = ray.put(prepared)
        refs = {task.remote(job_ref, i, f, data_ref): i for i, f in enumerate(folds)}
        results: dict[int, FoldResult] = {}
        pending = list(refs)
        try:
            with fold_bar(len(folds)) as bar:
                while pending:
                    done, pending = ray.wait(pending, num_returns=1)
                    i = refs[done[0]]
                    try:
                        results[i] = ray.get(done[0])
                    except ray.exceptions.RayError as e:
                        cause = getattr(e, "cause", None) or e
                        raise FoldError(f"fold {folds[i].name} failed: {type(cause).__name__}: {cause}") from e
                    bar.update()
        finally:
            for ref in pending:
                ray.cancel(ref)
    return [results[i] for i in range(len(folds))]
