"""Inference backends behind one interface: torch, ONNX Runtime, TensorRT.

``make_engine(kind, onnx_path=..., model=..., meta=...)`` returns an :class:`Engine`;
``engine.predict({name: (B, ...) float32})`` returns ``{output name: (B, ...) float32}`` and
:func:`probabilities` turns the ``logits`` output into class probabilities.
"""

from realtime_mer.engines.base import (
    BackendUnavailableError,
    Engine,
    EngineError,
    probabilities,
)
from realtime_mer.engines.cache import EngineCache, EngineKey
from realtime_mer.engines.factory import AUTO_ORDER, BACKENDS, make_engine

__all__ = [
    "AUTO_ORDER",
    "BACKENDS",
    "BackendUnavailableError",
    "Engine",
    "EngineCache",
    "EngineError",
    "EngineKey",
    "make_engine",
    "probabilities",
]
