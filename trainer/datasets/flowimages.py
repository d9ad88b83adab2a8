"""Pre-computed inputs: onset->apex flow images (u, v, strain as a 3-channel PNG/JPG, any size).

``DIR`` holds the images (anywhere below it) and ``labels.csv`` with a header and the columns
``subject``, ``sample``, ``label`` and optionally ``database``:

* ``sample`` is the image's file name without extension (unique under ``DIR``);
* ``label`` is a class name, or an integer index into ``names`` (a comma-separated list of class
  names); integer labels without ``names`` are the MEGC 2019 classes 0 negative, 1 positive,
  2 surprise when they are all in 0..2;
* ``database`` (``casme2``, ``smic``, ``samm``, ...) is what per-dataset metrics group by;
  without it every sample counts as ``flowimages``.

Class names without ``names`` are ordered like the MEGC classes when they are MEGC names, else sorted.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from .base import IMAGE_EXTS, Dataset, DatasetError, Missing, Sample
from .classes import MEGC3
from .sheets import cell_str, read_table

REQUIRED = {"subject": ("subject",), "sample": ("sample", "filename"), "label": ("label", "class", "emotion")}
OPTIONAL = {"database": ("database", "dataset", "db")}


def read_flowimages(
    path: str | Path, labels: str | Path | None = None, names: str | None = None, missing: Missing = "error"
) -> Dataset:
    """Flow images and their labels.

    Args:
        path: the folder of images.
        labels: the label CSV (default ``DIR/labels.csv``).
        names: comma-separated class names, in label-index order.
        missing: ``"error"`` or ``"skip"`` for rows whose image is missing.
    """
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"flow-image folder {root} does not exist")
    table = read_table(Path(labels) if labels else root / "labels.csv", REQUIRED, OPTIONAL, "flow-image label file")
    rows = []
    for i, row in enumerate(table.rows):
        subject, sample, label = (cell_str(table.get(row, k)) for k in ("subject", "sample", "label"))
        if not subject or not sample or not label:
            raise DatasetError(f"{table.where(i)}: subject, sample and label must not be empty")
        rows.append(
            (table.where(i), subject, sample, label, cell_str(table.get(row, "database")).lower() or "flowimages")
        )
    classes = _classes([r[3] for r in rows], names, table.path)
    images = _index_images(root)
    samples, excluded = [], []
    for where, subject, sample, label, db in rows:
        label_idx = int(label) if label.isdigit() else classes.index(label.lower()) if label.lower() in classes else -1
        if not 0 <= label_idx < len(classes):
            raise DatasetError(f"{where}: label {label!r} is not a class index or name of {', '.join(classes)}")
        found = images.get(sample, [])
        if len(found) > 1:
            raise DatasetError(f"{where}: several images named {sample!r}: {', '.join(map(str, found))}")
        if not found:
            reason = f"no image {sample}.png/.jpg under {root}"
            if missing == "error":
                raise DatasetError(f"{where}: {reason} (open with missing=skip to leave such rows out)")
            excluded.append(f"{db}/{subject}/{sample}: {reason}")
            continue
        samples.append(Sample(dataset=db, subject=subject, sample_id=sample, label=label_idx,
                              label_name=classes[label_idx], flow=found[0], extra={"row": where}))  # fmt: skip
    return Dataset("flowimages", classes, tuple(samples), str(root), tuple(excluded))


def _classes(labels: list[str], names: str | None, where: Path) -> tuple[str, ...]:
    if names:
        out = tuple(n.strip().lower() for n in names.split(",") if n.strip())
        if len(set(out)) != len(out):
            raise DatasetError(f"names {names!r} repeats a class")
        return out
    text = sorted({x.lower() for x in labels if not x.isdigit()})
    ints = sorted({int(x) for x in labels if x.isdigit()})
    if ints and (text or ints[-1] > 2):
        raise DatasetError(
            f"{where}: integer labels {ints} need class names: give names=NAME0,NAME1,... "
            "(without names only 0..2 are read, as the MEGC classes negative, positive, surprise)"
        )
    if ints or set(text) <= set(MEGC3):
        return MEGC3
    return tuple(text)


def _index_images(root: Path) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = defaultdict(list)
    for p in sorted(root.rglob("*")):
        if p.suffix.lower() in IMAGE_EXTS and p.is_file():
            out[p.stem].append(p)
    return out
