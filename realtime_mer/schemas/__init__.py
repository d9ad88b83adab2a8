"""JSON Schemas shipped with the package: ``records.schema.json`` describes every line of the
events output (``"type": "event"`` and ``"type": "status"``)."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any


def records_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the event and status records.

    >>> records_schema()["$defs"]["event"]["properties"]["kind"]["enum"]
    ['micro', 'macro']
    """
    return json.loads(resources.files(__name__).joinpath("records.schema.json").read_text(encoding="utf-8"))
