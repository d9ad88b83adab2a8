"""Result files of a run: a markdown table in the papers' layout, confusion-matrix PNGs, a JSON file,
and the last line ``mer-train`` prints.

The table has one row per set, Full first, then SMIC, CASME II, SAMM (seed 002 Table 2's order),
then any other database, and the columns UF1, UAR, Acc and n.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .metrics import FULL, Scores

DISPLAY = {
    FULL: "Full",
    "smic": "SMIC",
    "casme2": "CASME II",
    "samm": "SAMM",
    "casme3": "CAS(ME)^3",
    "casmesq": "CAS(ME)^2",
    "synth": "Synthetic",
    "flowimages": "Flow images",
}
ORDER = (FULL, "smic", "casme2", "samm")


def final_line(uf1: float, uar: float) -> str:
    """``"UF1 0.7353 UAR 0.7605"``: the last line ``mer-train`` prints."""
    return f"UF1 {uf1:.4f} UAR {uar:.4f}"


def _ordered(results: Mapping[str, Scores]) -> list[str]:
    return [k for k in ORDER if k in results] + [k for k in results if k not in ORDER]


def markdown_table(results: Mapping[str, Scores]) -> str:
    """``| Set | UF1 | UAR | Acc | n |`` with one row per entry of the result of
    :func:`realtime_mer.train.metrics.evaluate`."""
    lines = ["| Set | UF1 | UAR | Acc | n |", "|---|---:|---:|---:|---:|"]
    for k in _ordered(results):
        s = results[k]
        lines.append(f"| {DISPLAY.get(k, k)} | {s.uf1:.4f} | {s.uar:.4f} | {s.accuracy:.4f} | {s.n} |")
    return "\n".join(lines) + "\n"


def confusion_png(
    confusion: np.ndarray | Sequence[Sequence[int]],
    classes: Sequence[str],
    path: str | Path,
    title: str = "",
    size_px: tuple[int, int] = (480, 420),
    dpi: int = 100,
) -> Path:
    """Save a confusion matrix (rows true, columns predicted) as a PNG of exactly ``size_px`` (w, h)
    pixels: class names on the axes, counts in the cells, shade = row-normalised recall."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cm = np.asarray(confusion, dtype=np.int64)
    if cm.shape != (len(classes), len(classes)):
        raise ValueError(f"confusion {cm.shape} does not match {len(classes)} classes")
    rows = cm.sum(1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    fig = Figure(figsize=(size_px[0] / dpi, size_px[1] / dpi), dpi=dpi)
    FigureCanvasAgg(fig)  # the Agg canvas, without touching pyplot's global backend
    ax = fig.add_subplot()
    ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    ticks = range(len(classes))
    ax.set_xticks(ticks, labels=list(classes), rotation=30, ha="right")
    ax.set_yticks(ticks, labels=list(classes))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)
    for i in ticks:
        for j in ticks:
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")
    return path


def write_report(
    out_dir: str | Path, results: Mapping[str, Scores], classes: Sequence[str], meta: Mapping[str, Any] | None = None
) -> dict[str, Path]:
    """Write ``results.md`` (the table), ``results.json`` (scores, classes, ``meta``) and one
    ``confusion_<set>.png`` per set into ``out_dir``.

    Returns:
        name -> path of every file written (``"markdown"``, ``"json"``, ``"confusion_full"``, ...).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {"markdown": out / "results.md", "json": out / "results.json"}
    full = results[FULL]
    text = markdown_table(results) + f"\n{final_line(full.uf1, full.uar)}\n"
    paths["markdown"].write_text(text)
    doc = {
        "classes": list(classes),
        "results": {k: results[k].to_json() for k in _ordered(results)},
        "meta": dict(meta or {}),
    }
    paths["json"].write_text(json.dumps(doc, indent=1, default=str))
    for k in _ordered(results):
        title = f"{DISPLAY.get(k, k)}: UF1 {results[k].uf1:.3f}, UAR {results[k].uar:.3f} (n={results[k].n})"
        paths[f"confusion_{k}"] = confusion_png(results[k].confusion, classes, out / f"confusion_{k}.png", title)
    return paths
