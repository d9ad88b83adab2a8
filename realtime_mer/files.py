"""Files on disk: the user cache folder, content hashes, and writes that never leave half a file.

>>> import tempfile
>>> path = Path(tempfile.mkdtemp()) / "out" / "data.txt"
>>> with atomic_path(path) as tmp:
...     _ = tmp.write_text("hello")
>>> path.read_text(), file_sha256(path)[:12]
('hello', '2cf24dba5fb0')
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import platformdirs

APP = "realtime-mer"


def cache_dir() -> Path:
    """The user cache folder of realtime-mer (platformdirs; ``~/.cache/realtime-mer`` on Linux, or
    ``$XDG_CACHE_HOME/realtime-mer``): the face model, exported ONNX files, TensorRT engines, the
    webhook spill files."""
    return Path(platformdirs.user_cache_dir(APP))


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@contextmanager
def atomic_path(path: str | Path, fsync: bool = False) -> Iterator[Path]:
    """A temporary path beside ``path`` to write the file to; when the block ends without an error
    it replaces ``path`` in one step (a reader, or a crash, never sees half a file), else it is
    removed. The temporary name keeps the suffix (``np.savez`` and others look at it). With
    ``fsync`` the data is on disk before the replacement (a machine crash keeps the old or the new)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.part{path.suffix}")
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
