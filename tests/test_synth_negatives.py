"""The generator's hard negatives for spotting: talking bouts and head nods and turns."""

from __future__ import annotations

import json

import numpy as np
import pytest

from realtime_mer.config import from_mapping, load_yaml
from realtime_mer.configs import __file__ as configs_init
from realtime_mer.synth import (
    EventConfig,
    IdentityConfig,
    NuisanceConfig,
    PlantedEvent,
    SynthConfig,
    default_bases,
    load_ground_truth,
    make_subjects,
    write_dataset,
)
from realtime_mer.synth.config import KINDS
from realtime_mer.synth.render import build_scene
from realtime_mer.synth.timeline import draft

FPS = 30.0


@pytest.fixture(scope="module")
def subject():
    return make_subjects(default_bases()[:1], 1, (384, 288), 5, IdentityConfig())[0]


def test_a_talking_bout_is_a_train_of_syllables(subject):
    cfg = EventConfig()
    talk = draft("talk", subject.points68[0], FPS, cfg, np.random.default_rng(2)).place(60, 0, subject.id, FPS)
    assert talk.kind == "talk" and talk.label is None and talk.aus == "25+26"
    assert cfg.talk_duration_s[0] * FPS - 1 <= talk.offset - talk.onset <= cfg.talk_duration_s[1] * FPS
    starts = [a for a, _, _, _ in talk.pulses]
    assert len(talk.pulses) >= 3 and starts == sorted(starts) and talk.pulses[0][0] == talk.onset
    for a, b, c, g in talk.pulses:
        assert a < b < c and 0.3 - 1e-6 <= g <= 1.0
        assert cfg.talk_syllable_s[0] * FPS - 1 <= c - a <= cfg.talk_syllable_s[1] * FPS + 1
        assert talk.weight(b) == pytest.approx(g) and talk.weight(a) == 0.0
    assert max(g for *_, g in talk.pulses) == 1.0 and talk.weight(talk.apex) == pytest.approx(1.0)
    back = PlantedEvent.from_json(json.loads(json.dumps(talk.to_json())))  # the truth file keeps the syllables
    assert [p[:3] for p in back.pulses] == [p[:3] for p in talk.pulses]
    assert [p[3] for p in back.pulses] == pytest.approx([p[3] for p in talk.pulses], abs=1e-4)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_a_head_move_shifts_and_foreshortens_the_face_and_comes_back(subject, seed):
    head = draft("head", subject.points68[0], FPS, EventConfig(), np.random.default_rng(seed)).place(
        10, 0, subject.id, FPS
    )
    assert head.kind == "head" and head.aus in ("nod", "turn") and head.label is None
    still = NuisanceConfig.off()
    scene = build_scene([subject], [head], FPS, still, tuple(np.random.default_rng(s) for s in (1, 2)))
    frames = {i: scene.render(i).astype(np.float32) for i in (head.onset, head.apex, head.offset + 1)}
    moved = np.abs(frames[head.apex] - frames[head.onset]).mean()
    back = np.abs(frames[head.offset + 1] - frames[head.onset]).mean()
    assert moved > 2.0 and back < 0.01, (moved, back)


def test_kinds_are_drawn_by_their_weights_and_written_to_the_truth(tmp_path):
    cfg = SynthConfig(
        clip_seconds=(5.0, 6.0),
        events=EventConfig(events_per_clip=(2, 3), kind_weights=(1.0, 0.0, 0.0, 1.0, 1.0)),
        nuisance=NuisanceConfig.off(),
    )
    write_dataset(tmp_path, clips=4, fps=FPS, seed=3, config=cfg)
    events = [e for t in load_ground_truth(tmp_path).values() for e in t.events]
    kinds = {e.kind for e in events}
    assert kinds <= {"micro", "talk", "head"} and {"talk", "head"} & kinds
    assert all(e.pulses for e in events if e.kind == "talk")
    assert all(not e.pulses for e in events if e.kind != "talk")


def test_three_weights_still_read_and_the_hard_negative_settings_load():
    assert EventConfig(kind_weights=(0.5, 0.2, 0.3)).kind_weights == (0.5, 0.2, 0.3, 0.0, 0.0)
    with pytest.raises(ValueError, match="kind_weights"):
        EventConfig(kind_weights=(1.0, 0.0))
    from pathlib import Path

    cfg = from_mapping(SynthConfig, load_yaml(Path(configs_init).parent / "synth-hard-negatives.yaml"), "synth")
    weights = dict(zip(KINDS, cfg.events.kind_weights))
    assert weights["talk"] > 0 and weights["head"] > 0 and cfg.events.macro_duration_s[1] > 4.0


@pytest.mark.parametrize(("fps", "intra"), [(30.0, False), (100.0, True)])
def test_high_speed_clips_are_coded_frame_by_frame(tmp_path, fps, intra):
    import av

    cfg = SynthConfig(
        clip_seconds=(1.0, 1.0), subjects=1, events=EventConfig(lead_s=0.5, margin_s=0.1), nuisance=NuisanceConfig.off()
    )
    write_dataset(tmp_path, clips=1, fps=fps, seed=1, config=cfg)
    with av.open(str(tmp_path / "clips" / "clip0001.mp4")) as c:
        keys = [f.key_frame for f in c.decode(video=0)]
    assert len(keys) == round(1.5 * fps)
    assert all(keys) == intra and keys[0]
