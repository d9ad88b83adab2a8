"""On-disk cache of built TensorRT engines (pure Python: testable without TensorRT).

An engine is only valid for the ONNX file, TensorRT version, GPU model and build settings it was
built with, so the file name is a digest of all of them (:class:`EngineKey`). A cached file that
fails to load is rebuilt with a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

from realtime_mer.engines.base import EngineError
from realtime_mer.files import atomic_path, cache_dir

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineKey:
    """Everything a serialized TensorRT engine depends on.

    Attributes:
        onnx_sha256: hex digest of the ONNX file's bytes.
        tensorrt: TensorRT version string, e.g. ``"10.13.0.35"``.
        gpu: GPU name, e.g. ``"NVIDIA H100 80GB HBM3"``.
        compute_capability: ``"major.minor"``, e.g. ``"9.0"``.
        precision: ``"fp32"``, ``"fp16"`` or ``"int8"``.
        batch_profile: ``(min, opt, max)`` of the dynamic batch axis.
        calibration: digest of the INT8 calibration data; ``""`` when not INT8.
    """

    onnx_sha256: str
    tensorrt: str
    gpu: str
    compute_capability: str
    precision: str
    batch_profile: tuple[int, int, int]
    calibration: str = ""

    def digest(self) -> str:
        """Hex sha256 of the key's fields (stable across runs and Python versions)."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()

    def filename(self, model: str = "model") -> str:
        """``MODEL-PRECISION-DIGEST16.engine``: readable, and unique per key."""
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in model)
        return f"{safe}-{self.precision}-{self.digest()[:16]}.engine"


class EngineCache:
    """Serialized engines in a folder, one file per :class:`EngineKey` plus a JSON note of the key."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else cache_dir() / "engines"

    def path(self, key: EngineKey, model: str = "model") -> Path:
        return self.root / key.filename(model)

    def load_or_build(
        self, key: EngineKey, build: Callable[[], bytes], load: Callable[[bytes], T], model: str = "model"
    ) -> tuple[T, Path, bool]:
        """The loaded engine for ``key``: from the cache, else from ``build()`` (then stored).

        Args:
            key: the cache key.
            build: makes the serialized engine (slow: seconds to minutes).
            load: turns serialized bytes into a usable engine; raises (or returns None) if they are bad.
            model: model name, used in the file name only.

        Returns:
            ``(engine, cache file, built)`` where ``built`` says whether ``build`` ran.
        """
        path = self.path(key, model)
        if path.is_file():
            try:
                engine = load(path.read_bytes())
                if engine is None:
                    raise EngineError("the deserializer returned nothing")
                return engine, path, False
            except Exception as e:
                warnings.warn(f"cached TensorRT engine {path} is unreadable ({e}); rebuilding it", stacklevel=2)
                path.unlink(missing_ok=True)
        log.info("building TensorRT engine %s (%s, batch %s)", path.name, key.precision, key.batch_profile)
        data = build()
        engine = load(data)
        if engine is None:
            raise EngineError(f"TensorRT could not load the engine it just built for {model} ({key.precision})")
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
        path.with_suffix(".json").write_text(json.dumps(asdict(key), indent=1, sort_keys=True))
        return engine, path, True
