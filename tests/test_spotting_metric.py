"""The MEGC interval metric: IoU on inclusive frame intervals, one match per truth, pooled counts."""

from __future__ import annotations

import pytest

from realtime_mer.spotting import SpotScore, interval_iou, match_intervals, pool
from realtime_mer.types import Interval


def iv(onset: int, apex: int, offset: int, kind: str = "micro") -> Interval:
    return Interval(onset, apex, offset, onset / 30, apex / 30, offset / 30, kind, 10.0)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((0, 9), (0, 9), 1.0),
        ((0, 9), (2, 7), 6 / 10),  # contained: 6 shared frames of 10
        ((0, 9), (5, 14), 5 / 15),  # frames 5..9 shared, 0..14 in the union
        ((10, 20), (15, 30), 6 / 21),
        ((0, 5), (5, 10), 1 / 11),  # one shared frame
        ((0, 5), (10, 15), 1 / 11),  # disjoint: the official code's phantom frame
        ((3, 3), (3, 3), 0.0),  # one-frame intervals count as empty (e <= s)
        ((5, 2), (0, 9), 0.0),
    ],
)
def test_iou_by_hand(a, b, expected):
    assert interval_iou(a, b) == pytest.approx(expected)
    assert interval_iou(b, a) == pytest.approx(expected)


def test_iou_accepts_intervals_and_apex_tuples():
    assert interval_iou(iv(0, 4, 9), (0, 3, 9)) == 1.0
    assert interval_iou((0, 3, 9, "macro"), iv(2, 4, 7)) == pytest.approx(0.6)
    with pytest.raises(ValueError, match="onset, offset"):
        interval_iou((1,), (0, 9))


def test_each_truth_is_matched_at_most_once():
    truth = [iv(10, 14, 19)]
    pred = [iv(11, 15, 19), iv(10, 13, 20), iv(40, 42, 45)]  # IoU 0.9 and 10/11; the third is far away
    m = match_intervals(pred, truth)
    assert m.score == SpotScore(tp=1, fp=2, fn=0)
    assert m.pairs == ((1, 0, pytest.approx(10 / 11)),)  # the best-overlapping prediction wins
    assert m.apex_errors == (13 - 14,)


def test_unmatched_truths_are_false_negatives_and_threshold_is_inclusive():
    truth = [iv(0, 2, 9), iv(100, 104, 109), iv(200, 201, 203)]
    pred = [iv(0, 3, 4), iv(100, 105, 109)]  # IoU exactly 0.5, then 1.0
    m = match_intervals(pred, truth)
    assert m.score == SpotScore(tp=2, fp=0, fn=1)
    assert {(p, g) for p, g, _ in m.pairs} == {(0, 0), (1, 1)}
    assert sorted(m.apex_errors) == [1, 1]
    assert match_intervals(pred, truth, iou=0.51).score == SpotScore(tp=1, fp=1, fn=2)


def test_kind_aware_matching():
    truth = [iv(0, 5, 40, "macro")]
    pred = [iv(0, 6, 40, "micro")]
    assert match_intervals(pred, truth).score.tp == 1
    assert match_intervals(pred, truth, by_kind=True).score == SpotScore(tp=0, fp=1, fn=1)
    assert match_intervals([iv(0, 6, 40, "macro")], truth, by_kind=True).score.tp == 1
    with pytest.raises(ValueError, match="kind"):
        match_intervals([(0, 40)], truth, by_kind=True)


def test_tuples_without_apex_match_but_give_no_apex_error():
    m = match_intervals([(0, 9)], [(1, 5, 9)])
    assert m.score.tp == 1 and m.apex_errors == ()


def test_empty_inputs():
    assert match_intervals([], []).score == SpotScore()
    assert match_intervals([], [iv(0, 1, 5)]).score == SpotScore(fn=1)
    assert match_intervals([iv(0, 1, 5)], []).score == SpotScore(fp=1)


def test_precision_recall_f1_by_hand():
    s = SpotScore(tp=2, fp=3, fn=1)
    assert s.precision == pytest.approx(2 / 5)
    assert s.recall == pytest.approx(2 / 3)
    assert s.f1 == pytest.approx(2 * (2 / 5) * (2 / 3) / (2 / 5 + 2 / 3))
    assert SpotScore().precision == SpotScore().recall == SpotScore().f1 == 0.0


def test_counts_are_pooled_over_videos_not_averaged():
    a = SpotScore(tp=1, fp=0, fn=0)  # F1 1.0
    b = SpotScore(tp=0, fp=3, fn=1)  # F1 0.0
    pooled = pool([a, b])
    assert pooled == a + b == SpotScore(tp=1, fp=3, fn=1)
    assert pooled.f1 == pytest.approx(2 * 0.25 * 0.5 / 0.75)  # not the per-video mean 0.5
    assert pool([]) == SpotScore()
