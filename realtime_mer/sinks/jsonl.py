"""JSON Lines to stdout or a file: one object per record, with size- or day-based rotation."""

from __future__ import annotations

import errno
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from ..config import settings
from ..types import Record, Status
from .base import SinkError


@settings
class JsonlConfig:
    """Settings of the JSON Lines sink (``sinks.jsonl`` in the pipeline config).

    Attributes:
        rotate_mb: start a new file once the current one passes this many megabytes (``None``: never).
        rotate_daily: start a new file at each UTC midnight.
        fsync_s: fsync the file at most this often, s (every record is flushed to the OS at once,
            so a crash of the process loses nothing; fsync guards against a crash of the machine).
            0 fsyncs every record. Shutdown always fsyncs.
        status: write the feeds' status records too (``"type": "status"``).
    """

    rotate_mb: float | None = None
    rotate_daily: bool = False
    fsync_s: float = 1.0
    status: bool = True

    def __post_init__(self) -> None:
        if self.rotate_mb is not None and self.rotate_mb <= 0:
            raise ValueError(f"rotate_mb must be positive megabytes or null, got {self.rotate_mb}")
        if self.fsync_s < 0:
            raise ValueError(f"fsync_s must be >= 0 seconds, got {self.fsync_s}")


class JsonlSink:
    """One JSON object per line (the schema: ``realtime_mer/schemas/records.schema.json``).

    Args:
        target: a file path (created with its parent folders, appended to) or ``"-"`` for stdout.
        config: rotation and fsync settings. A rotated file is renamed
            ``NAME.YYYYmmddTHHMMSSZ.SUFFIX`` (the UTC time of the rotation) and a new ``NAME.SUFFIX``
            is started, so ``tail -F NAME.SUFFIX`` follows the run.

    >>> import tempfile, pathlib
    >>> from realtime_mer.types import Event, Interval
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "events.jsonl"
    >>> sink = JsonlSink(str(path))
    >>> sink.emit(Event("cam", 0, Interval(3, 5, 8, 0.1, 0.17, 0.27, "micro", 6.0), id="r-1"))
    >>> sink.close()
    >>> json.loads(path.read_text())["onset"]
    3
    """

    Config = JsonlConfig

    def __init__(self, target: str | Path = "-", config: JsonlConfig | None = None) -> None:
        self.config = config or JsonlConfig()
        self.target = str(target)
        self.name = "jsonl:stdout" if self.target == "-" else f"jsonl:{self.target}"
        self.count = 0
        self.rotations = 0
        self._path = None if self.target == "-" else Path(self.target)
        self._fsyncable = True
        if self._path is None and (self.config.rotate_mb or self.config.rotate_daily):
            raise SinkError("rotation needs a file: pass --events PATH, not stdout")
        self._fh: IO[str] = sys.stdout if self._path is None else self._open()
        self._day = self._today()
        self._synced = time.monotonic()

    def _open(self) -> IO[str]:
        assert self._path is not None
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            return self._path.open("a", encoding="utf-8")
        except OSError as e:
            raise SinkError(
                f"cannot write events to {self._path}: {e.strerror}; pass --events with a writable path"
            ) from e

    @staticmethod
    def _today() -> str:
        return datetime.now(UTC).strftime("%Y-%m-%d")

    def emit(self, record: Record) -> None:
        if isinstance(record, Status) and not self.config.status:
            return
        line = json.dumps(record.to_json(), separators=(",", ":")) + "\n"
        if self._path is not None and self._due_rotation(len(line)):
            self._rotate()
        self._fh.write(line)
        self._fh.flush()
        self.count += 1
        if self._path is not None and time.monotonic() - self._synced >= self.config.fsync_s:
            self._sync()

    def _due_rotation(self, incoming: int) -> bool:
        cfg = self.config
        if cfg.rotate_daily and self._today() != self._day:
            return True
        if cfg.rotate_mb is not None:
            size = self._fh.tell()
            return size > 0 and size + incoming > cfg.rotate_mb * 1e6
        return False

    def _rotate(self) -> None:
        assert self._path is not None
        self._sync()
        self._fh.close()
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        dest = self._path.with_name(f"{self._path.stem}.{stamp}{self._path.suffix}")
        n = 1
        while dest.exists():
            dest = self._path.with_name(f"{self._path.stem}.{stamp}-{n}{self._path.suffix}")
            n += 1
        os.replace(self._path, dest)
        self._fh = self._open()
        self._day = self._today()
        self.rotations += 1

    def _sync(self) -> None:
        self._fh.flush()
        if self._path is not None and self._fsyncable:
            try:
                os.fsync(self._fh.fileno())
            except OSError as e:
                if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
                    raise
                self._fsyncable = False  # a pipe or a device such as /dev/null: nothing to sync
        self._synced = time.monotonic()

    def flush(self) -> None:
        if not self._fh.closed:
            self._sync()

    def pending(self) -> int:
        return 0

    def close(self) -> None:
        if self._fh.closed:
            return
        self._sync()
        if self._path is not None:
            self._fh.close()
