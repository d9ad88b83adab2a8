"""Dataset readers of the trainer: one :class:`Sample` record for every database, and
:func:`open_dataset` for the ``--dataset KIND:PATH[?OPTION=VALUE&...]`` syntax of ``mer-train``.

Kinds, their PATH and options (every reader also takes ``missing=error|skip``):

* ``casme2``: the root (``sub01/EP02_01f/img46.jpg``) or the coding sheet; ``sheet``, ``classes``.
* ``samm``: the root (``006/006_1_2/006_05562.jpg``) or the coding sheet; ``sheet``, ``classes``.
* ``smic``: the root (``HS/s1/micro/negative/s1_ne_01/``); ``modality`` (HS, VIS, NIR), ``classes``.
* ``casme3``: the part A root (``spNO.1/b/color/166.jpg``) or the label file; ``labels``, ``classes``.
* ``casmesq`` (CAS(ME)^2): the root (``rawpic/s15/15_0101disgustingteeth/img1.jpg``) or the coding
  workbook; ``sheet``, ``kind`` (micro, macro, all), ``classes``.
* ``megc2019``: ``combined_3class_gt.csv`` or its folder; ``casme2``, ``samm``, ``smic`` (roots to
  take frames from), ``casme2_sheet``, ``samm_sheet``.
* ``flowimages``: a folder of flow images and ``labels.csv``; ``labels``, ``names``.
* ``synth``: a folder written by ``realtime-mer synth``; ``classes``.

``classes`` is ``native`` (the database's emotions), ``megc3`` (negative/positive/surprise, the
MEGC 2019 mapping) or ``strcn4`` (seed 001's four classes); see :mod:`realtime_mer.train.datasets.classes`.
When PATH is a sheet or label file instead of a root, samples carry labels but no frames.

Example: ``open_dataset("casme2:/data/CASME2/Cropped?sheet=/data/CASME2/CASME2-coding-20190701.xlsx&classes=megc3")``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl

from .base import Dataset, DatasetError, Sample
from .casme3 import read_casme3
from .casmesq import read_casmesq
from .classes import MEGC3, SCHEMES, STRCN4
from .coded import read_casme2, read_samm
from .flowimages import read_flowimages
from .megc2019 import read_megc2019
from .smic import read_smic
from .synth import read_synth

READERS: dict[str, Callable[..., Dataset]] = {
    "casme2": read_casme2,
    "samm": read_samm,
    "smic": read_smic,
    "casme3": read_casme3,
    "casmesq": read_casmesq,
    "megc2019": read_megc2019,
    "flowimages": read_flowimages,
    "synth": read_synth,
}


def parse_spec(spec: str) -> tuple[str, str, dict[str, str]]:
    """``"KIND:PATH?a=1&b=2"`` -> ``(kind, path, {"a": "1", "b": "2"})``."""
    kind, sep, rest = spec.partition(":")
    kind = kind.strip().lower()
    if not sep or not rest or kind not in READERS:
        raise DatasetError(f"dataset {spec!r} must be KIND:PATH with KIND one of {', '.join(READERS)}")
    path, _, query = rest.partition("?")
    options = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=False))
    if query and not options:
        raise DatasetError(f"dataset {spec!r}: options after '?' must be NAME=VALUE joined by '&'")
    return kind, path, options


def open_dataset(spec: str, **options: Any) -> Dataset:
    """Open ``KIND:PATH[?OPTION=VALUE&...]``; keyword ``options`` override those in the spec.

    Raises DatasetError (a UserError) naming the missing path, sheet, column or frame, or an
    option the kind does not take.
    """
    kind, path, query = parse_spec(spec)
    reader = READERS[kind]
    merged = {**query, **options}
    accepted = [p for p in inspect.signature(reader).parameters if p != "path"]
    unknown = sorted(set(merged) - set(accepted))
    if unknown:
        raise DatasetError(f"dataset kind {kind} takes the options {', '.join(accepted)}; not {', '.join(unknown)}")
    if "classes" in merged and merged["classes"] not in SCHEMES:
        raise DatasetError(f"classes must be one of {', '.join(SCHEMES)}, got {merged['classes']!r}")
    return replace(reader(path, **merged), source=spec)


__all__ = [
    "MEGC3",
    "READERS",
    "SCHEMES",
    "STRCN4",
    "Dataset",
    "DatasetError",
    "Sample",
    "open_dataset",
    "parse_spec",
    "read_casme2",
    "read_casme3",
    "read_casmesq",
    "read_flowimages",
    "read_megc2019",
    "read_samm",
    "read_smic",
    "read_synth",
]
