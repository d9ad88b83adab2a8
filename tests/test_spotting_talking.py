"""Spotting on a talking face, through the live signal path (real MediaPipe faces, alignment,
spotting): synthetic talking bouts with nothing planted give (almost) no micro-expression, and a
micro-expression of the brows planted during the same talking is still found.

The talking is the generator's ``talk`` distractor: the mouth opens and closes once a syllable (lips
part and jaw drop), each syllable as short as a micro-expression.
"""

from __future__ import annotations

import time

import numpy as np

from realtime_mer.pipeline import StreamProcessor, load_pipeline_config
from realtime_mer.spotting import interval_iou
from realtime_mer.synth import EventConfig, IdentityConfig, NuisanceConfig, PlantedEvent, default_bases, make_subjects
from realtime_mer.synth.render import build_scene
from realtime_mer.synth.timeline import draft
from realtime_mer.types import Frame

FPS = 30.0
SECONDS = 7.0
TALK_ONSET_S = 1.5


def _talking_clip(seed: int, micro: bool) -> tuple[list[np.ndarray], PlantedEvent, PlantedEvent | None]:
    """Frames of one face talking from 1.5 s for 3-4 s; with ``micro``, a brow raise (AU 1+2,
    surprise, 2.5 px at a 200 px face, 0.3 s) planted 1.2 s into the talking."""
    subject = make_subjects(default_bases()[:1], 1, (384, 288), seed, IdentityConfig())[0]
    points = subject.points68[0]
    rng = np.random.default_rng(seed)
    talk = draft("talk", points, FPS, EventConfig(talk_duration_s=(3.0, 4.0)), rng).place(
        round(TALK_ONSET_S * FPS), 0, subject.id, FPS
    )
    events = [talk]
    planted = None
    if micro:
        width = float(np.hypot(*(points[16] - points[0])))
        onset = talk.onset + round(1.2 * FPS)
        planted = PlantedEvent(0, subject.id, "micro", "surprise", "1+2", onset, onset + 4, onset + 9, FPS,
                               2.5 * width / 200.0, 2.5)  # fmt: skip
        events.append(planted)
    motion, light = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    scene = build_scene([subject], events, FPS, NuisanceConfig(), (motion, light))
    return [scene.render(i).copy() for i in range(round(SECONDS * FPS))], talk, planted


def _spot(frames: list[np.ndarray]) -> list:
    proc = StreamProcessor("talking", load_pipeline_config(None), lambda: FPS)
    out = []
    for i, image in enumerate(frames):
        out += proc.process(Frame("talking", i, i / FPS, time.monotonic(), image))
    out += proc.close()
    return [s.interval for s in out]


# Four talking bouts (the generator's ``talk`` with 11-14 syllables each, 5-14 px jaw drop at a 200 px
# face). Measured: no micro-expression from the talking in bouts 3, 5 and 8; one in bout 11 (the
# first syllable, a weak one: 3.4 px, as large as a micro-expression, which a spotter that looks only
# at the past cannot tell apart: the next syllable starts a frame after the interval's offset frame,
# when the event has gone out); the brow raise planted during the talking found in all four. Bout 5
# gave one more (a late syllable) until movements too short to report became models of repeats.
SEEDS = (3, 5, 8, 11)


def test_talking_gives_few_micro_expressions_and_a_micro_during_it_is_found():
    alarms, found = 0, 0
    for seed in SEEDS:
        frames, talk, _ = _talking_clip(seed, micro=False)
        assert len(talk.pulses) >= 8  # several syllables, each of micro-expression length
        assert all((c - a) / FPS <= 0.5 for a, _, c, _ in talk.pulses)
        alarms += sum(iv.kind == "micro" for iv in _spot(frames))

        frames, talk, planted = _talking_clip(seed, micro=True)
        assert planted is not None and talk.onset < planted.onset and planted.offset < talk.offset
        truth = (planted.onset, planted.apex, planted.offset)
        found += any(iv.kind == "micro" and interval_iou(iv, truth) >= 0.5 for iv in _spot(frames))
    assert found == len(SEEDS), f"the brow raise during talking was found in {found} of {len(SEEDS)} clips"
    assert alarms <= 1, f"{alarms} micro-expressions spotted on {len(SEEDS)} talking bouts with nothing planted"
