"""Class schemes: which emotion names of each database become which training classes.

* ``native``: the database's own emotion names (lower case), in the canonical order below, only
  those that occur; names not in the table are appended in sorted order.
* ``megc3``: the MEGC 2019 composite classes ``negative`` (0), ``positive`` (1), ``surprise`` (2)
  (REFERENCE 1.6; seed 002 Table 1). Negative is disgust + repression for CASME II and anger,
  contempt, disgust, fear, sadness for SAMM; positive is happiness; surprise is surprise.
  Left out: CASME II's ``others``, ``sadness`` and ``fear`` (the composite has none of them: its 88
  CASME II negatives are disgust + repression) and SAMM's ``other``; CAS(ME)^2/^3 ``others``.
* ``strcn4``: seed 001's four classes (Sec. IV-A): ``negative`` (disgust, sadness, fear, contempt,
  anger), ``positive`` (happiness), ``surprise``, ``other`` (tense, repression and the databases'
  "others").

A name outside the table of a scheme other than ``native`` is an error, not a silent drop.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from .base import DatasetError, Sample

Scheme = Literal["native", "megc3", "strcn4"]
SCHEMES: tuple[str, ...] = ("native", "megc3", "strcn4")
MEGC3: tuple[str, ...] = ("negative", "positive", "surprise")
STRCN4: tuple[str, ...] = ("negative", "positive", "surprise", "other")

NATIVE: dict[str, tuple[str, ...]] = {
    "casme2": ("happiness", "disgust", "repression", "surprise", "sadness", "fear", "others"),
    "samm": ("happiness", "surprise", "anger", "contempt", "disgust", "fear", "sadness", "other"),
    "smic": ("negative", "positive", "surprise"),
    "casme3": ("happy", "surprise", "sad", "disgust", "fear", "anger", "others"),
    "casmesq": ("negative", "positive", "surprise", "others"),
    "synth": ("negative", "positive", "surprise", "others"),
}

_NEG, _POS, _SUR, _OTH = "negative", "positive", "surprise", "other"
# database -> raw name -> class (None: left out)
TO_MEGC3: dict[str, dict[str, str | None]] = {
    "casme2": {"happiness": _POS, "disgust": _NEG, "repression": _NEG, "surprise": _SUR,
               "sadness": None, "fear": None, "others": None},
    "samm": {"happiness": _POS, "surprise": _SUR, "anger": _NEG, "contempt": _NEG, "disgust": _NEG,
             "fear": _NEG, "sadness": _NEG, "other": None},
    "smic": {"negative": _NEG, "positive": _POS, "surprise": _SUR},
    "casme3": {"happy": _POS, "surprise": _SUR, "sad": _NEG, "disgust": _NEG, "fear": _NEG, "anger": _NEG,
               "others": None},
    "casmesq": {"negative": _NEG, "positive": _POS, "surprise": _SUR, "others": None},
    "synth": {"negative": _NEG, "positive": _POS, "surprise": _SUR, "others": None},
}  # fmt: skip
TO_STRCN4: dict[str, dict[str, str | None]] = {
    "casme2": {"happiness": _POS, "disgust": _NEG, "sadness": _NEG, "fear": _NEG, "surprise": _SUR,
               "repression": _OTH, "tense": _OTH, "others": _OTH},
    "samm": {"happiness": _POS, "surprise": _SUR, "anger": _NEG, "contempt": _NEG, "disgust": _NEG,
             "fear": _NEG, "sadness": _NEG, "other": _OTH},
    "smic": {"negative": _NEG, "positive": _POS, "surprise": _SUR},
    "casme3": {"happy": _POS, "surprise": _SUR, "sad": _NEG, "disgust": _NEG, "fear": _NEG, "anger": _NEG,
               "others": _OTH},
    "casmesq": {"negative": _NEG, "positive": _POS, "surprise": _SUR, "others": _OTH},
    "synth": {"negative": _NEG, "positive": _POS, "surprise": _SUR, "others": _OTH},
}  # fmt: skip


class ClassMap:
    """Raw emotion names of one database -> class index under a scheme.

    Args:
        database: key of :data:`NATIVE` (``casme2``, ``samm``, ...).
        scheme: ``native``, ``megc3`` or ``strcn4``.
        raw_names: every raw name in the source (fixes the native classes).
    """

    def __init__(self, database: str, scheme: str, raw_names: Iterable[str]):
        if scheme not in SCHEMES:
            raise DatasetError(f"unknown class scheme {scheme!r}; use one of {', '.join(SCHEMES)}")
        raw = {n.lower() for n in raw_names}
        self.database, self.scheme = database, scheme
        if scheme == "native":
            order = NATIVE.get(database, ())
            self.classes = tuple(c for c in order if c in raw) + tuple(sorted(raw - set(order)))
            self._map: dict[str, str | None] = {c: c for c in self.classes}
            return
        table = (TO_MEGC3 if scheme == "megc3" else TO_STRCN4)[database]
        unknown = sorted(raw - set(table))
        if unknown:
            raise DatasetError(
                f"{database}: emotion(s) {', '.join(map(repr, unknown))} have no {scheme} class; "
                f"known: {', '.join(sorted(table))} (open with classes=native to keep them)"
            )
        self.classes = MEGC3 if scheme == "megc3" else STRCN4
        self._map = table

    def __call__(self, raw_name: str) -> tuple[int, str] | None:
        """``(label, class name)`` of a raw name, or ``None`` when the scheme leaves it out."""
        c = self._map.get(raw_name.lower())
        return None if c is None else (self.classes.index(c), c)


def label_samples(
    database: str, scheme: str, items: list[tuple[str, dict]]
) -> tuple[tuple[str, ...], list[Sample], list[str]]:
    """Give ``(raw emotion, Sample fields without label)`` items their class under ``scheme``.

    Returns:
        ``(classes, samples, excluded)``: excluded lists ``key: reason`` for names the scheme leaves out.
    """
    cmap = ClassMap(database, scheme, (raw for raw, _ in items))
    samples, excluded = [], []
    for raw, fields in items:
        hit = cmap(raw)
        if hit is None:
            excluded.append(
                f"{fields['dataset']}/{fields['subject']}/{fields['sample_id']}: {raw!r} has no {scheme} class"
            )
            continue
        samples.append(Sample(label=hit[0], label_name=hit[1], **fields))
    return cmap.classes, samples, excluded
