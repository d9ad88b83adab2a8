"""Emotion classes as action-unit combinations: the tables the generator samples from.

Sources: the coding sheets of three spontaneous micro-expression databases, each giving the FACS
action units and the emotion of every sample:

* CASME II (Yan et al., "CASME II: An Improved Spontaneous Micro-Expression Database and the
  Baseline Evaluation", PLoS ONE 9(1): e86041, 2014; file CASME2-coding-20190701), 200 fps;
* SAMM (Davison et al., "SAMM: A Spontaneous Micro-Facial Movement Dataset", IEEE Trans. Affective
  Computing 9(1): 116-129, 2018; file SAMM_Micro_FACS_Codes_v2, sheet MICRO_ONLY), 200 fps;
* CAS(ME)^3 part A (Li et al., "CAS(ME)^3: A Third Generation Facial Spontaneous Micro-Expression
  Database with Depth Information and High Ecological Validity", IEEE TPAMI 45(3), 2023), 30 fps.

:data:`SHEET_AUS` holds, per sheet, every AU combination with its number of samples, grouped like
the MEGC 2019 composite classes (``realtime_mer.train.datasets.classes``' MEGC mapping of each
database: negative = anger, contempt, disgust, fear, sadness, repression...; positive = happiness;
surprise = surprise). Combinations are written by :func:`normalize_aus`: intensity letters, ``ref(..)``
annotations, alternatives after "or" and AUs not implemented in :mod:`.aus` are dropped; samples left
with none are not counted. ``tests/test_synth_tables.py`` rebuilds the tables from the sheets.

:data:`EMOTION_AUS` pools them: a combination's weight within a class is the mean, over the sheets
coding that class, of its share of the sheet's samples of that class (each database counts alike,
however many samples it has; CAS(ME)^3 alone would outweigh the other two 2:1). ``others`` is
CASME II's "repression" (AU15 and AU17, alone or together), the generator's fourth class.
"""

from __future__ import annotations

import functools
import re

import numpy as np

from .aus import ACTION_UNITS

# sheet -> class -> ((AU combination, number of samples), ...)
SHEET_AUS: dict[str, dict[str, tuple[tuple[str, int], ...]]] = {
    "casme2": {  # 150 samples, 0 without an implemented AU
        "negative": (
            ("4+7", 17), ("17", 12), ("4", 11), ("15", 6), ("15+17", 4), ("4+10", 4), ("4+R10", 4),
            ("4+7+L10", 3), ("12+15", 2), ("4+17", 2), ("4+6+7", 2), ("6+7", 2), ("9", 2), ("1+4+7", 1),
            ("12+15+17", 1), ("4+15+17", 1), ("4+5+7+9", 1), ("4+7+9", 1), ("4+7+9+10", 1), ("4+7+L9", 1),
            ("4+9", 1), ("4+9+17", 1), ("4+9+L10+14", 1), ("4+L10", 1), ("6", 1), ("L10", 1), ("L2+4+7", 1),
            ("L4", 1), ("L7+L10", 1), ("R10", 1), ("R2+15", 1), ("R4+R10", 1),
        ),
        "positive": (
            ("12", 11), ("L12", 6), ("R12", 4), ("14", 3), ("12+15", 2), ("6+12", 2), ("1+12", 1), ("12+17", 1),
            ("4+R12", 1), ("L14", 1),
        ),
        "surprise": (
            ("1+2", 7), ("L1+L2", 5), ("1", 4), ("1+L2", 2), ("R1+R2", 2), ("1+2+5+7", 1), ("1+R2+25", 1),
            ("2+5", 1), ("25", 1), ("L2+12", 1), ("L2+14", 1), ("L2+26", 1), ("R2", 1),
        ),
    },
    "samm": {  # 133 samples, 5 without an implemented AU
        "negative": (
            ("7", 31), ("4", 12), ("4+7", 7), ("L14", 4), ("17", 3), ("1", 2), ("20", 2), ("9", 2), ("R14", 2),
            ("R14+17", 2), ("R20", 2), ("10", 1), ("12+15", 1), ("14", 1), ("14+25+26", 1), ("15+17", 1),
            ("20+25+26", 1), ("4+6+7+9", 1), ("4+9", 1), ("7+20+26", 1), ("9+12", 1), ("L10", 1), ("L12", 1),
            ("L20", 1), ("L4", 1), ("L7", 1), ("R10", 1), ("R10+25+26", 1), ("R12", 1),
        ),
        "positive": (
            ("12", 13), ("L12", 5), ("7+12", 3), ("R6+R15", 2), ("L12+25", 1), ("L2+12", 1), ("R6+R12", 1),
        ),
        "surprise": (
            ("5", 9), ("1+2", 3), ("1+2+L14", 1), ("25+26", 1), ("26", 1),
        ),
    },
    "casme3": {  # 687 samples, 56 without an implemented AU
        "negative": (
            ("4", 200), ("14", 74), ("1", 22), ("4+9", 17), ("7", 11), ("9", 11), ("1+2", 9), ("L14", 9),
            ("17", 6), ("4+9+14", 6), ("R14", 6), ("15", 3), ("4+6+9", 3), ("9+14", 3), ("R20", 3), ("12", 2),
            ("4+10", 2), ("4+17", 2), ("5", 2), ("9+10", 2), ("R10", 2), ("R12", 2), ("1+2+14", 1),
            ("1+2+7", 1), ("1+4", 1), ("14+17", 1), ("25", 1), ("4+14", 1), ("4+5+10", 1), ("4+6", 1),
            ("4+7", 1), ("4+9+25", 1), ("4+9+R14", 1), ("6+7", 1), ("6+9", 1), ("L1+L2", 1), ("L12", 1),
            ("L2", 1), ("L2+4", 1), ("L7", 1), ("L9", 1), ("R1+R2", 1), ("R2", 1),
        ),
        "positive": (
            ("14", 17), ("4", 5), ("12", 4), ("R14", 3), ("15", 2), ("9", 2), ("L14", 2), ("10", 1),
            ("12+25", 1), ("17", 1), ("R10", 1),
        ),
        "surprise": (
            ("1+2", 62), ("5", 35), ("4", 15), ("R1+R2", 14), ("1", 12), ("L1+L2", 6), ("R2", 5), ("14", 4),
            ("7", 4), ("1+2+5", 3), ("25", 3), ("L2", 3), ("6", 2), ("12", 1), ("14+17", 1), ("25+26", 1),
            ("4+R12", 1), ("R2+4", 1), ("R7", 1),
        ),
    },
}  # fmt: skip
OTHERS: tuple[tuple[str, int], ...] = (
    ("17", 12), ("15", 6), ("15+17", 4), ("12+15", 2), ("4+17", 1), ("12+15+17", 1), ("4+15+17", 1),
)  # fmt: skip
"""CASME II's "repression" samples (its own "others" category, mostly AU4 alone, has no AU pattern)."""


