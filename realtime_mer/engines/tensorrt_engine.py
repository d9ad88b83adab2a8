"""The TensorRT backend, written against the TensorRT 10 Python API.

Build: ``OnnxParser`` into an explicit-batch network (``create_network(0)``; explicit batch is the
only mode in TensorRT 10), a builder config with a workspace pool limit, FP16 and optionally INT8
(``IInt8EntropyCalibrator2`` fed from calibration batches), one optimization profile for the
dynamic batch axis ``(min, opt, max)``, then ``build_serialized_network``. Serialized engines are
cached on disk (:mod:`realtime_mer.engines.cache`) under a key of ONNX sha256, TensorRT version,
GPU, compute capability, precision and batch profile.

Run: the named-tensor API (``num_io_tensors``, ``get_tensor_name``, ``get_tensor_mode``,
``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``). Buffers are allocated once at
the profile's maximum batch in the GPU's primary context (:mod:`realtime_mer.engines.cuda`: torch
tensors when torch has CUDA, else cuda-python), so TensorRT shares the context with torch and Numba.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from realtime_mer.engines.base import BackendUnavailableError, Engine, EngineError
from realtime_mer.engines.cache import EngineCache, EngineKey
from realtime_mer.engines.cuda import CudaMemory, gpu_info, gpu_label, make_memory
from realtime_mer.files import file_sha256
from realtime_mer.models.checkpoint import CheckpointError
from realtime_mer.models.export import read_onnx_meta

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8")
DEFAULT_BATCH_PROFILE = (1, 4, 32)
INSTALL_HINT = (
    "tensorrt is not installed: install NVIDIA's tensorrt wheels from pypi.nvidia.com "
    "(pip install tensorrt --extra-index-url https://pypi.nvidia.com), or use --engine onnxruntime"
)

CalibrationData = Sequence[Mapping[str, np.ndarray]]
"""INT8 calibration batches: each maps every input name to a float32 ``(B, *shape)`` array, same B."""


def import_tensorrt() -> ModuleType:
    """The ``tensorrt`` module; a :class:`BackendUnavailableError` with the install hint otherwise."""
    try:
        import tensorrt
    except ImportError as e:
        raise BackendUnavailableError(f"{INSTALL_HINT} ({e})") from e
    module: ModuleType = tensorrt
    return module


def check_batch_profile(profile: Sequence[int]) -> tuple[int, int, int]:
    """``(min, opt, max)`` as ints with ``1 <= min <= opt <= max``; a ValueError otherwise."""
    p = tuple(int(n) for n in profile)
    if len(p) != 3 or not 1 <= p[0] <= p[1] <= p[2]:
        raise ValueError(f"batch profile must be (min, opt, max) with 1 <= min <= opt <= max, got {tuple(profile)}")
    return p[0], p[1], p[2]


def calibration_digest(batches: CalibrationData | None) -> str:
    """Hex sha256 over the calibration batches' names, shapes and bytes; ``""`` for None."""
    if batches is None:
        return ""
    h = hashlib.sha256()
    for batch in batches:
        for name in sorted(batch):
            x = np.ascontiguousarray(batch[name], dtype=np.float32)
            h.update(f"{name}{x.shape}".encode())
            h.update(x.tobytes())
    return h.hexdigest()


