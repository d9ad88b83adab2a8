"""The engine interface every backend implements, plus the helpers around it.

Contract: ``predict(inputs) -> dict[str, np.ndarray]``. ``inputs`` is a mapping from input name to a
float32 array ``(B, *shape)``, or a bare array when the model has a single input. Every output is
returned by name, batch along axis 0, float32, in fresh arrays the caller may keep. Class
probabilities come from the ``logits`` output through :func:`probabilities`, the one softmax of the
project.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from realtime_mer.errors import UserError

if TYPE_CHECKING:
    from realtime_mer.models.checkpoint import ModelMeta

InputShape = tuple[int | None, ...]
"""A full input shape including the batch axis; ``None`` marks a dynamic axis."""


class EngineError(UserError, RuntimeError):
    """An engine cannot be made or run; the message says what is wrong and what to do."""


class BackendUnavailableError(EngineError):
    """The requested backend is not installed or has no device to run on."""


class Engine(ABC):
    """One loaded model on one backend and device.

    Attributes:
        name: backend name: ``"torch"``, ``"onnxruntime"`` or ``"tensorrt"``.
        input_shapes: input name -> full shape, batch axis first (``None`` = dynamic), in model order.
        output_names: output names in model order.
        precision: ``"fp32"``, ``"fp16"`` or ``"int8"``: what the backend actually computes in.
        meta: the model's metadata (name, config, classes) where the source carries it, else None.
    """

    name: str
    precision: str = "fp32"
    meta: ModelMeta | None = None

    def __init__(self, input_shapes: Mapping[str, InputShape], output_names: tuple[str, ...]) -> None:
        self.input_shapes = dict(input_shapes)
        self.output_names = tuple(output_names)

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(self.input_shapes)

    @property
    @abstractmethod
    def device(self) -> str:
        """Where it runs, e.g. ``"cpu"`` or ``"cuda:0 (NVIDIA H100 80GB HBM3)"``."""

    @abstractmethod
    def predict(self, inputs: Mapping[str, np.ndarray] | np.ndarray) -> dict[str, np.ndarray]:
        """Run one batch; see the module docstring for the contract."""

    def close(self) -> None:  # noqa: B027 (a backend without resources has nothing to release)
        """Release the backend's sessions and device memory; the engine is unusable afterwards."""

    def describe(self) -> str:
        """One line: backend, device, precision, inputs."""
        ins = ", ".join(f"{k}{_fmt_shape(s)}" for k, s in self.input_shapes.items())
        return f"{self.name} on {self.device}, {self.precision}, inputs {ins} -> {', '.join(self.output_names)}"

    def feed(self, inputs: Mapping[str, np.ndarray] | np.ndarray) -> dict[str, np.ndarray]:
        """Validate ``inputs`` against :attr:`input_shapes`; C-contiguous float32 arrays by name.

        Raises:
            ValueError: a missing or unknown name, a wrong rank or size, or batches that differ.
        """
        if isinstance(inputs, np.ndarray):
            if len(self.input_shapes) != 1:
                raise ValueError(
                    f"this model has {len(self.input_shapes)} inputs ({', '.join(self.input_shapes)}): "
                    "pass a dict name -> array"
                )
            inputs = {self.input_names[0]: inputs}
        missing = [k for k in self.input_shapes if k not in inputs]
        unknown = [k for k in inputs if k not in self.input_shapes]
        if missing or unknown:
            raise ValueError(
                f"inputs do not match the model: missing {missing}, unknown {unknown}; expected {self.input_names}"
            )
        out: dict[str, np.ndarray] = {}
        batch = None
        for name, shape in self.input_shapes.items():
            x = np.ascontiguousarray(inputs[name], dtype=np.float32)
            if x.ndim != len(shape) or any(w is not None and w != n for w, n in zip(shape, x.shape)):
                raise ValueError(f"input {name!r} has shape {x.shape}; the model expects {_fmt_shape(shape)}")
            if batch is not None and x.shape[0] != batch:
                raise ValueError(f"input {name!r} has batch {x.shape[0]} but the other inputs have {batch}")
            batch = x.shape[0]
            out[name] = x
        return out

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def probabilities(outputs: Mapping[str, np.ndarray] | np.ndarray, key: str = "logits") -> np.ndarray:
    """Softmax over the last axis of ``outputs[key]`` (or of a bare logits array); float32 ``(B, C)``."""
    logits = outputs if isinstance(outputs, np.ndarray) else outputs[key]
    z = np.asarray(logits, dtype=np.float32)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    p: np.ndarray = e / e.sum(axis=-1, keepdims=True)
    return p


def _fmt_shape(shape: InputShape) -> str:
    dims = ("B" if i == 0 and n is None else ("?" if n is None else str(n)) for i, n in enumerate(shape))
    return "(" + ", ".join(dims) + ")"
