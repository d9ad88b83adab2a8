"""CAS(ME)^3 part A: ``ROOT/spNO.1/b/color/166.jpg`` frames and a label CSV/XLSX with the columns
Subject, Filename, Onset, Apex, Offset, AU, Objective class, emotion (and, in HTNet's export,
label_for_7, label_for_3 and image paths, kept in ``extra``).

A ``Filename`` is a long video (``a``, ``b``, ...) that may hold several expressions, so a sample is
one labelled interval: ``sample_id`` is ``<Filename>_<Onset>`` and ``extra["video"]`` the video
name, which groups the intervals of one video for spotting. The recordings run at 30 fps.
"""

from __future__ import annotations

import re
from pathlib import Path

from .base import Dataset, DatasetError, Missing, find_root, resolve_frames
from .classes import label_samples
from .sheets import cell_int, cell_str, find_sheet, read_table

FPS = 30.0
LAYOUT = "ROOT/spNO.<n>/<video>/color/<frame>.jpg, e.g. spNO.1/b/color/166.jpg"
REQUIRED = {
    "subject": ("Subject",),
    "filename": ("Filename",),
    "onset": ("Onset", "OnsetFrame", "Onset Frame"),
    "apex": ("Apex", "ApexFrame", "Apex Frame"),
    "offset": ("Offset", "OffsetFrame", "Offset Frame"),
    "emotion": ("emotion", "Estimated Emotion"),
}
OPTIONAL = {
    "aus": ("AU", "AUs", "Action Units"),
    "objective": ("Objective class", "Objective Classes"),
    "label_for_7": ("label_for_7",),
    "label_for_3": ("label_for_3",),
}


def read_casme3(
    path: str | Path, labels: str | Path | None = None, classes: str = "native", missing: Missing = "error"
) -> Dataset:
    """CAS(ME)^3 part A expressions.

    Args:
        path: the part A root (frames below it, the label file found in it or given as ``labels``)
            or the label file itself (labels only).
        labels: the label file when it is not in the root.
        classes: class scheme (:mod:`.classes`); ``megc3`` matches the file's ``label_for_3``.
        missing: ``"error"`` or ``"skip"`` for samples whose frames are missing.
    """
    path = Path(path)
    if path.is_file():
        root, label_path = None, path
    elif path.is_dir():
        root = path
        hint = f"give it with casme3:{path}?labels=PATH"
        patterns = ("*part*A*label*.csv", "*part*A*.xlsx", "*casme3*.csv", "*CAS(ME)*3*.xlsx")
        label_path = Path(labels) if labels else find_sheet(path, patterns, "CAS(ME)^3 label file", hint)
    else:
        raise DatasetError(f"CAS(ME)^3: {path} is neither the dataset folder nor its label file")
    table = read_table(label_path, REQUIRED, OPTIONAL, "CAS(ME)^3 label file")
    items = []
    for i, row in enumerate(table.rows):
        where = table.where(i)
        subject, video, emotion = (cell_str(table.get(row, k)) for k in ("subject", "filename", "emotion"))
        if not subject or not video or not emotion:
            raise DatasetError(f"{where}: Subject, Filename and emotion must not be empty")
        onset = cell_int(table.get(row, "onset"), "the onset frame", where)
        extra = {"emotion": emotion, "video": video, "row": table.numbers[i]}
        extra.update(
            {k: cell_str(table.get(row, k)) for k in ("objective", "label_for_7", "label_for_3") if k in table.columns}
        )
        items.append((emotion, dict(
            dataset="casme3", subject=subject, sample_id=f"{video}_{onset}", onset=onset,
            apex=cell_int(table.get(row, "apex"), "the apex frame", where, required=False),
            offset=cell_int(table.get(row, "offset"), "the offset frame", where),
            fps=FPS, aus=cell_str(table.get(row, "aus")), extra=extra,
        )))  # fmt: skip
    names, samples, excluded = label_samples("casme3", classes, items)
    if root is not None:
        frames_root = find_root(root, lambda d: re.fullmatch(r"spNO\.\d+", d.name) is not None, LAYOUT)

        def folder(s):
            d = frames_root / s.subject / s.extra["video"]
            return d / "color" if (d / "color").is_dir() else d

        samples, skipped = resolve_frames(samples, folder, missing)
        excluded += skipped
    return Dataset("casme3", names, tuple(samples), str(path), tuple(excluded))
