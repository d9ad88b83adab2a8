"""The MEGC 2019 composite: 442 samples of SMIC-HS, CASME II and SAMM in three classes.

The ground truth is ``combined_3class_gt.csv``, no header, rows ``database, subject, filename, label``
with label 0 negative, 1 positive, 2 surprise (REFERENCE 1.6). Subjects are normalised like the
database readers: CASME II ``sub01``, SMIC ``s01``, SAMM ``006`` (the file writes ``6``).

Alone, the CSV gives labels only. Given the databases' roots (``casme2=``, ``samm=``, ``smic=``), each
row takes its frames, onset/apex/offset, fps and AUs from that database's reader; the label stays
the CSV's.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from .base import Dataset, DatasetError, Missing, Sample
from .classes import MEGC3
from .coded import casme2_subject, read_casme2, read_samm, samm_subject
from .sheets import read_sheets
from .smic import read_smic, smic_name

GT_NAME = "combined_3class_gt.csv"
DATABASES = ("casme2", "smic", "samm")
FPS = {"casme2": 200.0, "smic": 100.0, "samm": 200.0}


def _subject(database: str, subject: str) -> str:
    if database == "samm":
        return samm_subject(subject)
    if database == "smic":
        return smic_name(subject)
    return casme2_subject(subject)


def read_megc2019(
    path: str | Path,
    casme2: str | Path | None = None,
    samm: str | Path | None = None,
    smic: str | Path | None = None,
    casme2_sheet: str | Path | None = None,
    samm_sheet: str | Path | None = None,
    missing: Missing = "error",
) -> Dataset:
    """The composite set.

    Args:
        path: the ground-truth CSV, or a folder holding ``combined_3class_gt.csv``.
        casme2, samm, smic: roots of the databases to take frames from (any subset).
        casme2_sheet, samm_sheet: their coding sheets when not in the roots.
        missing: ``"error"`` or ``"skip"`` for rows whose sample or frames are missing.
    """
    path = Path(path)
    gt = path / GT_NAME if path.is_dir() else path
    if not gt.is_file():
        raise DatasetError(f"MEGC 2019 ground truth {gt} does not exist (a CSV: database, subject, filename, label)")
    (_, rows), *_ = read_sheets(gt)
    samples = []
    for i, row in enumerate(rows):
        cells = [str(c).strip() for c in row]
        if not any(cells):
            continue
        where = f"{gt.name} line {i + 1}"
        if len(cells) < 4:
            raise DatasetError(f"{where}: expected 4 columns database, subject, filename, label; got {row}")
        db, subject, filename, label = cells[:4]
        db = db.lower()
        if db not in DATABASES:
            raise DatasetError(f"{where}: database must be one of {', '.join(DATABASES)}, got {db!r}")
        if label not in ("0", "1", "2"):
            raise DatasetError(f"{where}: label must be 0 (negative), 1 (positive) or 2 (surprise), got {label!r}")
        samples.append(Sample(
            dataset=db, subject=_subject(db, subject), sample_id=smic_name(filename) if db == "smic" else filename,
            label=int(label), label_name=MEGC3[int(label)], fps=FPS[db], extra={"gt_subject": subject},
        ))  # fmt: skip
    if not samples:
        raise DatasetError(f"MEGC 2019 ground truth {gt} has no rows")
    readers = {
        "casme2": (casme2, lambda p: read_casme2(p, casme2_sheet, missing=missing)),
        "samm": (samm, lambda p: read_samm(p, samm_sheet, missing=missing)),
        "smic": (smic, lambda p: read_smic(p, missing=missing)),
    }
    excluded: list[str] = []
    for db, (root, reader) in readers.items():
        if root is None:
            continue
        source = reader(root)
        by_key = {s.key: s for s in source.samples}
        dropped = {line.split(":", 1)[0] for line in source.excluded}
        joined = []
        for s in samples:
            if s.dataset != db:
                joined.append(s)
            elif s.key in by_key:
                src = by_key[s.key]
                joined.append(replace(src, label=s.label, label_name=s.label_name, extra={**src.extra, **s.extra}))
            elif s.key in dropped and missing == "skip":
                excluded.append(f"{s.key}: frames missing in {root}")
            else:
                raise DatasetError(f"MEGC 2019 sample {s.key} is not in the {db} dataset at {root}")
        samples = joined
    return Dataset("megc2019", MEGC3, tuple(samples), str(path), tuple(excluded))
