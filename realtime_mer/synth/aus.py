"""FACS action units as landmark displacements on the 68-point (iBUG) face.

Each action unit is a set of moves of landmarks (and of a few "virtual" skin points placed from
them, e.g. the cheek or the chin boss), written for the subject's RIGHT half (image left) and
mirrored for the left half. A move is ``(lateral, down)`` in the face frame: ``lateral`` points
away from the face midline, ``down`` along the eye-line normal towards the chin. The largest move of
an AU has length 1; the event amplitude (pixels) scales the whole pattern.

The directions follow the appearance changes that the FACS manual describes for each AU (Ekman,
Friesen & Hager, *Facial Action Coding System*, 2002): e.g. AU1 raises the inner brow, AU4 pulls the
brows down and together, AU12 pulls the lip corners up and out obliquely, AU15 pulls them down,
AU17 pushes the chin boss and lower lip up, AU20 stretches the lips laterally, AU26 drops the jaw.
The relative weights are this module's choice (no published numbers exist for landmark motion).

Unilateral variants use FACS notation: ``L12`` is AU12 on the subject's left only (image right),
``R14`` AU14 on the subject's right. Midline points move with half weight in a unilateral AU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Move = tuple[float, float]  # (lateral, down), face-frame units, length <= 1

# Mirror of each right-half 68-point index on the left half (iBUG order).
MIRROR68 = np.array(
    [16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0,
     26, 25, 24, 23, 22, 21, 20, 19, 18, 17,
     27, 28, 29, 30, 35, 34, 33, 32, 31,
     45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40,
     54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55,
     64, 63, 62, 61, 60, 67, 66, 65],
    dtype=np.intp,
)  # fmt: skip
MIDLINE68 = (8, 27, 28, 29, 30, 33, 51, 57, 62, 66)
RIGHT68 = (0, 1, 2, 3, 4, 5, 6, 7, 17, 18, 19, 20, 21, 31, 32, 36, 37, 38, 39, 40, 41, 48, 49, 50, 58, 59, 60, 61, 67)

# Virtual skin points of the right half: weights over 68-point indices plus an offset
# (lateral, down) in units of the inter-ocular distance. Mirrored for the left half.
VIRTUAL_SIDE: dict[str, tuple[dict[int, float], Move]] = {
    "forehead_in": ({20: 1.0}, (0.0, -0.4)),  # above the inner brow
    "forehead_out": ({18: 1.0}, (0.0, -0.4)),  # above the outer brow
    "cheek": ({41: 0.4, 40: 0.1, 2: 0.15, 31: 0.15, 48: 0.2}, (0.0, 0.0)),  # malar eminence
    "nasolabial": ({31: 0.5, 48: 0.5}, (0.0, 0.0)),  # the nasolabial furrow
    "dimple": ({48: 1.0}, (0.22, 0.0)),  # lateral to the lip corner
    "below_corner": ({48: 1.0}, (0.0, 0.3)),  # below the lip corner
}
VIRTUAL_MID: dict[str, tuple[dict[int, float], Move]] = {
    "chin": ({57: 0.5, 8: 0.5}, (0.0, 0.0)),  # the chin boss
    "glabella": ({21: 0.5, 22: 0.5}, (0.0, -0.1)),  # between the brows
}


@dataclass(frozen=True)
class ActionUnit:
    """One FACS action unit: its name, moves of right-half points, moves of midline points.

    Attributes:
        number: the FACS number (e.g. 12).
        name: the FACS name.
        side: right-half point (68 index or virtual name) -> (lateral, down); mirrored for the left.
        mid: midline point -> (0, down) (lateral must be 0).
        bilateral: False for AUs with no unilateral form (jaw drop, lips part, chin raiser).
    """

    number: int
    name: str
    side: dict[int | str, Move]
    mid: dict[int | str, Move]
    bilateral: bool = True


ACTION_UNITS: dict[int, ActionUnit] = {
    au.number: au
    for au in (
        ActionUnit(1, "inner brow raiser",
                   {21: (0, -1), 20: (0, -0.8), 19: (0, -0.45), 18: (0, -0.2), "forehead_in": (0, -0.5)},
                   {"glabella": (0, -0.3)}),
        ActionUnit(2, "outer brow raiser",
                   {17: (0.1, -1), 18: (0, -1), 19: (0, -0.7), 20: (0, -0.3), "forehead_out": (0, -0.5)}, {}),
        ActionUnit(4, "brow lowerer",
                   {21: (-0.5, 0.85), 20: (-0.35, 0.9), 19: (-0.2, 0.75), 18: (0, 0.5), 17: (0, 0.3),
                    "forehead_in": (-0.3, 0.4)},
                   {"glabella": (0, 0.3)}),
        ActionUnit(5, "upper lid raiser", {37: (0, -1), 38: (0, -1), 36: (0, -0.2), 39: (0, -0.2)}, {}),
        ActionUnit(6, "cheek raiser",
                   {"cheek": (0, -1), 41: (0, -0.6), 40: (0, -0.6), 36: (0.1, -0.35), "nasolabial": (0, -0.4)}, {}),
        ActionUnit(7, "lid tightener", {41: (0, -1), 40: (0, -1), 37: (0, 0.35), 38: (0, 0.35)}, {}),
        ActionUnit(9, "nose wrinkler",
                   {31: (0, -1), 32: (0, -0.8), 21: (0, 0.4), 50: (0, -0.4), "nasolabial": (0, -0.6),
                    "cheek": (0, -0.3)},
                   {33: (0, -0.5), 27: (0, 0.3), 51: (0, -0.4)}),
        ActionUnit(10, "upper lip raiser",
                   {50: (0, -1), 49: (0, -0.9), 61: (0, -0.9), 48: (0, -0.3), 31: (0, -0.35),
                    "nasolabial": (0, -0.5)},
                   {51: (0, -0.8), 62: (0, -0.8)}),
        ActionUnit(12, "lip corner puller",
                   {48: (0.72, -0.69), 60: (0.65, -0.65), 49: (0.35, -0.45), 59: (0.35, -0.35), 50: (0.15, -0.2),
                    58: (0.1, -0.15), "cheek": (0.1, -0.35), "nasolabial": (0.2, -0.3), "dimple": (0.4, -0.4)},
                   {}),
        ActionUnit(14, "dimpler",
                   {48: (1, -0.1), 60: (0.8, 0), 49: (0.3, 0), 59: (0.3, 0), "dimple": (-0.2, 0)}, {}),
        ActionUnit(15, "lip corner depressor",
                   {48: (0.15, 1), 60: (0.1, 0.8), 59: (0.05, 0.6), 58: (0, 0.3), 49: (0, 0.3),
                    "below_corner": (0, 0.4)},
                   {}),
        ActionUnit(17, "chin raiser",
                   {58: (0, -0.6), 67: (0, -0.4), 59: (0, -0.3), 7: (0, -0.4)},
                   {"chin": (0, -1), 57: (0, -0.7), 66: (0, -0.5), 8: (0, -0.5)},
                   bilateral=False),
        ActionUnit(20, "lip stretcher",
                   {48: (1, 0.15), 60: (0.9, 0.1), 49: (0.35, 0.05), 59: (0.35, 0.1), 58: (0.15, 0.05),
                    "dimple": (0.35, 0)},
                   {}),
        ActionUnit(25, "lips part",
                   {58: (0, 0.95), 59: (0, 0.6), 67: (0, 0.9), 61: (0, -0.2)},
                   {57: (0, 1), 66: (0, 1), 62: (0, -0.25)},
                   bilateral=False),
        ActionUnit(26, "jaw drop",
                   {7: (0, 0.95), 6: (0, 0.75), 5: (0, 0.45), 4: (0, 0.15), 58: (0, 0.85), 59: (0, 0.6),
                    67: (0, 0.8), 48: (0, 0.25)},
                   {8: (0, 1), 57: (0, 0.9), 66: (0, 0.85), "chin": (0, 0.95)},
                   bilateral=False),
        # Blink: the upper lid comes down to meet the lower lid. Its amplitude is set from the
        # eye aperture (see ``blink_amplitude``), not from the micro-expression range.
        ActionUnit(45, "blink",
                   {37: (0, 1), 38: (0, 1), 36: (0, 0.1), 39: (0, 0.1), 40: (0, -0.15), 41: (0, -0.15)}, {}),
    )
}  # fmt: skip


@dataclass(frozen=True)
class AUCode:
    """One parsed action unit of an event: its number and side ("" both, "L" or "R")."""

    number: int
    side: str = ""

    def __str__(self) -> str:
        return f"{self.side}{self.number}"


def parse_aus(code: str) -> list[AUCode]:
    """``"1+L2+25"`` -> ``[AUCode(1), AUCode(2, "L"), AUCode(25)]``; unknown AUs raise ValueError."""
    out = []
    for token in code.replace(" ", "").split("+"):
        side = token[0] if token[:1] in ("L", "R") else ""
        digits = token[len(side) :]
        if not digits.isdigit() or int(digits) not in ACTION_UNITS:
            raise ValueError(f"unknown action unit {token!r} in {code!r}; known: {sorted(ACTION_UNITS)} (prefix L/R)")
        if side and not ACTION_UNITS[int(digits)].bilateral:
            raise ValueError(f"AU{digits} has no unilateral form; write {digits}, not {token}")
        out.append(AUCode(int(digits), side))
    return out


@dataclass(frozen=True)
class FaceFrame:
    """The face's own axes in pixels: eye centres, unit vectors and sizes.

    Attributes:
        eye_r, eye_l: ``(2,)`` centres of the subject's right (image left) and left eyes.
        ex: ``(2,)`` unit vector from the right eye to the left eye.
        ey: ``(2,)`` unit normal pointing down the face.
        iod: inter-ocular distance (eye centres), pixels.
        width: face width, distance of jaw points 0 and 16, pixels.
    """

    eye_r: np.ndarray
    eye_l: np.ndarray
    ex: np.ndarray
    ey: np.ndarray
    iod: float
    width: float

    @classmethod
    def of(cls, points68: np.ndarray) -> FaceFrame:
        """The frame of one face from its ``(68, 2)`` points."""
        p = np.asarray(points68, np.float64)
        eye_r, eye_l = p[36:42].mean(0), p[42:48].mean(0)
        d = eye_l - eye_r
        iod = float(np.hypot(*d))
        if iod < 4:
            raise ValueError(f"the eyes are {iod:.1f} px apart; the face is too small or the landmarks are wrong")
        ex = d / iod
        return cls(eye_r, eye_l, ex, np.array([-ex[1], ex[0]]), iod, float(np.hypot(*(p[16] - p[0]))))

    def vector(self, move: Move, sign: float) -> np.ndarray:
        """A face-frame move as a pixel vector; ``sign`` -1 for the right half, +1 for the left."""
        return sign * move[0] * self.ex + move[1] * self.ey


def control_points(points68: np.ndarray) -> tuple[np.ndarray, dict[tuple[int | str, str], int]]:
    """The 68 points plus the virtual skin points, and the row of each named point.

    Returns:
        ``(N, 2)`` float64 pixels, and ``(key, half) -> row`` with half ``"R"``, ``"L"`` or ``"M"``
        (68-point indices are keyed by their own half: midline points under ``"M"``).
    """
    p = np.asarray(points68, np.float64)
    frame = FaceFrame.of(p)
    rows: list[np.ndarray] = list(p)
    index: dict[tuple[int | str, str], int] = {}
    for i in range(68):
        index[(i, "M" if i in MIDLINE68 else "R" if i in RIGHT68 else "L")] = i
    for name, (weights, off) in VIRTUAL_SIDE.items():
        for half, sign, mirror in (("R", -1.0, False), ("L", 1.0, True)):
            base = sum(w * p[MIRROR68[k] if mirror else k] for k, w in weights.items())
            index[(name, half)] = len(rows)
            rows.append(base + frame.iod * frame.vector(off, sign))
    for name, (weights, off) in VIRTUAL_MID.items():
        index[(name, "M")] = len(rows)
        rows.append(sum(w * p[k] for k, w in weights.items()) + frame.iod * frame.vector(off, 1.0))
    return np.asarray(rows), index


def displacements(points68: np.ndarray, aus: str | list[AUCode], amplitude_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Control points and their apex displacements for a combination of action units.

    The moves of all AUs are summed point by point, then scaled so that the largest displacement
    is exactly ``amplitude_px``.

    Args:
        points68: ``(68, 2)`` landmarks of the neutral face, pixels.
        aus: e.g. ``"6+12"`` or ``"L14"``, or parsed codes.
        amplitude_px: the largest displacement of any point, pixels.

    Returns:
        ``(N, 2)`` float64 control points and ``(N, 2)`` float64 displacements (pixels); points no
        AU moves have zero displacement and keep the rest of the face still.
    """
    codes = parse_aus(aus) if isinstance(aus, str) else aus
    pts, index = control_points(points68)
    frame = FaceFrame.of(points68)
    disp = np.zeros_like(pts)
    for code in codes:
        au = ACTION_UNITS[code.number]
        halves = {"": ("R", "L"), "R": ("R",), "L": ("L",)}[code.side]
        for half in halves:
            sign = -1.0 if half == "R" else 1.0
            for key, move in au.side.items():
                k = MIRROR68[key] if half == "L" and isinstance(key, int) else key
                disp[index[(k, half)]] += frame.vector(move, sign)
        mid_weight = 0.5 if code.side else 1.0
        for key, move in au.mid.items():
            disp[index[(key, "M")]] += mid_weight * frame.vector(move, 1.0)
    peak = np.hypot(disp[:, 0], disp[:, 1]).max()
    if peak == 0:
        raise ValueError(f"action units {aus!r} move no point")
    return pts, disp * (amplitude_px / peak)


def blink_amplitude(points68: np.ndarray, closure: float) -> float:
    """Upper-lid travel (pixels) that closes the eyes by ``closure`` (1 = lids meet)."""
    p = np.asarray(points68, np.float64)
    aperture = np.mean([np.hypot(*(p[a] - p[b])) for a, b in ((37, 41), (38, 40), (43, 47), (44, 46))])
    # the upper lid moves 1, the lower lid 0.15 towards it (AU45 above): they meet after 1/1.15
    return float(closure * aperture / 1.15)
