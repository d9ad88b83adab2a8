"""Writing a dataset as flow images in the format of the MEGC 2019 composite maps, to pool sets.

Format (the public composite's onset->apex maps, as the RCN and STSTNet code read them): one PNG a
sample whose R, G and B channels are the u, v and optical strain of the onset->apex optical flow at
``size x size`` pixels (28), each channel min-max scaled to 0-255 within the image; and
``labels.csv`` with the columns ``subject, sample, label, database`` (label 0 negative, 1 positive,
2 surprise for the MEGC classes, else the class name). Layout::

    OUT/labels.csv
    OUT/<database>/<subject>/<subject>_<sample>.png      (sample column = the file name's stem)

``mer-train --dataset flowimages:OUT`` reads it back (:mod:`realtime_mer.train.datasets.flowimages`),
alone or pooled with the real composite maps. The maps come from the trainer's preprocessing
(:mod:`realtime_mer.train.preprocess`): the live face stage's aligned crops, then
:func:`realtime_mer.flow.flow_strain_map` (flow at the crop's resolution, resized, min-max scaled).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from realtime_mer.files import atomic_path
from realtime_mer.flow import FlowMethod, normalize_map
from realtime_mer.train.datasets import MEGC3, Dataset, DatasetError
from realtime_mer.train.preprocess import PreprocessConfig, preprocess

COLUMNS = ("subject", "sample", "label", "database")
MEGC_MAP_SIZE = 28
"""Side of the MEGC 2019 composite maps, pixels."""


@dataclass(frozen=True)
class WrittenImages:
    """What :func:`write_flow_images` wrote: the number of PNGs and the samples left out (``key: reason``)."""

    images: int
    failed: tuple[str, ...]


def to_png(flow_map: np.ndarray) -> np.ndarray:
    """``(h, w, 3)`` float map (u, v, strain) -> ``(h, w, 3)`` uint8 RGB, each channel min-max scaled
    to 0-255 within the image (a constant channel becomes 0)."""
    if flow_map.ndim != 3 or flow_map.shape[2] != 3:
        raise ValueError(f"a flow map is (h, w, 3) u, v, strain; got {flow_map.shape}")
    scaled = normalize_map(np.array(flow_map, np.float32), "minmax")
    return np.rint(scaled * 255).astype(np.uint8)


def image_name(subject: str, sample: str) -> str:
    """The file stem (and ``sample`` column) of a sample: ``<subject>_<sample>`` as in the composite
    (``sub11_EP15_04f``, ``006_006_1_2``; a sample already named so keeps its name), unsafe characters
    replaced by ``_``."""
    name = sample if sample.startswith(f"{subject}_") else f"{subject}_{sample}"
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def write_flow_images(
    data: Dataset,
    out: str | Path,
    size: int = MEGC_MAP_SIZE,
    flow_method: FlowMethod = "dis",
    face_size: tuple[int, int] = (128, 128),
    cache_dir: str | Path | None = None,
    workers: int = 1,
    suffix: str = "",
) -> WrittenImages:
    """Write every sample of ``data`` as a ``size x size`` flow PNG under ``out`` plus ``out/labels.csv``.

    Args:
        data: any dataset with frames (``synth``, ``casme2``, ...) or flow images.
        out: output folder (created; PNGs of the same names are overwritten).
        size: map side, pixels (the composite's 28).
        flow_method: optical flow of the maps.
        face_size: the aligned crop the flow is computed on, ``(width, height)`` pixels (the live 128).
        cache_dir, workers: as :func:`realtime_mer.train.preprocess.preprocess`.
        suffix: appended to every sample name (file stem and ``sample`` column), e.g. ``_tvl1``, so
            that sets of the same clips made another way pool in one mer-train run.

    Samples without a face on the onset frame are left out and listed in the result.
    """
    if size < 2:
        raise DatasetError(f"flow-image size must be >= 2 px, got {size}")
    if any(not (ch.isalnum() or ch in "-_.") for ch in suffix):
        raise DatasetError(f"suffix {suffix!r} may hold only letters, digits, '-', '_' and '.': it ends file names")
    pre = PreprocessConfig(input="rcn", shapes={"flow": (3, size, size)}, face_size=face_size, flow_method=flow_method)
    prepared = preprocess(data, pre, cache_dir, workers)
    names = [image_name(s.subject, s.sample_id) + suffix for s in prepared.samples]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DatasetError(f"several samples would be written as {', '.join(twice[:3])}: make sample ids unique")
    maps = prepared.inputs["flow"][prepared.test_rows]  # (N, 3, size, size) float32 in [0, 1]
    root = Path(out)
    rows = []
    for s, name, m in zip(prepared.samples, names, maps):
        path = root / s.dataset / s.subject / f"{name}.png"
        with atomic_path(path) as tmp:
            if not cv2.imwrite(str(tmp), cv2.cvtColor(to_png(m.transpose(1, 2, 0)), cv2.COLOR_RGB2BGR)):
                raise DatasetError(f"cannot write {path}")
        label = str(s.label) if data.classes == MEGC3 else s.label_name
        rows.append({"subject": s.subject, "sample": name, "label": label, "database": s.dataset})
    with open(root / "labels.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, COLUMNS)
        w.writeheader()
        w.writerows(rows)
    return WrittenImages(len(rows), tuple(prepared.failed))
