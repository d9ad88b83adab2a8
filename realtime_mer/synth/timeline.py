"""Planted events: what moves, when, how much, and its time course.

Frame numbers are 0-based and inclusive. At the ``onset`` and ``offset`` frames the face is still
neutral (profile 0); the displacement rises along a raised cosine to the full apex field at ``apex``
and falls back the same way, so the duration is ``(offset - onset) / fps``. A talking bout is a
train of such bumps, one per syllable (``pulses``), its apex the strongest syllable's.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from .aus import blink_amplitude
from .config import KINDS, EventConfig
from .emotions import sample_aus


@dataclass(frozen=True)
class PlantedEvent:
    """One planted movement of one face (frames 0-based, inclusive; see the module docstring).

    Attributes:
        face: index of the face in the clip (0 = left-most canvas).
        subject: the face's subject id.
        kind: one of :data:`~.config.KINDS`: ``"micro"``, ``"macro"``, ``"blink"``, ``"talk"``
            or ``"head"`` (all but micro are distractors for micro-expression spotting).
        label: emotion class (``"class"`` in the files); ``None`` for blinks, talking and head moves.
        aus: FACS action units, e.g. ``"1+L2"``; for a head move ``"nod"`` or ``"turn"``.
        onset, apex, offset: frame numbers.
        fps: frame rate the frames count at.
        amplitude_px: largest landmark displacement at the apex, pixels of the canvas.
        amplitude_200: the same for a 200 px wide face (the configured amplitude).
        pulses: a talking bout's syllables, ``(onset, apex, offset, gain)`` each (frames, and the
            fraction of the apex field at that syllable's apex); empty for one raised cosine.
    """

    face: int
    subject: str
    kind: str
    label: str | None
    aus: str
    onset: int
    apex: int
    offset: int
    fps: float
    amplitude_px: float
    amplitude_200: float
    pulses: tuple[tuple[int, int, int, float], ...] = ()

    @property
    def t_onset(self) -> float:
        return self.onset / self.fps

    @property
    def t_apex(self) -> float:
        return self.apex / self.fps

    @property
    def t_offset(self) -> float:
        return self.offset / self.fps

    @property
    def duration_s(self) -> float:
        return (self.offset - self.onset) / self.fps

    def weight(self, frame: int) -> float:
        """Fraction of the apex displacement shown at ``frame`` (raised cosine; 0 outside the event)."""
        if self.pulses:
            return sum(g * _bump(frame, a, b, c) for a, b, c, g in self.pulses)
        return _bump(frame, self.onset, self.apex, self.offset)

    def to_json(self) -> dict:
        """JSON-ready dict; the label goes under ``"class"``, times in seconds are added."""
        d = asdict(self)
        d["class"] = d.pop("label")
        d.update(t_onset=round(self.t_onset, 6), t_apex=round(self.t_apex, 6), t_offset=round(self.t_offset, 6))
        d["amplitude_px"] = round(self.amplitude_px, 4)
        d["amplitude_200"] = round(self.amplitude_200, 4)
        d["pulses"] = [[a, b, c, round(g, 4)] for a, b, c, g in self.pulses]
        return d

    @classmethod
    def from_json(cls, d: dict) -> PlantedEvent:
        """Inverse of :meth:`to_json` (extra keys are ignored)."""
        return cls(
            int(d["face"]), str(d["subject"]), str(d["kind"]), d["class"], str(d["aus"]), int(d["onset"]),
            int(d["apex"]), int(d["offset"]), float(d["fps"]), float(d["amplitude_px"]), float(d["amplitude_200"]),
            tuple((int(a), int(b), int(c), float(g)) for a, b, c, g in d.get("pulses", ())),
        )  # fmt: skip


def _bump(frame: int, onset: int, apex: int, offset: int) -> float:
    """Raised-cosine profile: 0 at and outside ``onset`` and ``offset``, 1 at ``apex``."""
    if frame <= onset or frame >= offset:
        return 0.0
    if frame <= apex:
        return 0.5 - 0.5 * math.cos(math.pi * (frame - onset) / (apex - onset))
    return 0.5 + 0.5 * math.cos(math.pi * (frame - apex) / (offset - apex))


@dataclass(frozen=True)
class Draft:
    """An event not yet placed in time: everything but its onset frame."""

    kind: str
    label: str | None
    aus: str
    frames: int  # offset - onset
    apex_at: int  # apex - onset
    amplitude_px: float
    amplitude_200: float
    pulses: tuple[tuple[int, int, int, float], ...] = ()  # relative to the onset

    def place(self, onset: int, face: int, subject: str, fps: float) -> PlantedEvent:
        pulses = tuple((onset + a, onset + b, onset + c, g) for a, b, c, g in self.pulses)
        return PlantedEvent(
            face, subject, self.kind, self.label, self.aus, onset, onset + self.apex_at, onset + self.frames, fps,
            self.amplitude_px, self.amplitude_200, pulses,
        )  # fmt: skip


def duration_frames(seconds: tuple[float, float], fps: float, rng: np.random.Generator) -> int:
    """A duration drawn uniformly in ``seconds``, as a whole number of frames (>= 2) kept within the range."""
    lo = max(2, math.ceil(seconds[0] * fps - 1e-9))
    hi = math.floor(seconds[1] * fps + 1e-9)
    if hi < lo:
        raise ValueError(f"at {fps:g} fps no duration of at least 2 frames lies within {list(seconds)} s")
    return int(np.clip(round(rng.uniform(*seconds) * fps), lo, hi))


def draft(kind: str, points68: np.ndarray, fps: float, config: EventConfig, rng: np.random.Generator) -> Draft:
    """Draw one event of ``kind`` for the face with ``points68`` ``(68, 2)``: class, AUs, timing, amplitude."""
    if kind not in KINDS:
        raise ValueError(f"unknown event kind {kind!r}; known: {', '.join(KINDS)}")
    width = float(np.hypot(*(points68[16] - points68[0])))
    if kind == "talk":
        return _talk(width, fps, config, rng)
    durations = {"micro": config.micro_duration_s, "macro": config.macro_duration_s, "blink": config.blink_duration_s,
                 "head": config.head_duration_s}  # fmt: skip
    n = duration_frames(durations[kind], fps, rng)
    apex_at = int(np.clip(round(rng.uniform(*config.apex_fraction) * n), 1, n - 1))
    if kind == "blink":
        amp_px = blink_amplitude(points68, rng.uniform(*config.blink_closure))
        return Draft(kind, None, "45", n, apex_at, amp_px, amp_px * 200.0 / width)
    if kind == "head":
        amp = rng.uniform(*config.head_amplitude)
        return Draft(kind, None, ("nod", "turn")[int(rng.integers(2))], n, apex_at, amp * width / 200.0, amp)
    label = config.classes[int(rng.integers(len(config.classes)))]
    aus = sample_aus(label, rng, config.au_sheets)
    amp = rng.uniform(*(config.micro_amplitude if kind == "micro" else config.macro_amplitude))
    return Draft(kind, label, aus, n, apex_at, amp * width / 200.0, amp)


def _talk(width: float, fps: float, config: EventConfig, rng: np.random.Generator) -> Draft:
    """A talking bout: syllables back to back (a gap of 0-40 % of a syllable between them), each a
    raised cosine of ``talk_syllable_s`` with a strength of 0.3-1 of the bout's jaw drop."""
    n = duration_frames(config.talk_duration_s, fps, rng)
    pulses: list[tuple[int, int, int, float]] = []
    start = 0
    while True:
        length = max(2, round(rng.uniform(*config.talk_syllable_s) * fps))
        if start + length > n:
            break
        apex = start + int(np.clip(round(rng.uniform(0.35, 0.65) * length), 1, length - 1))
        pulses.append((start, apex, start + length, float(rng.uniform(0.3, 1.0))))
        start += length + int(round(rng.uniform(0.0, 0.4) * length))
    strongest = max(range(len(pulses)), key=lambda i: pulses[i][3])
    peak = pulses[strongest][3]
    pulses = [(a, b, c, g / peak) for a, b, c, g in pulses]  # the strongest opens the jaw fully
    amp = rng.uniform(*config.talk_amplitude)
    return Draft("talk", None, "25+26", pulses[-1][2], pulses[strongest][1], amp * width / 200.0, amp, tuple(pulses))


