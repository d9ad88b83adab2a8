"""Emotion classes as action-unit combinations: the one table the generator samples from.

Source: the CASME II coding sheet (Yan et al., "CASME II: An Improved Spontaneous Micro-Expression
Database and the Baseline Evaluation", PLoS ONE 9(1): e86041, 2014; file CASME2-coding-20190701),
which gives the FACS action units and the estimated emotion of each of its 255 samples. The table
holds every AU combination of the sheet with its number of samples (the sampling weight), grouped
like the MEGC2019 composite classes: positive = happiness; negative = disgust, sadness and fear;
surprise = surprise; plus ``others`` = CASME II's "repression" (AU15 and AU17, alone or together).
CASME II's own "others" category (99 samples, mostly AU4 alone) is left out: it has no AU pattern of
its own. AUs not implemented in :mod:`.aus` were removed from the combinations (AU16 and AU38 once
each); intensity letters are dropped.
"""

from __future__ import annotations

import numpy as np

# class -> ((AU combination, number of CASME II samples coded with it), ...)
EMOTION_AUS: dict[str, tuple[tuple[str, int], ...]] = {
    "positive": (
        ("12", 11), ("L12", 6), ("R12", 4), ("14", 3), ("12+15", 2), ("6+12", 2), ("1+12", 1), ("L14", 1),
        ("4+R12", 1), ("12+17", 1),
    ),
    "negative": (
        ("4+7", 17), ("4", 11), ("4+R10", 4), ("4+10", 4), ("4+7+L10", 3), ("4+6+7", 2), ("6+7", 2), ("1", 2),
        ("9", 2), ("4+L10", 1), ("4+17", 1), ("4+9+L10+14", 1), ("R2+15", 1), ("L10", 1), ("R4+R10", 1),
        ("R10", 1), ("20", 1), ("L20", 1), ("4+7+9+10", 1), ("4+9", 1), ("1+4+7", 1), ("4+7+L2", 1),
        ("4+5+7+9", 1), ("4+9+17", 1), ("4+7+L9", 1), ("4+7+9", 1), ("6", 1), ("L1", 1), ("L4", 1),
        ("L7+L10", 1), ("1+4", 1),
    ),
    "surprise": (
        ("1+2", 7), ("L1+L2", 5), ("1", 4), ("1+L2", 2), ("R1+R2", 2), ("L2+12", 1), ("25", 1), ("L2+26", 1),
        ("1+2+5+7", 1), ("1+R2+25", 1), ("2+5", 1), ("L2+14", 1), ("R2", 1),
    ),
    "others": (("17", 12), ("15", 6), ("15+17", 4), ("12+15", 2), ("4+17", 1), ("12+15+17", 1), ("4+15+17", 1)),
}  # fmt: skip
CLASSES: tuple[str, ...] = tuple(EMOTION_AUS)


def sample_aus(cls: str, rng: np.random.Generator) -> str:
    """An AU combination of class ``cls``, drawn with the CASME II sample counts as weights."""
    try:
        table = EMOTION_AUS[cls]
    except KeyError:
        raise ValueError(f"unknown class {cls!r}; known: {', '.join(CLASSES)}") from None
    weights = np.array([n for _, n in table], float)
    return table[int(rng.choice(len(table), p=weights / weights.sum()))][0]
