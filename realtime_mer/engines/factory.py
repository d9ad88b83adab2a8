"""``make_engine``: pick and build a backend; ``auto`` prefers TensorRT, then ONNX Runtime, then torch.

A backend is one entry in :data:`BACKENDS`: a function saying why it cannot run here (or None) and
its constructor.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from torch import nn

from realtime_mer import files
from realtime_mer.engines.base import BackendUnavailableError, Engine, EngineError
from realtime_mer.engines.cuda import cuda_available, torch_cuda_available
from realtime_mer.engines.tensorrt_engine import (
    DEFAULT_BATCH_PROFILE,
    INSTALL_HINT,
    CalibrationData,
    check_batch_profile,
)
from realtime_mer.models.checkpoint import ModelMeta
from realtime_mer.models.export import export_onnx, read_onnx_meta

log = logging.getLogger(__name__)

EngineKind = Literal["auto", "tensorrt", "onnxruntime", "torch"]
AUTO_ORDER = ("tensorrt", "onnxruntime", "torch")


@dataclass(frozen=True)
class EngineRequest:
    """Everything :func:`make_engine` was asked for, handed to each backend's constructor."""

    onnx_path: Path | None
    model: nn.Module | None
    meta: ModelMeta | None
    device: str
    precision: str
    intra_op_threads: int | None
    batch_profile: tuple[int, int, int]
    calibration: CalibrationData | None
    cache_dir: Path


def _tensorrt_unavailable(req: EngineRequest) -> str | None:
    if req.device == "cpu":
        return "device cpu was asked for"
    if importlib.util.find_spec("tensorrt") is None:
        return INSTALL_HINT
    if not cuda_available():
        return "no CUDA GPU is visible (torch.cuda / cuda-python)"
    return None


def _onnxruntime_unavailable(req: EngineRequest) -> str | None:
    if importlib.util.find_spec("onnxruntime") is None:
        return "onnxruntime is not installed: pip install onnxruntime (or onnxruntime-gpu)"
    if req.device.startswith("cuda"):
        from realtime_mer.engines.onnxruntime_engine import ort_cuda_available

        if not ort_cuda_available():
            return "onnxruntime has no CUDAExecutionProvider here: install onnxruntime-gpu, or use device cpu"
    return None


def _torch_unavailable(req: EngineRequest) -> str | None:
    if req.model is None:
        return "the torch backend runs an nn.Module: pass model= (e.g. from load_checkpoint), not only an ONNX file"
    if req.device.startswith("cuda") and not torch_cuda_available():
        return "torch has no usable CUDA here (a CPU build, or no GPU visible): use device cpu"
    return None


def _make_tensorrt(req: EngineRequest) -> Engine:
    from realtime_mer.engines.tensorrt_engine import TensorRTEngine

    return TensorRTEngine(
        _onnx_for(req),
        precision=req.precision,
        batch_profile=req.batch_profile,
        device="cuda:0" if req.device == "auto" else req.device,
        calibration=req.calibration,
        cache_dir=req.cache_dir / "engines",
    )


def _make_onnxruntime(req: EngineRequest) -> Engine:
    from realtime_mer.engines.onnxruntime_engine import OnnxRuntimeEngine, ort_cuda_available

    device = req.device
    if device == "auto":
        device = "cuda:0" if ort_cuda_available() and cuda_available() else "cpu"
    return OnnxRuntimeEngine(_onnx_for(req), device=device, intra_op_threads=req.intra_op_threads)


def _make_torch(req: EngineRequest) -> Engine:
    from realtime_mer.engines.torch_engine import TorchEngine

    meta = req.meta or (read_onnx_meta(req.onnx_path) if req.onnx_path else None)
    if meta is None:
        raise ValueError("the torch backend needs the model's metadata: pass meta= (load_checkpoint returns it)")
    device = req.device
    if device == "auto":
        device = "cuda:0" if torch_cuda_available() else "cpu"
    if req.model is None:
        raise ValueError("the torch backend needs the model itself: pass model= (an nn.Module)")
    return TorchEngine(req.model, meta, device=device, precision=req.precision)


BACKENDS: dict[str, tuple[Callable[[EngineRequest], str | None], Callable[[EngineRequest], Engine]]] = {
    "tensorrt": (_tensorrt_unavailable, _make_tensorrt),
    "onnxruntime": (_onnxruntime_unavailable, _make_onnxruntime),
    "torch": (_torch_unavailable, _make_torch),
}


