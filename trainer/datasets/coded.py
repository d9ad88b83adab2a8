"""Databases described by a coding sheet plus one frame folder per sample: CASME II and SAMM.

``PATH`` is either the dataset root (frames under it, the sheet found in it or given as ``sheet``)
or the sheet itself (labels only: samples without frames).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import Dataset, DatasetError, Missing, find_root, resolve_frames
from .classes import label_samples
from .sheets import cell_int, cell_str, find_sheet, read_table

_FRAME_COLUMNS = {
    "onset": ("OnsetFrame", "Onset Frame", "Onset"),
    "apex": ("ApexFrame", "Apex Frame", "Apex"),
    "offset": ("OffsetFrame", "Offset Frame", "Offset"),
}


@dataclass(frozen=True)
class SheetLayout:
    """How one database names things.

    Attributes:
        database: dataset key (``casme2``, ``samm``).
        title: display name for messages.
        fps: recording frame rate.
        sheet_patterns: globs for the coding sheet in the root.
        subject: subject cell -> normalised subject id.
        is_subject_dir: true for a subject folder of the frames layout.
        layout: the expected frame layout, for messages.
        optional: extra columns kept in ``Sample.extra`` (field -> accepted names).
    """

    database: str
    title: str
    fps: float
    sheet_patterns: tuple[str, ...]
    subject: Callable[[Any], str]
    is_subject_dir: Callable[[Path], bool]
    layout: str
    optional: dict[str, tuple[str, ...]]


def casme2_subject(value: Any) -> str:
    """CASME II subject cell -> ``sub01`` (``"01"``, ``1`` and ``"sub01"`` alike)."""
    text = cell_str(value)
    return text if text.lower().startswith("sub") else f"sub{int(text):02d}" if text.isdigit() else text


def samm_subject(value: Any) -> str:
    """SAMM subject cell -> ``006`` (``6`` and ``"006"`` alike)."""
    text = cell_str(value)
    return f"{int(text):03d}" if text.isdigit() else text


CASME2 = SheetLayout(
    database="casme2",
    title="CASME II",
    fps=200.0,
    sheet_patterns=("CASME2-coding-*.xlsx", "CASME2*coding*.xlsx", "CASME2*coding*.csv"),
    subject=casme2_subject,
    is_subject_dir=lambda d: re.fullmatch(r"sub\d+", d.name) is not None,
    layout="ROOT/subXX/EPxx_xxf/img<n>.jpg, e.g. sub01/EP02_01f/img46.jpg",
    optional={"aus": ("Action Units", "AUs", "AU"), "objective": ("Objective Classes", "Objective Class")},
)
SAMM = SheetLayout(
    database="samm",
    title="SAMM",
    fps=200.0,
    sheet_patterns=("SAMM_Micro_FACS_Codes*.xlsx", "SAMM*FACS*.xlsx", "SAMM*.xlsx", "SAMM*.csv"),
    subject=samm_subject,
    is_subject_dir=lambda d: re.fullmatch(r"\d{3}", d.name) is not None,
    layout="ROOT/<subject>/<filename>/<subject>_<n>.jpg, e.g. 006/006_1_2/006_05562.jpg",
    optional={
        "aus": ("Action Units", "AUs", "AU"),
        "objective": ("Objective Classes", "Objective Class"),
        "inducement": ("Inducement Code",),
        "duration": ("Duration",),
        "micro": ("Micro",),
        "notes": ("Notes",),
    },
)


def read_coded(
    layout: SheetLayout,
    path: str | Path,
    sheet: str | Path | None = None,
    classes: str = "native",
    missing: Missing = "error",
) -> Dataset:
    """Samples of a coding sheet, with their frame folders when ``path`` is the dataset root.

    Args:
        layout: :data:`CASME2` or :data:`SAMM`.
        path: dataset root, or the coding sheet (labels only).
        sheet: the coding sheet when it is not in the root.
        classes: class scheme (:mod:`.classes`).
        missing: ``"error"`` or ``"skip"`` for samples whose frames are missing.
    """
    path = Path(path)
    if path.is_file():
        root, sheet_path = None, path
    else:
        if not path.is_dir():
            raise DatasetError(f"{layout.title}: {path} is neither the dataset folder nor its coding sheet")
        root = path
        hint = f"give it with {layout.database}:{path}?sheet=PATH"
        sheet_path = (
            Path(sheet) if sheet else find_sheet(path, layout.sheet_patterns, f"{layout.title} coding sheet", hint)
        )
    required = {
        "subject": ("Subject",),
        "filename": ("Filename", "File name"),
        **_FRAME_COLUMNS,
        "emotion": ("Estimated Emotion", "Emotion"),
    }
    table = read_table(sheet_path, required, layout.optional, f"{layout.title} coding sheet")
    items = []
    for i, row in enumerate(table.rows):
        where = table.where(i)
        subject, filename = layout.subject(table.get(row, "subject")), cell_str(table.get(row, "filename"))
        emotion = cell_str(table.get(row, "emotion"))
        if not subject or not filename or not emotion:
            raise DatasetError(f"{where}: Subject, Filename and Estimated Emotion must not be empty")
        extra = {"emotion": emotion, "row": table.numbers[i]}
        extra.update({k: cell_str(table.get(row, k)) for k in layout.optional if k != "aus" and k in table.columns})
        items.append((emotion, dict(
            dataset=layout.database, subject=subject, sample_id=filename,
            onset=cell_int(table.get(row, "onset"), "the onset frame", where),
            apex=cell_int(table.get(row, "apex"), "the apex frame", where, required=False),
            offset=cell_int(table.get(row, "offset"), "the offset frame", where),
            fps=layout.fps, aus=cell_str(table.get(row, "aus")), extra=extra,
        )))  # fmt: skip
    names, samples, excluded = label_samples(layout.database, classes, items)
    if root is not None:
        frames_root = find_root(root, layout.is_subject_dir, layout.layout)
        samples, skipped = resolve_frames(samples, lambda s: frames_root / s.subject / s.sample_id, missing)
        excluded += skipped
    return Dataset(layout.database, names, tuple(samples), str(path), tuple(excluded))


def read_casme2(
    path: str | Path, sheet: str | Path | None = None, classes: str = "native", missing: Missing = "error"
) -> Dataset:
    """CASME II: ``ROOT/subXX/EPxx_xx/img<n>.jpg`` and ``CASME2-coding-*.xlsx`` (see :func:`read_coded`)."""
    return read_coded(CASME2, path, sheet, classes, missing)


def read_samm(
    path: str | Path, sheet: str | Path | None = None, classes: str = "native", missing: Missing = "error"
) -> Dataset:
    """SAMM: ``ROOT/006/006_1_2/006_05562.jpg`` and ``SAMM_Micro_FACS_Codes_v2.xlsx`` (header found below
    the preamble; see :func:`read_coded`)."""
    return read_coded(SAMM, path, sheet, classes, missing)
