"""The generator's emotion tables: AU combinations and their frequencies from the real coding sheets."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from realtime_mer.synth.aus import parse_aus
from realtime_mer.synth.emotions import EMOTION_AUS, SHEET_AUS, normalize_aus, sample_aus
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


@pytest.mark.realdata
def test_tables_are_the_coding_sheets(shared_data):
    for sheet, spec in SHEETS.items():
        data = open_dataset(spec.format(shared_data) + "?classes=megc3")
        counts = Counter((s.label_name, normalize_aus(s.aus)) for s in data.samples if normalize_aus(s.aus))
        for cls in ("negative", "positive", "surprise"):
            rebuilt = {combo: n for (c, combo), n in counts.items() if c == cls}
            assert dict(SHEET_AUS[sheet][cls]) == rebuilt, (sheet, cls)
