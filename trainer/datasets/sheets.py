"""Coding sheets: rows of an ``.xlsx`` or ``.csv`` file, the header row found by its cells, typed cells.

Sheets differ between releases: CASME II has empty spacer columns, SAMM puts a preamble above the
header, CSV exports drop both. So columns are looked up by name (case, spaces and punctuation
ignored, with aliases), and the header is the first row holding every required column.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import DatasetError

HEADER_SCAN_ROWS = 60
MISSING_CELLS = {"", "/", "-", "?", "n/a", "na", "none", "nan"}


def norm(name: Any) -> str:
    """Column-name key: lower case, letters and digits only (``"Onset Frame"`` -> ``"onsetframe"``)."""
    return re.sub(r"[^0-9a-z]", "", str(name).lower()) if name is not None else ""


@dataclass(frozen=True)
class Table:
    """The data rows under the header of one sheet.

    Attributes:
        path: the file; ``sheet``: the worksheet name (``""`` for CSV).
        header_row: 1-based row number of the header in the file.
        columns: field -> column index for every field found.
        rows: the data rows (tuples of cell values), blank rows dropped.
        numbers: 1-based row number in the file of each data row.
    """

    path: Path
    sheet: str
    header_row: int
    columns: Mapping[str, int]
    rows: tuple[tuple[Any, ...], ...]
    numbers: tuple[int, ...]

    def where(self, i: int) -> str:
        """``file, sheet, row n`` of data row ``i`` for messages."""
        sheet = f" sheet {self.sheet}" if self.sheet else ""
        return f"{self.path.name}{sheet} row {self.numbers[i]}"

    def get(self, row: Sequence[Any], field: str) -> Any:
        j = self.columns.get(field)
        return row[j] if j is not None and j < len(row) else None


def read_sheets(path: Path) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """``[(sheet name, rows)]`` of an ``.xlsx``/``.xlsm`` workbook or a ``.csv`` file (one sheet named ``""``)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"coding sheet {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as fh:
            return [("", [tuple(r) for r in csv.reader(fh)])]
    if suffix not in (".xlsx", ".xlsm"):
        raise DatasetError(f"coding sheet {path} must be .xlsx or .csv (save an .xls as .xlsx first)")
    try:
        import openpyxl
    except ImportError as e:
        raise DatasetError("reading .xlsx coding sheets needs openpyxl: pip install 'realtime-mer[train]'") from e
    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises zipfile/KeyError/InvalidFileException on a bad file
        raise DatasetError(f"coding sheet {path} is not a readable .xlsx workbook ({type(e).__name__}: {e})") from e
    try:
        return [(ws.title, [tuple(r) for r in ws.iter_rows(values_only=True)]) for ws in wb.worksheets]
    finally:
        wb.close()


def read_table(
    path: Path,
    required: Mapping[str, Sequence[str]],
    optional: Mapping[str, Sequence[str]] | None = None,
    what: str = "coding sheet",
) -> Table:
    """The first sheet of ``path`` whose header row (within the first rows) holds every required column.

    Args:
        path: ``.xlsx`` or ``.csv`` file.
        required: field -> accepted column names (the first is the one shown in messages).
        optional: the same for columns that may be absent.
        what: what the file is, for messages.
    """
    optional = optional or {}
    best: tuple[int, str, int, list[str]] | None = None  # (found, sheet, row, missing)
    for sheet, rows in read_sheets(path):
        for r, row in enumerate(rows[:HEADER_SCAN_ROWS]):
            cells = [norm(c) for c in row]
            cols = _match(cells, required)
            missing = [names[0] for f, names in required.items() if f not in cols]
            if not missing:
                cols.update(_match(cells, optional))
                data = [
                    (r + 2 + k, x)
                    for k, x in enumerate(rows[r + 1 :])
                    if any(c is not None and str(c).strip() for c in x)
                ]
                return Table(Path(path), sheet, r + 1, cols, tuple(x for _, x in data), tuple(n for n, _ in data))
            if best is None or len(cols) > best[0]:
                best = (len(cols), sheet, r + 1, missing)
    want = ", ".join(names[0] for names in required.values())
    if best is None or best[0] == 0:
        raise DatasetError(f"{what} {path}: no header row with the columns {want} in its first {HEADER_SCAN_ROWS} rows")
    _, sheet, row, missing = best
    at = f"sheet {sheet} row {row}" if sheet else f"row {row}"
    raise DatasetError(
        f"{what} {path}: the header row ({at}) lacks column(s) {', '.join(missing)}; expected columns {want}"
    )


def _match(cells: list[str], fields: Mapping[str, Sequence[str]]) -> dict[str, int]:
    out = {}
    for f, names in fields.items():
        keys = {norm(n) for n in names}
        for j, c in enumerate(cells):
            if c in keys:
                out[f] = j
                break
    return out


def cell_int(value: Any, what: str, where: str, required: bool = True) -> int | None:
    """A frame number cell as an int; ``"/"``, blanks and the like are ``None`` (an error if ``required``)."""
    if isinstance(value, bool):
        value = None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    text = "" if value is None else str(value).strip()
    if re.fullmatch(r"\d+(\.0+)?", text):
        return int(float(text))
    if text.lower() in MISSING_CELLS and not required:
        return None
    raise DatasetError(f"{where}: {what} must be a frame number, got {value!r}")


def cell_str(value: Any) -> str:
    """A text cell; integral floats lose their ``.0`` (``12.0`` -> ``"12"``), blanks are ``""``."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def find_sheet(root: Path, patterns: Sequence[str], what: str, hint: str) -> Path:
    """The file matching ``patterns`` in ``root`` or up to two folders below (the last in name order
    when several match, e.g. the newest dated CASME II sheet).

    Args:
        root: dataset folder.
        patterns: glob patterns, tried in order.
        what: what the file is, for the message; ``hint``: how to give it explicitly.
    """
    for pattern in patterns:
        hits = sorted({*root.glob(pattern), *root.glob(f"*/{pattern}"), *root.glob(f"*/*/{pattern}")})
        hits = [h for h in hits if h.is_file() and not h.name.startswith("~$")]
        if hits:
            return hits[-1]
    raise DatasetError(f"no {what} ({' or '.join(patterns)}) in {root} or two folders below; {hint}")
