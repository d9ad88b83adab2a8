"""Evaluation protocols: leave-one-subject-out (LOSO) and leave-one-video-out (LOVO), composite or
per database, always leak-free.

* LOSO: one fold per subject (``Sample.subject_key``, so ``casme2/sub01`` and ``samm/006`` are
  different subjects); the fold's test set is all of that subject's samples.
* LOVO: one fold per sample, or, as seed 001 does it "to save the training time" (Sec. IV-B:
  "we leave 5 % videos for testing"), ``round(1 / test_fraction)`` folds, each testing a disjoint,
  shuffled ``test_fraction`` of the samples (every sample is tested exactly once).
* composite (default): the databases are pooled; a fold trains on every other subject of every
  database (MEGC 2019). ``per_dataset``: each database is its own experiment; a fold trains only
  on the other subjects (videos) of the test sample's database.

Leak-free (REFERENCE.md section 7): the test fold is never used to pick anything. Training runs a
fixed number of epochs, or, with ``val_fraction > 0``, a validation split drawn from the fold's
TRAINING data only (whole subjects under LOSO, samples under LOVO) picks the epoch.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from realtime_mer.train.datasets import Sample

Protocol = Literal["loso", "lovo"]


@dataclass(frozen=True)
class Fold:
    """One train/test split; arrays of indices into the sample list.

    Attributes:
        name: ``dataset/subject`` (LOSO) or ``lovo-003`` (LOVO).
        train: samples the model learns from.
        val: samples held out of ``train``'s subjects to choose the epoch (empty: fixed epochs).
        test: samples it is scored on.
    """

    name: str
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def __post_init__(self) -> None:
        sets = (set(self.train.tolist()), set(self.val.tolist()), set(self.test.tolist()))
        if sets[0] & sets[2] or sets[1] & sets[2] or sets[0] & sets[1]:
            raise ValueError(f"fold {self.name}: train, validation and test samples overlap")


def _groups(samples: Sequence[Sample], per_dataset: bool) -> list[np.ndarray]:
    """Index arrays of the experiments: one for all samples, or one per database."""
    if not per_dataset:
        return [np.arange(len(samples))]
    names = list(dict.fromkeys(s.dataset for s in samples))
    return [np.array([i for i, s in enumerate(samples) if s.dataset == d]) for d in names]


def loso_folds(samples: Sequence[Sample], per_dataset: bool = False) -> list[Fold]:
    """One fold per subject, subjects in sorted order."""
    folds = []
    for group in _groups(samples, per_dataset):
        keys = np.array([samples[i].subject_key for i in group])
        for subject in sorted(set(keys.tolist())):
            test = group[keys == subject]
            train = group[keys != subject]
            folds.append(Fold(subject, train, np.zeros(0, np.int64), test))
    return folds


def lovo_folds(
    samples: Sequence[Sample], test_fraction: float | None = None, per_dataset: bool = False, seed: int = 0
) -> list[Fold]:
    """Leave-one-video-out folds; ``test_fraction`` (e.g. 0.05) tests that share of videos a fold."""
    if test_fraction is not None and not 0 < test_fraction < 1:
        raise ValueError(f"LOVO test fraction must be in (0, 1), got {test_fraction}")
    folds = []
    rng = np.random.default_rng(seed)
    for group in _groups(samples, per_dataset):
        if test_fraction is None:
            parts = [group[i : i + 1] for i in range(len(group))]
        else:
            n_folds = min(len(group), max(2, round(1 / test_fraction)))
            parts = np.array_split(rng.permutation(group), n_folds)
        prefix = f"{samples[group[0]].dataset}/" if per_dataset else ""
        for k, test in enumerate(parts):
            train = np.setdiff1d(group, test)
            folds.append(Fold(f"{prefix}lovo-{k + 1:03d}", train, np.zeros(0, np.int64), np.sort(test)))
    return folds


def with_validation(
    fold: Fold, samples: Sequence[Sample], val_fraction: float, by_subject: bool, seed: int = 0
) -> Fold:
    """``fold`` with ``val_fraction`` of its training subjects (``by_subject``) or samples moved to ``val``.

    At least one subject (sample) is held out and at least one stays for training.
    """
    if val_fraction <= 0:
        return fold
    if val_fraction >= 1:
        raise ValueError(f"validation fraction must be below 1, got {val_fraction}")
    rng = np.random.default_rng([seed, zlib.crc32(fold.name.encode())])
    units = np.array([samples[i].subject_key if by_subject else samples[i].key for i in fold.train])
    unique = sorted(set(units.tolist()))
    if len(unique) < 2:
        raise ValueError(f"fold {fold.name}: {len(unique)} training subject(s) cannot be split for validation")
    n_val = min(len(unique) - 1, max(1, round(val_fraction * len(unique))))
    held = set(rng.choice(unique, size=n_val, replace=False).tolist())
    mask = np.array([u in held for u in units])
    return Fold(fold.name, fold.train[~mask], fold.train[mask], fold.test)


def make_folds(
    samples: Sequence[Sample],
    protocol: Protocol = "loso",
    per_dataset: bool = False,
    lovo_fraction: float | None = None,
    val_fraction: float = 0.0,
    seed: int = 0,
) -> list[Fold]:
    """The folds of ``protocol``, each with its validation split (see the module docstring)."""
    if protocol == "loso":
        folds = loso_folds(samples, per_dataset)
    elif protocol == "lovo":
        folds = lovo_folds(samples, lovo_fraction, per_dataset, seed)
    else:
        raise ValueError(f"protocol must be 'loso' or 'lovo', got {protocol!r}")
    if len(folds) < 2:
        raise ValueError(f"{protocol.upper()} needs at least two subjects/videos, got {len(folds)} fold(s)")
    empty = [f.name for f in folds if not len(f.train)]
    if empty:
        raise ValueError(f"folds {', '.join(empty[:5])} have no training samples (one subject per database?)")
    return [with_validation(f, samples, val_fraction, protocol == "loso", seed) for f in folds]
