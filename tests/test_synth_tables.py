"""The generator's emotion tables: AU combinations and their frequencies from the real coding sheets."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from realtime_mer.synth import EventConfig, SynthConfig, emotions
from realtime_mer.synth.aus import parse_aus
from realtime_mer.synth.emotions import EMOTION_AUS, SHEET_AUS, emotion_aus, normalize_aus, sample_aus
from realtime_mer.train.datasets import open_dataset

SHEETS = {
    "casme2": "casme2:{}/labels/CASME2-coding-20190701.xlsx",
    "samm": "samm:{}/labels/SAMM_Micro_FACS_Codes_v2.xlsx",
    "casme3": "casme3:{}/labels/casme3_partA_labels.csv",
}


def test_normalize_aus_keeps_what_the_generator_can_plant():
    assert normalize_aus("4A+7B+ref(43)") == "4+7"
    assert normalize_aus("(R6 or R12) + R15") == "R6+R15"
    assert normalize_aus("2+1") == "1+2"
    assert normalize_aus("A/L12") == "L12" and normalize_aus("10A/B") == "10"
    assert normalize_aus("L26+R17") == "17+26"  # no unilateral form
    assert normalize_aus("43") is None and normalize_aus("45") is None and normalize_aus("") is None


def test_pooled_weights_give_each_sheet_the_same_say():
    for cls in ("negative", "positive", "surprise"):
        weights = dict(EMOTION_AUS[cls])
        assert sum(weights.values()) == pytest.approx(1.0)
        expected = np.mean([dict(t[cls]).get("12", 0) / sum(n for _, n in t[cls]) for t in SHEET_AUS.values()])
        assert weights.get("12", 0.0) == pytest.approx(expected)
        for combo in weights:
            assert parse_aus(combo)
    rng = np.random.default_rng(0)
    drawn = Counter(sample_aus("surprise", rng) for _ in range(4000))
    top = dict(EMOTION_AUS["surprise"])
    assert abs(drawn["1+2"] / 4000 - top["1+2"]) < 0.03 and abs(drawn["5"] / 4000 - top["5"]) < 0.03


@pytest.mark.parametrize("sheets", [("casme2",), ("samm", "casme3")])
def test_au_sheets_choose_the_tables_drawn_from(sheets):
    """``events.au_sheets`` pools only the sheets named (each weighing alike)."""
    table = emotion_aus(sheets)
    for cls in ("negative", "positive", "surprise"):
        coded = [t[cls] for name, t in SHEET_AUS.items() if name in sheets]
        assert {c for c, _ in table[cls]} == {c for t in coded for c, _ in t}
        assert sum(w for _, w in table[cls]) == pytest.approx(1.0)
    assert table["others"] == EMOTION_AUS["others"]
    rng = np.random.default_rng(1)
    drawn = {sample_aus("negative", rng, sheets) for _ in range(300)}
    assert drawn <= {c for c, _ in table["negative"]}
    if sheets == ("casme2",):
        assert "7" not in drawn, "AU7 alone is coded by SAMM and CAS(ME)^3, not by CASME II"
    cfg = SynthConfig(events=EventConfig(au_sheets=sheets))
    assert cfg.events.au_sheets == sheets
    with pytest.raises(ValueError, match="au_sheets must be a non-empty subset"):
        EventConfig(au_sheets=("casme2", "smic"))


def test_all_sheets_are_the_default():
    assert EventConfig().au_sheets == emotions.SHEETS == tuple(SHEET_AUS) and emotion_aus() is EMOTION_AUS


@pytest.mark.realdata
def test_tables_are_the_coding_sheets(shared_data):
    for sheet, spec in SHEETS.items():
        data = open_dataset(spec.format(shared_data) + "?classes=megc3")
        counts = Counter((s.label_name, normalize_aus(s.aus)) for s in data.samples if normalize_aus(s.aus))
        for cls in ("negative", "positive", "surprise"):
            rebuilt = {combo: n for (c, combo), n in counts.items() if c == cls}
            assert dict(SHEET_AUS[sheet][cls]) == rebuilt, (sheet, cls)
