"""Where events go: JSON Lines to stdout or a file (one object per spotted interval)."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import IO, Protocol

from .types import Event


class Sink(Protocol):
    """Receives every event once, from any thread; ``close`` flushes what is pending."""

    def emit(self, event: Event) -> None: ...

    def close(self) -> None: ...


class JsonlSink:
    """One JSON object per line, flushed per event so that nothing is lost on a crash or Ctrl-C.

    Args:
        target: a file path (created with its parent folders, appended to) or ``"-"`` for stdout.
    """

    def __init__(self, target: str | Path = "-") -> None:
        self.target = str(target)
        if self.target == "-":
            self._fh: IO[str] = sys.stdout
            self._owned = False
        else:
            path = Path(target)
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._fh = path.open("a", encoding="utf-8")
            except OSError as e:
                raise OSError(f"cannot write events to {path}: {e.strerror}; pass --events with a writable path") from e
            self._owned = True
        self._lock = threading.Lock()
        self.count = 0

    def emit(self, event: Event) -> None:
        line = json.dumps(event.to_json(), separators=(",", ":"))
        with self._lock:
            self._fh.write(line + "\n")
            self._fh.flush()
            self.count += 1

    def close(self) -> None:
        with self._lock:
            self._fh.flush()
            if self._owned and not self._fh.closed:
                self._fh.close()


class CollectSink:
    """Keeps every event in memory (``events``), for reports at the end of a run and for tests."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def emit(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def close(self) -> None:
        pass
