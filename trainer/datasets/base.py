"""The common record of every reader: :class:`Sample`, :class:`Dataset`, and the frame-folder helpers.

Frame numbers are the dataset's own: the number at the end of an image file's name
(``img46.jpg`` -> 46, ``006_05562.jpg`` -> 5562, ``reg_image046366.bmp`` -> 46366), which is what
the coding sheets count in. ``Sample.frames[i]`` is the file of frame ``Sample.frame_numbers[i]``,
sorted by number.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from realtime_mer.errors import UserError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")
Missing = Literal["error", "skip"]
_TRAILING_NUMBER = re.compile(r"(\d+)$")


class DatasetError(UserError, ValueError):
    """A dataset folder, sheet, column or frame is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Sample:
    """One labelled expression (a clip of frames, a video interval, or a pre-computed flow image).

    Attributes:
        dataset: database the sample comes from (``casme2``, ``samm``, ``smic``, ``casme3``,
            ``casmesq``, ``synth``, or a flow-image set's ``database`` column); per-dataset metrics
            group by it.
        subject: subject id as the database names it after normalisation (``sub01``, ``006``, ``s01``,
            ``spNO.1``).
        sample_id: the sample's name, unique within its subject (``EP02_01f``, ``006_1_2``, ``s01_ne_01``).
        label: index into the owning :attr:`Dataset.classes`.
        label_name: ``Dataset.classes[label]``.
        onset, apex, offset: frame numbers (see the module docstring); ``None`` where unknown
            (``apex`` is ``None`` for SMIC and for CASME II's "/" cells; see :meth:`apex_or_middle`).
        frames: image files sorted by frame number; empty when only the labels were read.
        frame_numbers: the frame number of each entry of ``frames``.
        video: the video file holding the sample (synthetic clips), or ``None``.
        flow: a pre-computed onset->apex flow image (``flowimages``), or ``None``.
        fps: frame rate of the recording, frames per second.
        aus: FACS action units as coded in the sheet (``"4+7+L10"``), ``""`` if none.
        extra: everything else the source says (raw emotion name, objective class, ...).
    """

    dataset: str
    subject: str
    sample_id: str
    label: int
    label_name: str
    onset: int | None = None
    apex: int | None = None
    offset: int | None = None
    frames: tuple[Path, ...] = ()
    frame_numbers: tuple[int, ...] = ()
    video: Path | None = None
    flow: Path | None = None
    fps: float | None = None
    aus: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """``dataset/subject/sample_id``: unique within a :class:`Dataset`."""
        return f"{self.dataset}/{self.subject}/{self.sample_id}"

    @property
    def subject_key(self) -> str:
        """``dataset/subject``: the leave-one-subject-out group (subject ids repeat across databases)."""
        return f"{self.dataset}/{self.subject}"

    def apex_or_middle(self) -> int:
        """The labelled apex, else the middle frame ``(onset + offset) // 2`` (SMIC has no apex labels)."""
        if self.apex is not None:
            return self.apex
        if self.onset is None or self.offset is None:
            raise DatasetError(f"{self.key} has no apex and no onset/offset to take the middle of")
        return (self.onset + self.offset) // 2

    def frame_path(self, number: int) -> Path:
        """The image file of frame ``number``; a DatasetError if the folder lacks it."""
        i = bisect.bisect_left(self.frame_numbers, number)
        if i == len(self.frame_numbers) or self.frame_numbers[i] != number:
            where = (
                self.frames[0].parent
                if self.frames
                else "(no frames were resolved: open the dataset root, not the sheet)"
            )
            have = f"{self.frame_numbers[0]}..{self.frame_numbers[-1]}" if self.frame_numbers else "none"
            raise DatasetError(f"{self.key}: frame {number} is not in {where} (frames {have})")
        return self.frames[i]

    @property
    def onset_path(self) -> Path:
        return self.frame_path(_known(self.onset, "onset", self))

    @property
    def apex_path(self) -> Path:
        """File of the apex frame, or of the middle frame when the apex is unknown."""
        return self.frame_path(self.apex_or_middle())

    @property
    def offset_path(self) -> Path:
        return self.frame_path(_known(self.offset, "offset", self))

    def clip(self) -> tuple[Path, ...]:
        """Files of frames ``onset..offset`` inclusive (all frames when onset/offset are unknown)."""
        if self.onset is None or self.offset is None:
            return self.frames
        lo = bisect.bisect_left(self.frame_numbers, self.onset)
        hi = bisect.bisect_right(self.frame_numbers, self.offset)
        return self.frames[lo:hi]


def _known(value: int | None, what: str, sample: Sample) -> int:
    if value is None:
        raise DatasetError(f"{sample.key} has no {what} frame")
    return value


