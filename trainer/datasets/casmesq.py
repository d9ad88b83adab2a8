"""CAS(ME)^2: long videos ``ROOT/rawpic/s15/15_0101disgustingteeth/img1.jpg`` and the coding
workbook ``CAS(ME)^2code_final.xlsx`` (the MEGC spotting ground truth has the same layout).

The workbook has no header. Sheet 1 holds one expression a row: participant number, expression name
(``anger1_1``: video ``anger1``, expression 1), onset, apex, offset (0 = not coded: the apex is
used), AUs, emotion (negative/positive/surprise/others), type (``micro-expression`` or
``macro-expression``), self-report. Sheet 2 ("naming rule 2") maps the participant number (column 3)
to the subject folder (column 2, ``s15``); sheet 3 ("naming rule 1") maps the video name (column 2,
``anger1``) to its 4-digit code (column 1, ``0401``), which starts the video folder's name after the
participant number. The recordings run at 30 fps.
"""

from __future__ import annotations

from pathlib import Path

from .base import Dataset, DatasetError, Missing, resolve_frames
from .classes import label_samples
from .sheets import cell_int, cell_str, find_sheet, read_sheets

FPS = 30.0
KINDS = ("micro", "macro", "all")
LAYOUT = "ROOT/rawpic/s15/15_0101disgustingteeth/img<n>.jpg"


def read_casmesq(
    path: str | Path,
    sheet: str | Path | None = None,
    kind: str = "micro",
    classes: str = "native",
    missing: Missing = "error",
) -> Dataset:
    """CAS(ME)^2 expressions of one ``kind`` (``micro``, ``macro`` or ``all``).

    Args:
        path: the root (``rawpic`` below it, the workbook found in it or given as ``sheet``), or the workbook.
        sheet: the workbook when it is not in the root.
        kind: which expressions to read; spotting wants ``all``.
        classes: class scheme (:mod:`.classes`).
        missing: ``"error"`` or ``"skip"`` for expressions whose frames are missing.
    """
    if kind not in KINDS:
        raise DatasetError(f"CAS(ME)^2 kind must be one of {', '.join(KINDS)}, got {kind!r}")
    path = Path(path)
    if path.is_file():
        root, book = None, path
    elif path.is_dir():
        root = path
        hint = f"give it with casmesq:{path}?sheet=PATH"
        patterns = ("CAS(ME)*code_final*.xlsx", "*code_final*.xlsx", "CASME_sq*.xlsx")
        book = Path(sheet) if sheet else find_sheet(path, patterns, "CAS(ME)^2 workbook", hint)
    else:
        raise DatasetError(f"CAS(ME)^2: {path} is neither the dataset folder nor its coding workbook")
    sheets = read_sheets(book)
    if len(sheets) < 3:
        raise DatasetError(
            f"CAS(ME)^2 workbook {book} needs 3 sheets (codes, naming rule 2, naming rule 1), has {len(sheets)}"
        )
    subjects = {cell_str(r[2]): cell_str(r[1]) for r in sheets[1][1] if len(r) > 2 and r[1] is not None}
    videos = {cell_str(r[1]): cell_str(r[0]).zfill(4) for r in sheets[2][1] if len(r) > 1 and r[0] is not None}
    items = []
    for i, row in enumerate(sheets[0][1]):
        if not any(c is not None and str(c).strip() for c in row):
            continue
        where = f"{book.name} sheet {sheets[0][0]} row {i + 1}"
        if len(row) < 8:
            raise DatasetError(
                f"{where}: expected 8+ columns (participant, name, onset, apex, offset, AU, emotion, type)"
            )
        number, name, emotion, etype = cell_str(row[0]), cell_str(row[1]), cell_str(row[6]), cell_str(row[7]).lower()
        if kind != "all" and not etype.startswith(kind):
            continue
        video = name.split("_")[0]
        if number not in subjects or video not in videos:
            raise DatasetError(f"{where}: participant {number!r} or video {video!r} is not in the naming-rule sheets")
        apex = cell_int(row[3], "the apex frame", where)
        offset = cell_int(row[4], "the offset frame", where)
        items.append((emotion, dict(
            dataset="casmesq", subject=subjects[number], sample_id=name,
            onset=cell_int(row[2], "the onset frame", where), apex=apex, offset=offset or apex, fps=FPS,
            aus=cell_str(row[5]),
            extra={"emotion": emotion, "type": etype, "video": videos[video], "participant": number,
                   "self_report": cell_str(row[8]) if len(row) > 8 else ""},
        )))  # fmt: skip
    names, samples, excluded = label_samples("casmesq", classes, items)
    if root is not None:
        raw = root / "rawpic" if (root / "rawpic").is_dir() else root
        samples, skipped = resolve_frames(samples, lambda s: _video_dir(raw / s.subject, s.extra["video"]), missing)
        excluded += skipped
    return Dataset("casmesq", names, tuple(samples), str(path), tuple(excluded))


def _video_dir(subject_dir: Path, code: str) -> Path:
    """``subject_dir/<n>_<code>...``; the expected path (an error later) when there is none."""
    if subject_dir.is_dir():
        for d in sorted(subject_dir.iterdir()):
            if d.is_dir() and d.name.split("_", 1)[-1].startswith(code):
                return d
    return subject_dir / f"<participant>_{code}*"