def lead_frames(config: EventConfig, fps: float) -> int:
    """Frames of neutral footage that open a clip (``config.lead_s`` at ``fps``)."""
    return math.ceil(config.lead_s * fps)


def plan_clip(
    n_frames: int,
    fps: float,
    face: int,
    subject: str,
    points68: np.ndarray,
    config: EventConfig,
    rng: np.random.Generator,
    neutral: bool,
) -> list[PlantedEvent]:
    """Non-overlapping events of one face over a clip, sorted by onset.

    A clip holds ``events_per_clip`` events: the first a micro-expression (none when ``neutral``),
    the others micro, macro or blink by ``kind_weights``. They lie between ``lead_frames`` +
    ``margin_s`` after the start and ``margin_s`` before the end; events that do not fit (with the
    gaps) are dropped, distractors and extra events first.
    """
    count = int(rng.integers(config.events_per_clip[0], config.events_per_clip[1] + 1))
    weights = np.array(config.kind_weights, float)
    if neutral:
        weights[0] = 0.0
    kinds = [] if neutral else ["micro"]
    if weights.sum() > 0:
        kinds += [KINDS[int(rng.choice(len(KINDS), p=weights / weights.sum()))] for _ in range(count - len(kinds))]
    drafts = [draft(k, points68, fps, config, rng) for k in kinds]
    margin = math.ceil(config.margin_s * fps)
    lead = lead_frames(config, fps)
    gap = math.ceil(config.min_gap_s * fps)
    room = n_frames - 1 - 2 * margin - lead
    while drafts and sum(d.frames for d in drafts) + gap * (len(drafts) - 1) > room:
        drafts.pop()
    if not neutral and not drafts:
        raise ValueError(
            f"a clip of {n_frames} frames at {fps:g} fps has no room for a micro-expression with "
            f"{config.margin_s} s margins and a {config.lead_s} s lead; make clips longer or margin_s, lead_s smaller"
        )
    order = rng.permutation(len(drafts))
    slack = room - sum(d.frames for d in drafts) - gap * (len(drafts) - 1)
    cuts = np.sort(rng.integers(0, slack + 1, len(drafts)))
    events, start, last_cut = [], lead + margin, 0
    for i, cut in zip(order, cuts):
        start += int(cut - last_cut)
        last_cut = cut
        events.append(drafts[i].place(start, face, subject, fps))
        start += drafts[i].frames + gap
    return events
