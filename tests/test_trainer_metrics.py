"""Metrics against hand-computed examples; the report files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from realtime_mer.train.metrics import accuracy, confusion_matrix, evaluate, micro_f1, per_class, score, uar, uf1
from realtime_mer.train.report import confusion_png, final_line, markdown_table, write_report

# 10 samples, 3 classes
Y_TRUE = [0, 0, 0, 0, 1, 1, 2, 2, 2, 2]
Y_PRED = [0, 0, 1, 2, 1, 1, 2, 2, 0, 0]
# class 0: TP 2, FP 2, FN 2 -> F1 4/8;   recall 2/4
# class 1: TP 2, FP 1, FN 0 -> F1 4/5;   recall 2/2
# class 2: TP 2, FP 1, FN 2 -> F1 4/7;   recall 2/4
UF1 = (0.5 + 0.8 + 4 / 7) / 3  # 0.623810
UAR = (0.5 + 1.0 + 0.5) / 3


def test_hand_example():
    cm = confusion_matrix(Y_TRUE, Y_PRED, 3)
    assert cm.tolist() == [[2, 1, 1], [0, 2, 0], [2, 0, 2]]
    pc = per_class(cm)
    assert pc["f1"].tolist() == pytest.approx([0.5, 0.8, 4 / 7])
    assert uf1(Y_TRUE, Y_PRED) == pytest.approx(UF1)
    assert uar(Y_TRUE, Y_PRED) == pytest.approx(UAR)
    assert accuracy(Y_TRUE, Y_PRED) == pytest.approx(0.6)
    assert micro_f1(Y_TRUE, Y_PRED) == pytest.approx(0.6)  # seed 001's formula = accuracy for single labels


def test_absent_classes():
    # class 2 neither true nor predicted: left out of both means
    assert uar([0, 0, 1], [0, 1, 1]) == pytest.approx((0.5 + 1.0) / 2)
    assert uf1([0, 0, 1], [0, 1, 1]) == pytest.approx((2 / 3 + 2 / 3) / 2)
    # class 2 predicted but absent from the labels: F1 0 counts in UF1 (sklearn's macro), not in UAR
    assert uf1([0, 0], [0, 2]) == pytest.approx((2 / 3 + 0.0) / 2)
    assert uar([0, 0], [0, 2]) == pytest.approx(0.5)


def test_pooled_over_folds_not_averaged():
    """MEGC: concatenate the folds' predictions, then score once."""
    folds = [([0, 0, 1], [0, 0, 0]), ([1, 2, 2], [1, 2, 1])]
    pooled_t = sum((t for t, _ in folds), [])
    pooled_p = sum((p for _, p in folds), [])
    pooled = evaluate(pooled_t, pooled_p, 3)["full"].uf1
    # pooled cm: [[2,0,0],[1,1,0],[0,1,1]] -> F1 = 4/5, 2/4, 2/3
    assert pooled == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    fold_mean = np.mean([uf1(t, p) for t, p in folds])
    assert abs(pooled - fold_mean) > 0.05


def test_evaluate_per_dataset():
    dbs = ["casme2"] * 4 + ["smic"] * 2 + ["samm"] * 4
    res = evaluate(Y_TRUE, Y_PRED, 3, dbs)
    assert list(res) == ["full", "casme2", "smic", "samm"]
    assert res["full"].uf1 == pytest.approx(UF1) and res["full"].n == 10
    # casme2: all class 0, predictions 0, 0, 1, 2 -> UAR 0.5; UF1 over {0, 1, 2}: (2/3 + 0 + 0) / 3
    assert res["casme2"].uar == pytest.approx(0.5) and res["casme2"].uf1 == pytest.approx(2 / 9)
    assert res["smic"].accuracy == 1.0 and res["samm"].confusion == [[0, 0, 0], [0, 0, 0], [2, 0, 2]]
    with pytest.raises(ValueError, match="datasets has 3 entries for 10"):
        evaluate(Y_TRUE, Y_PRED, 3, ["a", "b", "c"])


def test_bad_input():
    with pytest.raises(ValueError, match="differ in length"):
        uf1([0, 1], [0])
    with pytest.raises(ValueError, match="< num_classes=2"):
        confusion_matrix([0, 2], [0, 1], 2)
    with pytest.raises(ValueError, match=">= 0"):
        accuracy([-1], [0])


def test_report_files(tmp_path: Path):
    dbs = ["casme2"] * 4 + ["smic"] * 2 + ["samm"] * 4
    res = evaluate(Y_TRUE, Y_PRED, 3, dbs)
    classes = ["negative", "positive", "surprise"]
    paths = write_report(tmp_path / "run", res, classes, {"model": "rcn-a", "protocol": "loso"})
    assert set(paths) == {"markdown", "json", "confusion_full", "confusion_casme2", "confusion_smic", "confusion_samm"}
    md = paths["markdown"].read_text()
    rows = [line.split("|")[1].strip() for line in md.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows == ["Set", "Full", "SMIC", "CASME II", "SAMM"]  # the papers' order
    assert f"| Full | {UF1:.4f} | {UAR:.4f} | 0.6000 | 10 |" in md
    assert md.strip().splitlines()[-1] == final_line(UF1, UAR)
    doc = json.loads(paths["json"].read_text())
    assert doc["classes"] == classes and doc["meta"]["model"] == "rcn-a"
    assert doc["results"]["full"]["uf1"] == pytest.approx(UF1) and doc["results"]["samm"]["n"] == 4
    for k in ("confusion_full", "confusion_samm"):
        img = cv2.imread(str(paths[k]))
        assert img is not None and img.shape == (420, 480, 3)
        assert img.std() > 10  # drawn, not blank
    small = confusion_png(np.eye(2, dtype=int), ["a", "b"], tmp_path / "s.png", size_px=(300, 200))
    assert cv2.imread(str(small)).shape == (200, 300, 3)
    with pytest.raises(ValueError, match="does not match 3 classes"):
        confusion_png(np.eye(2, dtype=int), classes, tmp_path / "x.png")


def test_final_line_and_table_format():
    line = final_line(0.73534, 0.76049)
    assert line == "UF1 0.7353 UAR 0.7605"
    assert re.fullmatch(r"UF1 \d\.\d{4} UAR \d\.\d{4}", line)
    table = markdown_table({"full": score([0, 1], [0, 1], 2), "synth": score([0], [1], 2)})
    assert table.splitlines()[-1] == "| Synthetic | 0.0000 | 0.0000 | 0.0000 | 1 |"