def make_engine(
    kind: EngineKind = "auto",
    onnx_path: str | Path | None = None,
    model: nn.Module | None = None,
    *,
    meta: ModelMeta | None = None,
    device: str = "auto",
    precision: str = "fp16",
    intra_op_threads: int | None = None,
    batch_profile: Sequence[int] = DEFAULT_BATCH_PROFILE,
    calibration: CalibrationData | None = None,
    cache_dir: str | Path | None = None,
) -> Engine:
    """Make an inference engine.

    Args:
        kind: ``"tensorrt"``, ``"onnxruntime"``, ``"torch"``, or ``"auto"``: TensorRT when it imports
            and a CUDA GPU is visible, else ONNX Runtime, else torch. The choice is logged.
        onnx_path: exported model (needed by TensorRT and ONNX Runtime; made from ``model`` and
            ``meta`` into the cache when absent).
        model: the ``nn.Module`` (needed by torch).
        meta: the model's metadata (input names/shapes, outputs); read from ``onnx_path`` if absent.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        precision: a request: ``"fp16"`` (TensorRT, torch on CUDA), ``"int8"`` (TensorRT with
            ``calibration``), ``"fp32"``. A backend that cannot honour it runs fp32; ``describe()``
            says what runs.
        intra_op_threads: ONNX Runtime threads per operator (None: one per core).
        batch_profile: TensorRT ``(min, opt, max)`` batch sizes.
        calibration: TensorRT INT8 calibration batches.
        cache_dir: root of the caches (exported ONNX, TensorRT engines); default
            ``$XDG_CACHE_HOME/realtime-mer``.

    Raises:
        BackendUnavailableError: the requested backend cannot run here; the message says why and
            what to use instead.
        ValueError: an unknown kind or precision, or neither ``onnx_path`` nor ``model`` given.
    """
    if kind != "auto" and kind not in BACKENDS:
        raise ValueError(f"engine kind {kind!r} is not one of 'auto', {', '.join(map(repr, BACKENDS))}")
    if precision not in ("fp32", "fp16", "int8"):
        raise ValueError(f"precision {precision!r} is not one of 'fp32', 'fp16', 'int8'")
    if onnx_path is None and model is None:
        raise ValueError("make_engine needs onnx_path= (an exported model) or model= (an nn.Module) or both")
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"device {device!r} is not one of 'auto', 'cpu', 'cuda', 'cuda:N'")
    req = EngineRequest(
        onnx_path=Path(onnx_path) if onnx_path is not None else None,
        model=model,
        meta=meta,
        device="cuda:0" if device == "cuda" else device,
        precision=precision,
        intra_op_threads=intra_op_threads,
        batch_profile=check_batch_profile(batch_profile),
        calibration=calibration,
        cache_dir=Path(cache_dir) if cache_dir is not None else files.cache_dir(),
    )
    if kind != "auto":
        unavailable, make = BACKENDS[kind]
        reason = unavailable(req)
        if reason:
            raise BackendUnavailableError(f"engine {kind} is unavailable: {reason}")
        engine = make(req)
        log.info("engine: %s", engine.describe())
        return engine
    skipped: list[str] = []
    for name in AUTO_ORDER:
        unavailable, make = BACKENDS[name]
        reason = unavailable(req)
        if reason is None:
            try:
                engine = make(req)
            except EngineError as e:
                reason = f"failed: {e}"
            else:
                log.info("engine auto: picked %s (%s)%s", name, engine.describe(), _skipped(skipped))
                return engine
        skipped.append(f"{name}: {reason}")
    raise BackendUnavailableError("no engine can run this model here -" + _skipped(skipped))


def _skipped(reasons: list[str]) -> str:
    return "; skipped " + "; ".join(reasons) if reasons else ""


def _onnx_for(req: EngineRequest) -> Path:
    """``req.onnx_path``, or an export of ``req.model`` cached under a digest of its metadata and weights."""
    if req.onnx_path is not None:
        return req.onnx_path
    if req.meta is None or req.model is None:
        raise ValueError("exporting the model for this backend needs model= and meta= (load_checkpoint returns both)")
    h = hashlib.sha256()
    for k, v in sorted(req.meta.to_strings().items()):
        h.update(f"{k}={v}".encode())
    for k, t in req.model.state_dict().items():
        h.update(k.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    path = req.cache_dir / "onnx" / f"{req.meta.model}-{h.hexdigest()[:16]}.onnx"
    if not path.is_file():
        log.info("exporting %s to %s", req.meta.model, path)
        export_onnx(req.model, req.meta, path)
    return path