@dataclass(frozen=True)
class Dataset:
    """Labelled samples of one or several databases and the class names their labels index.

    Attributes:
        name: the reader kind (``casme2``, ``megc2019``, ...).
        classes: class names; ``Sample.label`` indexes this tuple.
        samples: the samples, in the source's order.
        source: what was opened (the ``KIND:PATH`` spec or the path).
        excluded: one line ``key: reason`` per sample of the source left out (a class outside the
            mapping, missing frames with ``missing="skip"``).
    """

    name: str
    classes: tuple[str, ...]
    samples: tuple[Sample, ...]
    source: str = ""
    excluded: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        keys = Counter(s.key for s in self.samples)
        dup = [k for k, n in keys.items() if n > 1]
        if dup:
            raise DatasetError(f"{self.source or self.name}: duplicate samples {', '.join(dup[:5])}")
        bad = [
            s.key
            for s in self.samples
            if not (0 <= s.label < len(self.classes)) or self.classes[s.label] != s.label_name
        ]
        if bad:
            raise DatasetError(
                f"{self.source or self.name}: labels outside classes {self.classes}: {', '.join(bad[:5])}"
            )

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def subjects(self) -> tuple[str, ...]:
        """Sorted unique :attr:`Sample.subject_key` values: the LOSO folds."""
        return tuple(sorted({s.subject_key for s in self.samples}))

    @property
    def datasets(self) -> tuple[str, ...]:
        """Databases present, in order of first appearance."""
        return tuple(dict.fromkeys(s.dataset for s in self.samples))

    def labels(self) -> np.ndarray:
        """``(N,)`` int64 labels in sample order."""
        return np.fromiter((s.label for s in self.samples), np.int64, len(self.samples))

    def counts(self) -> dict[str, int]:
        """Class name -> number of samples, in :attr:`classes` order (zeros included)."""
        c = Counter(s.label_name for s in self.samples)
        return {k: c.get(k, 0) for k in self.classes}

    def subset(self, keep: Callable[[Sample], bool]) -> Dataset:
        """The samples for which ``keep`` is true, with the same classes."""
        return replace(self, samples=tuple(s for s in self.samples if keep(s)))

    def summary(self) -> str:
        counts = ", ".join(f"{k} {n}" for k, n in self.counts().items())
        dbs = ", ".join(f"{d} {sum(s.dataset == d for s in self.samples)}" for d in self.datasets)
        return f"{self.name}: {len(self)} samples, {len(self.subjects)} subjects ({dbs}); classes: {counts}"


def number_of(path: Path) -> int | None:
    """The frame number at the end of a file name's stem (``img46`` -> 46), or ``None``."""
    m = _TRAILING_NUMBER.search(path.stem)
    return int(m.group(1)) if m else None


def list_frames(folder: Path, shift: int = 0) -> tuple[tuple[int, ...], tuple[Path, ...]]:
    """Numbered images of ``folder`` sorted by number: ``(numbers, paths)``; ``shift`` is added to each number.

    Raises DatasetError when the folder does not exist or holds no numbered image.
    """
    if not folder.is_dir():
        raise DatasetError(f"frame folder {folder} does not exist")
    found = sorted(
        (n + shift, p) for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS and (n := number_of(p)) is not None
    )
    if not found:
        raise DatasetError(f"frame folder {folder} holds no numbered images ({', '.join(IMAGE_EXTS)}, e.g. img46.jpg)")
    nums = tuple(n for n, _ in found)
    if len(set(nums)) != len(nums):
        dup = sorted(n for n, c in Counter(nums).items() if c > 1)
        raise DatasetError(f"frame folder {folder} has several images numbered {dup[:5]}")
    return nums, tuple(p for _, p in found)


def with_frames(sample: Sample, folder: Path, shift: int = 0) -> Sample:
    """``sample`` with the frames of ``folder``; onset/apex/offset must be among them.

    For a sample without onset/offset (SMIC) they become the first and last frame numbers.
    """
    nums, paths = list_frames(folder, shift)
    onset = nums[0] if sample.onset is None else sample.onset
    offset = nums[-1] if sample.offset is None else sample.offset
    out = replace(sample, frames=paths, frame_numbers=nums, onset=onset, offset=offset)
    for what, n in (("onset", onset), ("apex", sample.apex), ("offset", offset)):
        if n is not None and n not in nums:
            raise DatasetError(
                f"{sample.key}: {what} frame {n} is not in {folder} (frames {nums[0]}..{nums[-1]}); "
                "check the coding sheet against the frame folder"
            )
    return out


def resolve_frames(
    samples: Iterable[Sample], folder_of: Callable[[Sample], Path], missing: Missing, shift: int = 0
) -> tuple[list[Sample], list[str]]:
    """Attach frames to every sample; with ``missing="skip"`` a sample whose folder or frames are
    missing is left out and reported as ``key: reason``, with ``"error"`` it raises."""
    if missing not in ("error", "skip"):
        raise DatasetError(f"missing must be 'error' or 'skip', got {missing!r}")
    kept, skipped = [], []
    for s in samples:
        try:
            kept.append(with_frames(s, folder_of(s), shift))
        except DatasetError as e:
            if missing == "error":
                raise DatasetError(f"{e} (open with missing=skip to leave such samples out)") from None
            skipped.append(f"{s.key}: {e}")
    return kept, skipped


def find_root(root: Path, is_subject_dir: Callable[[Path], bool], expected: str) -> Path:
    """The folder under ``root`` (itself, or a child or grandchild) that holds the subject folders.

    Args:
        root: the folder the user gave.
        is_subject_dir: true for a subject folder (``sub01``, ``006``, ``s1``).
        expected: the layout, for the error message (``ROOT/subXX/EPxx_xx/img*.jpg``).
    """
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist (expected {expected})")
    level = [root]
    for _ in range(3):
        hits = [d for d in level if any(is_subject_dir(c) for c in _subdirs(d))]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise DatasetError(f"several frame folders under {root}: {', '.join(map(str, hits))}; give one of them")
        level = [c for d in level for c in _subdirs(d)]
    raise DatasetError(f"no subject folders found under {root} (expected {expected})")


def _subdirs(d: Path) -> list[Path]:
    return sorted(c for c in d.iterdir() if c.is_dir()) if d.is_dir() else []