def build_serialized_engine(
    trt: ModuleType,
    logger: object,
    onnx_path: Path,
    *,
    precision: str,
    batch_profile: tuple[int, int, int],
    workspace_bytes: int,
    calibrator: object | None = None,
    calibration_batch: int = 1,
) -> bytes:
    """Parse ``onnx_path`` and build a serialized engine; an EngineError carries the parser's errors.

    ``logger`` is the ``trt.ILogger`` shared with the runtime (TensorRT keeps one per process).
    """
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineError(f"TensorRT's ONNX parser rejected {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    calib_profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        t = network.get_input(i)
        shape = tuple(t.shape)
        if shape[0] == -1:
            lo, opt, hi = ((n, *shape[1:]) for n in batch_profile)
        else:
            lo = opt = hi = shape
        profile.set_shape(t.name, lo, opt, hi)
        calib = (calibration_batch, *shape[1:]) if shape[0] == -1 else shape
        calib_profile.set_shape(t.name, calib, calib, calib)
    config.add_optimization_profile(profile)
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = calibrator
        config.set_calibration_profile(calib_profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineError(f"TensorRT could not build an engine from {onnx_path} ({precision}); see its log above")
    return bytes(serialized)


def _make_calibrator(trt: ModuleType, batches: CalibrationData, mem: CudaMemory, cache_file: Path) -> object:
    """An ``IInt8EntropyCalibrator2`` that uploads ``batches`` one by one; the cache goes to ``cache_file``."""
    first = batches[0]
    size = next(iter(first.values())).shape[0]

    class _Calibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[name-defined,misc]  # trt is a module value
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self._next = iter(batches)
            self._ptrs = {n: mem.device_array(np.asarray(x, np.float32).nbytes) for n, x in first.items()}

        def get_batch_size(self) -> int:
            return int(size)

        def get_batch(self, names: list[str]) -> list[int] | None:
            batch = next(self._next, None)
            if batch is None:
                return None
            for n in names:
                x = np.ascontiguousarray(batch[n], dtype=np.float32)
                if x.shape[0] != size:
                    raise EngineError(f"calibration batches must all have batch {size}; input {n!r} has {x.shape}")
                mem.htod(self._ptrs[n], x)
            mem.synchronize()
            return [self._ptrs[n] for n in names]

        def read_calibration_cache(self) -> bytes | None:
            return cache_file.read_bytes() if cache_file.is_file() else None

        def write_calibration_cache(self, cache: Any) -> None:  # TensorRT's buffer of the cache
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            cache_file.write_bytes(bytes(cache))

    return _Calibrator()


class TensorRTEngine(Engine):
    """Run an ONNX file through a (cached) TensorRT engine on one GPU.

    Args:
        onnx_path: the model file (dynamic batch axis for a batch profile to apply).
        precision: ``"fp16"`` (default), ``"fp32"`` or ``"int8"`` (needs ``calibration``).
        batch_profile: ``(min, opt, max)`` batch sizes the engine accepts; tuned for ``opt``.
        device: ``"cuda"`` or ``"cuda:N"``.
        workspace_mb: builder workspace pool limit in MiB.
        calibration: INT8 calibration batches (e.g. a few hundred real samples).
        cache_dir: engine cache folder; default ``$XDG_CACHE_HOME/realtime-mer/engines``.
    """

    name = "tensorrt"

    def __init__(
        self,
        onnx_path: str | Path,
        *,
        precision: str = "fp16",
        batch_profile: Sequence[int] = DEFAULT_BATCH_PROFILE,
        device: str = "cuda:0",
        workspace_mb: int = 1024,
        calibration: CalibrationData | None = None,
        cache_dir: str | Path | None = None,
    ) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r} is not one of {PRECISIONS}")
        if precision == "int8" and not calibration:
            raise ValueError("INT8 needs calibration data: pass calibration=[{input name: array}, ...] or use fp16")
        if not device.startswith("cuda"):
            raise ValueError(f"TensorRT runs on a GPU: device must be 'cuda' or 'cuda:N', not {device!r}")
        trt = import_tensorrt()
        path = Path(onnx_path)
        if not path.is_file():
            raise EngineError(f"ONNX file {path} does not exist: export it first (realtime_mer.models.export)")
        try:
            self.meta = read_onnx_meta(path)
        except CheckpointError:
            self.meta = None
        model = self.meta.model if self.meta else path.stem
        self._index = int(device.partition(":")[2] or 0)
        self.precision = precision
        profile = check_batch_profile(batch_profile)
        gpu, cc = gpu_info(self._index)
        digest = calibration_digest(calibration)
        key = EngineKey(file_sha256(path), trt.__version__, gpu, cc, precision, profile, digest)
        self._mem = make_memory(self._index)
        cache = EngineCache(cache_dir)
        logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(logger)

        def build() -> bytes:
            calibrator = None
            if precision == "int8":
                calib_file = cache.root / f"{model}-{key.calibration[:16]}.calib"
                assert calibration is not None  # int8 without calibration data is refused above
                calibrator = _make_calibrator(trt, calibration, self._mem, calib_file)
            return build_serialized_engine(
                trt,
                logger,
                path,
                precision=precision,
                batch_profile=profile,
                workspace_bytes=workspace_mb << 20,
                calibrator=calibrator,
                calibration_batch=next(iter(calibration[0].values())).shape[0] if calibration else 1,
            )

        with self._mem.activate():
            self._engine, self.cache_path, self.built = cache.load_or_build(
                key, build, self._runtime.deserialize_cuda_engine, model
            )
            self._context = self._engine.create_execution_context()
            self._setup_io(trt)

    def _setup_io(self, trt: ModuleType) -> None:
        """Read the IO tensors, allocate device + host buffers for the maximum batch, bind addresses."""
        eng = self._engine
        names = [eng.get_tensor_name(i) for i in range(eng.num_io_tensors)]
        inputs = [n for n in names if eng.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        shapes = {n: tuple(eng.get_tensor_shape(n)) for n in names}
        first = inputs[0]
        if shapes[first][0] == -1:
            lo, _, hi = eng.get_tensor_profile_shape(first, 0)
            self._batch_range = (int(lo[0]), int(hi[0]))
        else:
            self._batch_range = (shapes[first][0], shapes[first][0])
        self._host: dict[str, np.ndarray] = {}
        self._dev: dict[str, int] = {}
        for n in names:
            per = shapes[n][1:]
            if any(d < 0 for d in per):
                raise EngineError(f"tensor {n!r} has dynamic non-batch dimensions {shapes[n]}: export with fixed sizes")
            host = self._mem.host_array((self._batch_range[1], *per), np.dtype(trt.nptype(eng.get_tensor_dtype(n))))
            self._host[n] = host
            self._dev[n] = self._mem.device_array(host.nbytes)
            self._context.set_tensor_address(n, self._dev[n])
        dims = {n: (None if shapes[n][0] == -1 else shapes[n][0], *shapes[n][1:]) for n in inputs}
        super().__init__(dims, tuple(outputs))

    @property
    def device(self) -> str:
        return gpu_label(self._index)

    def describe(self) -> str:
        lo, hi = self._batch_range
        return f"{super().describe()}, batch {lo}-{hi}, engine {self.cache_path.name}"

    def predict(self, inputs: Mapping[str, np.ndarray] | np.ndarray) -> dict[str, np.ndarray]:
        feed = self.feed(inputs)
        batch = next(iter(feed.values())).shape[0]
        lo, hi = self._batch_range
        if not lo <= batch <= hi:
            raise ValueError(
                f"batch {batch} is outside this TensorRT engine's profile {lo}-{hi}: split the batch "
                "or rebuild with a wider batch_profile"
            )
        with self._mem.activate():
            for name, x in feed.items():
                host = self._host[name][:batch]
                np.copyto(host, x, casting="same_kind")
                self._mem.htod(self._dev[name], host)
                self._context.set_input_shape(name, x.shape)
            if not self._context.execute_async_v3(self._mem.stream):
                raise EngineError("TensorRT execute_async_v3 failed; see the TensorRT log above")
            for name in self.output_names:
                self._mem.dtoh(self._host[name][:batch], self._dev[name])
            self._mem.synchronize()
        return {n: self._host[n][:batch].astype(np.float32) for n in self.output_names}

    def close(self) -> None:
        self._context = None
        self._engine = None
        self._mem.close()