SHEETS: tuple[str, ...] = tuple(SHEET_AUS)
"""The coding sheets, in :data:`SHEET_AUS`' order (``EventConfig.au_sheets`` picks among them)."""


@functools.cache
def emotion_aus(sheets: tuple[str, ...] = SHEETS) -> dict[str, tuple[tuple[str, float], ...]]:
    """class -> ((AU combination, sampling weight), ...) pooled over ``sheets`` (each weighing alike;
    weights sum to 1 within a class); ``others`` is CASME II's repression whatever the sheets."""
    unknown = sorted(set(sheets) - set(SHEET_AUS))
    if unknown or not sheets:
        raise ValueError(f"au_sheets must be a non-empty subset of {list(SHEET_AUS)}, got {list(sheets)}")
    out: dict[str, tuple[tuple[str, float], ...]] = {}
    for cls in ("positive", "negative", "surprise"):
        tables = [t[cls] for name, t in SHEET_AUS.items() if name in sheets and t.get(cls)]
        shares: dict[str, float] = {}
        for table in tables:
            total = sum(n for _, n in table)
            for combo, n in table:
                shares[combo] = shares.get(combo, 0.0) + n / total / len(tables)
        out[cls] = tuple(sorted(shares.items(), key=lambda x: (-x[1], x[0])))
    out["others"] = tuple((c, n / sum(k for _, k in OTHERS)) for c, n in OTHERS)
    return out


# class -> ((AU combination, sampling weight), ...), weights summing to 1 within a class
EMOTION_AUS: dict[str, tuple[tuple[str, float], ...]] = emotion_aus()
CLASSES: tuple[str, ...] = tuple(EMOTION_AUS)

_REF = re.compile(r"ref\([^)]*\)", re.IGNORECASE)
_AU = re.compile(r"([LR]?)(\d+)")


def normalize_aus(code: str) -> str | None:
    """A coding sheet's AU cell as a combination the generator can plant, or None if nothing is left.

    ``"4A+7B+ref(43)"`` -> ``"4+7"``; ``"(R6 or R12)+R15"`` -> ``"R6+R15"``; ``"2+1"`` -> ``"1+2"``.
    Intensity letters, ``ref(..)``, second alternatives and AUs without a warp in :mod:`.aus` (and the
    blink, AU45) are dropped; a side is dropped for AUs without a unilateral form; sorted by number.
    """
    out: dict[int, str] = {}
    for token in _REF.sub("", code).split("+"):
        m = _AU.search(token.split(" or ")[0])
        if not m:
            continue
        side, number = m.group(1), int(m.group(2))
        if number not in ACTION_UNITS or number == 45:
            continue
        out.setdefault(number, side if ACTION_UNITS[number].bilateral else "")
    return "+".join(f"{out[n]}{n}" for n in sorted(out)) or None


def sample_aus(cls: str, rng: np.random.Generator, sheets: tuple[str, ...] = SHEETS) -> str:
    """An AU combination of class ``cls``, drawn with the weights pooled over ``sheets``
    (:func:`emotion_aus`; all three: :data:`EMOTION_AUS`)."""
    try:
        table = emotion_aus(tuple(sheets))[cls]
    except KeyError:
        raise ValueError(f"unknown class {cls!r}; known: {', '.join(CLASSES)}") from None
    weights = np.array([w for _, w in table], float)
    return table[int(rng.choice(len(table), p=weights / weights.sum()))][0]
