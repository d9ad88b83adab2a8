"""LOSO / LOVO folds: every sample tested exactly once, never trained on in its own fold, and the
validation split drawn from the training subjects only."""

from __future__ import annotations

import numpy as np
import pytest

from realtime_mer.train.datasets import Sample
from realtime_mer.train.protocol import loso_folds, lovo_folds, make_folds, with_validation


def _samples() -> list[Sample]:
    out = []
    for db, subjects in (("casme2", ("sub01", "sub02", "sub03")), ("samm", ("006", "007")), ("smic", ("s01", "sub01"))):
        for s in subjects:
            for k in range(4):
                out.append(Sample(dataset=db, subject=s, sample_id=f"{s}_{k}", label=k % 3, label_name="abc"[k % 3]))
    return out


def _check_partition(folds, n):
    tested = np.concatenate([f.test for f in folds])
    assert sorted(tested.tolist()) == list(range(n)), "every sample is tested exactly once"
    for f in folds:
        assert not set(f.train.tolist()) & set(f.test.tolist())


def test_loso_composite_one_fold_per_subject_key():
    samples = _samples()
    folds = loso_folds(samples)
    # smic/sub01 and casme2/sub01 are different subjects: 7 folds, not 6
    assert [f.name for f in folds] == sorted({s.subject_key for s in samples}) and len(folds) == 7
    _check_partition(folds, len(samples))
    for f in folds:
        assert {samples[i].subject_key for i in f.test} == {f.name}
        assert f.name not in {samples[i].subject_key for i in f.train}
        assert len(f.train) == len(samples) - 4  # composite: trains on every other subject of every database


def test_loso_per_dataset_trains_only_on_its_database():
    samples = _samples()
    folds = loso_folds(samples, per_dataset=True)
    _check_partition(folds, len(samples))
    for f in folds:
        db = samples[f.test[0]].dataset
        assert {samples[i].dataset for i in f.train} == {db}


def test_lovo_one_video_and_strcn_five_percent():
    samples = _samples()
    one = lovo_folds(samples)
    assert len(one) == len(samples) and all(len(f.test) == 1 for f in one)
    _check_partition(one, len(samples))
    big = [Sample("synth", f"s{i % 10}", f"v{i}", 0, "a") for i in range(200)]
    five = lovo_folds(big, test_fraction=0.05, seed=3)
    assert len(five) == 20 and all(len(f.test) == 10 for f in five)
    _check_partition(five, len(big))
    assert [f.test.tolist() for f in five] == [f.test.tolist() for f in lovo_folds(big, 0.05, seed=3)]
    assert [f.test.tolist() for f in five] != [f.test.tolist() for f in lovo_folds(big, 0.05, seed=4)]


def test_validation_split_comes_from_training_subjects_only():
    samples = _samples()
    folds = make_folds(samples, "loso", val_fraction=0.34, seed=1)
    for f in folds:
        val_subjects = {samples[i].subject_key for i in f.val}
        train_subjects = {samples[i].subject_key for i in f.train}
        assert val_subjects and not val_subjects & train_subjects, "whole subjects are held out"
        assert f.name not in val_subjects, "the test subject is never the validation subject"
        assert len(f.train) + len(f.val) + len(f.test) == len(samples)
    again = make_folds(samples, "loso", val_fraction=0.34, seed=1)
    assert all(a.val.tolist() == b.val.tolist() for a, b in zip(folds, again)), "seeded"
    lovo = with_validation(lovo_folds(samples)[0], samples, 0.25, by_subject=False)
    assert len(lovo.val) == round(0.25 * (len(samples) - 1)) and not set(lovo.val) & set(lovo.test)


def test_protocol_errors_are_clear():
    one_subject = [Sample("synth", "s01", f"v{i}", 0, "a") for i in range(3)]
    with pytest.raises(ValueError, match="at least two"):
        make_folds(one_subject, "loso")
    with pytest.raises(ValueError, match="protocol must be"):
        make_folds(_samples(), "kfold")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot be split"):
        make_folds([Sample("synth", f"s0{i}", "v", 0, "a") for i in range(2)], "loso", val_fraction=0.5)
