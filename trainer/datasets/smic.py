"""SMIC: labels come from the folder names, ``ROOT/HS/s1/micro/negative/s1_ne_01/*.bmp``.

SMIC has no onset/apex/offset labels: each sample folder holds the clip, so onset and offset are its
first and last frame numbers and the apex is left ``None`` (:meth:`Sample.apex_or_middle` gives the
middle frame; an apex spotter can do better). Subjects and samples are renamed the MEGC 2019 way,
``s1`` -> ``s01`` and ``s1_ne_01`` -> ``s01_ne_01`` (the folder name is kept in ``extra["folder"]``).
Only ``micro`` folders are read (``non_micro`` clips carry no emotion).
"""

from __future__ import annotations

import re
from pathlib import Path

from .base import Dataset, DatasetError, Missing, find_root, resolve_frames
from .classes import label_samples

FPS = {"HS": 100.0, "VIS": 25.0, "NIR": 25.0}
LAYOUT = "ROOT/HS/s1/micro/<negative|positive|surprise>/s1_ne_01/<frames>.bmp"
_SUBJECT = re.compile(r"s(\d+)", re.IGNORECASE)


def smic_name(name: str) -> str:
    """``s1`` -> ``s01``, ``s1_ne_01`` -> ``s01_ne_01`` (other names unchanged)."""
    m = re.match(r"s(\d+)(?=_|$)", name, re.IGNORECASE)
    return f"s{int(m.group(1)):02d}{name[m.end() :]}" if m else name


def read_smic(path: str | Path, modality: str = "HS", classes: str = "native", missing: Missing = "error") -> Dataset:
    """SMIC samples of one camera.

    Args:
        path: the SMIC root (holding ``HS``/``VIS``/``NIR``) or one modality's folder.
        modality: ``HS`` (100 fps), ``VIS`` or ``NIR`` (25 fps).
        classes: class scheme (:mod:`.classes`).
        missing: ``"error"`` or ``"skip"`` for sample folders without frames.
    """
    modality = modality.upper()
    if modality not in FPS:
        raise DatasetError(f"SMIC modality must be one of {', '.join(FPS)}, got {modality!r}")
    path = Path(path)
    base = path / modality if (path / modality).is_dir() else path
    root = find_root(base, lambda d: _SUBJECT.fullmatch(d.name) is not None, LAYOUT)
    items, folders = [], {}
    for subj in sorted((d for d in root.iterdir() if d.is_dir() and _SUBJECT.fullmatch(d.name)), key=_number):
        micro = subj / "micro"
        if not micro.is_dir():
            continue
        for emo in sorted(d for d in micro.iterdir() if d.is_dir()):
            for folder in sorted(d for d in emo.iterdir() if d.is_dir()):
                fields = dict(
                    dataset="smic", subject=smic_name(subj.name), sample_id=smic_name(folder.name),
                    fps=FPS[modality], extra={"emotion": emo.name, "folder": folder.name, "modality": modality},
                )  # fmt: skip
                folders[(fields["subject"], fields["sample_id"])] = folder
                items.append((emo.name.lower(), fields))
    if not items:
        raise DatasetError(f"no SMIC samples under {root} (expected {LAYOUT})")
    names, samples, excluded = label_samples("smic", classes, items)
    samples, skipped = resolve_frames(samples, lambda s: folders[(s.subject, s.sample_id)], missing)
    return Dataset("smic", names, tuple(samples), str(path), tuple(excluded + skipped))


def _number(d: Path) -> int:
    return int(_SUBJECT.fullmatch(d.name).group(1))
