"""The ONNX Runtime backend: CPUExecutionProvider, or CUDAExecutionProvider where onnxruntime-gpu has it."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from realtime_mer.engines.base import BackendUnavailableError, Engine, EngineError
from realtime_mer.engines.cuda import gpu_label
from realtime_mer.models.checkpoint import CheckpointError
from realtime_mer.models.export import read_onnx_meta

log = logging.getLogger(__name__)


def ort_cuda_available() -> bool:
    """Whether the installed onnxruntime has the CUDA execution provider."""
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


class OnnxRuntimeEngine(Engine):
    """Run an ONNX file with ONNX Runtime; input and output names come from the file.

    Args:
        onnx_path: the model file (from :func:`realtime_mer.models.export.export_onnx`).
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (needs onnxruntime-gpu).
        intra_op_threads: threads inside one operator; None lets ONNX Runtime pick (one per core).
    """

    name = "onnxruntime"

    def __init__(self, onnx_path: str | Path, *, device: str = "cpu", intra_op_threads: int | None = None) -> None:
        import onnxruntime as ort

        path = Path(onnx_path)
        if not path.is_file():
            raise EngineError(f"ONNX file {path} does not exist: export it first (realtime_mer.models.export)")
        self._index = int(device.partition(":")[2] or 0) if device.startswith("cuda") else None
        if self._index is not None:
            if not ort_cuda_available():
                raise BackendUnavailableError(
                    f"onnxruntime {ort.__version__} here has no CUDAExecutionProvider "
                    "(install onnxruntime-gpu instead of onnxruntime), or use device cpu"
                )
            providers = [("CUDAExecutionProvider", {"device_id": self._index}), "CPUExecutionProvider"]
        elif device == "cpu":
            providers = ["CPUExecutionProvider"]
        else:
            raise ValueError(f"device {device!r} is not one of 'cpu', 'cuda', 'cuda:N'")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        if intra_op_threads is not None:
            opts.intra_op_num_threads = intra_op_threads
        self.intra_op_threads = intra_op_threads
        try:
            self._session = ort.InferenceSession(str(path), opts, providers=providers)
        except Exception as e:
            raise EngineError(f"ONNX Runtime cannot load {path}: {e}") from e
        if self._index is not None and self._session.get_providers()[0] != "CUDAExecutionProvider":
            log.warning("onnxruntime could not start CUDA for %s and runs it on the CPU", path.name)
            self._index = None
        super().__init__(
            {i.name: tuple(d if isinstance(d, int) else None for d in i.shape) for i in self._session.get_inputs()},
            tuple(o.name for o in self._session.get_outputs()),
        )
        try:
            self.meta = read_onnx_meta(path)
        except CheckpointError:
            self.meta = None

    @property
    def device(self) -> str:
        if self._index is not None:
            return gpu_label(self._index)
        return "cpu"

    def describe(self) -> str:
        threads = f", {self.intra_op_threads} intra-op threads" if self.intra_op_threads else ""
        return super().describe() + threads

    def predict(self, inputs: Mapping[str, np.ndarray] | np.ndarray) -> dict[str, np.ndarray]:
        outs = self._session.run(self.output_names, self.feed(inputs))
        return {n: np.asarray(o, dtype=np.float32) for n, o in zip(self.output_names, outs)}

    def close(self) -> None:
        self._session = None
