"""Stable face ids across frames: greedy matching of face boxes by overlap, then by centre distance."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Box = tuple[float, float, float, float]


def _box(b: Sequence[float]) -> Box:
    """``(x0, y0, x1, y1)`` of a 4-sequence."""
    return float(b[0]), float(b[1]), float(b[2]), float(b[3])


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two ``(x0, y0, x1, y1)`` boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def centre_distance(a: Box, b: Box) -> float:
    """Distance between the box centres, in units of ``a``'s diagonal."""
    dx = (a[0] + a[2] - b[0] - b[2]) / 2
    dy = (a[1] + a[3] - b[1] - b[3]) / 2
    return float(np.hypot(dx, dy) / max(np.hypot(a[2] - a[0], a[3] - a[1]), 1e-6))


@dataclass
class _Track:
    id: int
    box: Box
    missed: int = 0


class Tracker:
    """Gives each face a stable id within one stream.

    Each update matches the new boxes to the live tracks greedily, best pair first: pairs that
    overlap by at least ``min_iou`` by their IoU, then pairs whose centres are within
    ``max_shift`` box diagonals by their distance. Unmatched boxes start new tracks with fresh ids;
    a track unmatched for more than ``max_missed`` updates is dropped.
    """

    def __init__(self, max_missed: int = 10, min_iou: float = 0.3, max_shift: float = 0.5):
        if max_missed < 0:
            raise ValueError(f"max_missed must be >= 0, got {max_missed}")
        self.max_missed = max_missed
        self.min_iou = min_iou
        self.max_shift = max_shift
        self._tracks: list[_Track] = []
        self._next_id = 0

    @property
    def active(self) -> dict[int, int]:
        """Live track id -> number of consecutive updates it has been missed (0: seen last update)."""
        return {t.id: t.missed for t in self._tracks}

    def update(self, boxes: Sequence[Box]) -> list[int]:
        """Track ids for ``boxes`` (``(x0, y0, x1, y1)`` pixels), in the same order."""
        pairs = []
        for ti, t in enumerate(self._tracks):
            for bi, b in enumerate(boxes):
                o = iou(t.box, b)
                if o >= self.min_iou:
                    pairs.append((0, -o, ti, bi))
                else:
                    dist = centre_distance(t.box, b)
                    if dist <= self.max_shift:
                        pairs.append((1, dist, ti, bi))
        pairs.sort()
        ids = [-1] * len(boxes)
        used: set[int] = set()
        for _, _, ti, bi in pairs:
            if ti in used or ids[bi] >= 0:
                continue
            used.add(ti)
            track = self._tracks[ti]
            track.box, track.missed = _box(boxes[bi]), 0
            ids[bi] = track.id
        for ti, t in enumerate(self._tracks):
            if ti not in used:
                t.missed += 1
        self._tracks = [t for t in self._tracks if t.missed <= self.max_missed]
        for bi, b in enumerate(boxes):
            if ids[bi] < 0:
                self._tracks.append(_Track(self._next_id, _box(b)))
                ids[bi] = self._next_id
                self._next_id += 1
        return ids
