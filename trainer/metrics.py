"""Recognition metrics computed the MEGC way: pool the predictions of ALL folds first, then score.

Definitions (seed 002 Eq. 3-5; REFERENCE 1.7, the RCN code's sklearn calls), computed with
scikit-learn:

* ``UF1`` (macro F1): per class c, F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c); the unweighted mean over
  the classes that occur in the labels or the predictions (sklearn's ``f1_score(average="macro")``
  default; a class predicted but absent scores 0).
* ``UAR`` (balanced accuracy): mean over the classes present in the labels of TP_c / N_c.
* ``accuracy``: correct / N.
* ``micro_f1``: seed 001's formula, F = 2PR / (P + R) with P and R summed over classes. For
  single-label predictions it equals the accuracy (every error is one FP and one FN), yet seed 001
  Table II reports F1 != accuracy, so the paper cannot have computed it literally; compare with
  seed 001 numbers through UF1 and say so.

Inputs are label arrays ``(N,)`` of class indices in ``[0, K)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import sklearn.metrics as sk

FULL = "full"


def _labels(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t, p = np.asarray(y_true, np.int64).ravel(), np.asarray(y_pred, np.int64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.size} vs {p.size}")
    if (t < 0).any() or (p < 0).any():
        raise ValueError("labels must be class indices >= 0")
    return t, p


def confusion_matrix(y_true, y_pred, num_classes: int | None = None) -> np.ndarray:
    """``(K, K)`` int64 counts, rows = true class, columns = predicted class (scikit-learn's)."""
    t, p = _labels(y_true, y_pred)
    k = num_classes if num_classes is not None else int(max(t.max(initial=-1), p.max(initial=-1)) + 1)
    if t.size and max(t.max(), p.max()) >= k:
        raise ValueError(f"labels must be < num_classes={k}")
    return sk.confusion_matrix(t, p, labels=np.arange(k)).astype(np.int64)


def per_class(cm: np.ndarray) -> dict[str, np.ndarray]:
    """``tp``, ``fp``, ``fn``, ``support`` ``(K,)`` and ``f1``, ``recall`` ``(K,)`` (0 where undefined)."""
    tp = np.diag(cm).astype(np.float64)
    fp = cm.sum(0) - tp
    fn = cm.sum(1) - tp
    denom = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    support = cm.sum(1).astype(np.float64)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    return {"tp": tp, "fp": fp, "fn": fn, "support": support, "f1": f1, "recall": recall}


def uf1(y_true, y_pred) -> float:
    """Unweighted (macro) F1 over the classes present in the labels or the predictions
    (scikit-learn's ``f1_score(average="macro")``)."""
    t, p = _labels(y_true, y_pred)
    return float(sk.f1_score(t, p, average="macro", zero_division=0.0)) if t.size else 0.0


def uar(y_true, y_pred) -> float:
    """Unweighted average recall over the classes present in the labels (scikit-learn's
    ``balanced_accuracy_score``)."""
    t, p = _labels(y_true, y_pred)
    if not t.size:
        return 0.0
    with warnings.catch_warnings():  # a predicted class absent from the labels is expected here
        warnings.simplefilter("ignore", UserWarning)
        return float(sk.balanced_accuracy_score(t, p))


def accuracy(y_true, y_pred) -> float:
    t, p = _labels(y_true, y_pred)
    return float((t == p).mean()) if t.size else 0.0


def micro_f1(y_true, y_pred) -> float:
    """Seed 001's F = 2PR/(P+R) with P = sum TP / sum(TP+FP), R = sum TP / sum(TP+FN)."""
    t, p = _labels(y_true, y_pred)
    tp = float((t == p).sum())
    fp = fn = float((t != p).sum())
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    return 2 * prec * rec / (prec + rec) if prec + rec else 0.0


@dataclass(frozen=True)
class Scores:
    """Scores of one set of pooled predictions.

    Attributes:
        uf1, uar, accuracy, micro_f1: see the module docstring.
        n: number of samples.
        confusion: ``(K, K)`` counts, rows true, columns predicted, as nested lists.
    """

    uf1: float
    uar: float
    accuracy: float
    micro_f1: float
    n: int
    confusion: list[list[int]]

    def to_json(self) -> dict:
        return asdict(self)


def score(y_true, y_pred, num_classes: int) -> Scores:
    """All metrics of pooled predictions over ``num_classes`` classes."""
    t, p = _labels(y_true, y_pred)
    cm = confusion_matrix(t, p, num_classes)
    return Scores(uf1(t, p), uar(t, p), accuracy(t, p), micro_f1(t, p), int(t.size), cm.tolist())


def evaluate(y_true, y_pred, num_classes: int, datasets: Sequence[str] | None = None) -> dict[str, Scores]:
    """Scores of all predictions (key :data:`FULL`) and of each database's subset.

    Args:
        y_true, y_pred: ``(N,)`` pooled over all folds.
        num_classes: K.
        datasets: ``(N,)`` database of each sample (``Sample.dataset``); ``None``: only the full set.

    Returns:
        ``{"full": Scores, "<database>": Scores, ...}`` in order of first appearance.
    """
    t, p = _labels(y_true, y_pred)
    out = {FULL: score(t, p, num_classes)}
    if datasets is not None:
        d = np.asarray(datasets, dtype=object).ravel()
        if d.shape != t.shape:
            raise ValueError(f"datasets has {d.size} entries for {t.size} predictions")
        for name in dict.fromkeys(d.tolist()):
            m = d == name
            out[str(name)] = score(t[m], p[m], num_classes)
    return out
