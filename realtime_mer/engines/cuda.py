"""CUDA device memory and streams in the device's PRIMARY context, for the TensorRT engine.

TensorRT, torch and Numba must share one CUDA context per GPU, the primary one. Two providers:

- :class:`TorchMemory` (preferred whenever ``torch.cuda.is_available()``): torch tensors as buffers
  and a torch stream; torch itself lives in the primary context.
- :class:`CudaPythonMemory`: NVIDIA's cuda-python driver bindings (``cuda.bindings.driver``, or the
  older ``cuda.cuda``): ``cuDevicePrimaryCtxRetain`` once, then ``cuCtxPushCurrent``/``PopCurrent``
  around each use, so any thread may call the engine.
- :class:`PyCudaMemory`: pycuda, the same pattern through ``Device.retain_primary_context()`` and the
  context's ``push``/``pop``; used when neither of the above is installed.

Both expose the same small interface: typed device allocations by pointer, pinned (where possible)
host staging arrays, async copies on the provider's stream, and :meth:`CudaMemory.activate`.
"""

from __future__ import annotations

import contextlib
import importlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import numpy as np

from realtime_mer.engines.base import BackendUnavailableError, EngineError


def torch_cuda_available() -> bool:
    """Whether torch is built with CUDA and sees a GPU."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def cuda_driver() -> ModuleType | None:
    """cuda-python's driver-API module, or None when cuda-python is not installed."""
    for name in ("cuda.bindings.driver", "cuda.cuda"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


def pycuda_driver() -> ModuleType | None:
    """``pycuda.driver`` (initialised), or None when pycuda is not installed or finds no driver."""
    try:
        drv = importlib.import_module("pycuda.driver")
        drv.init()
    except Exception:  # ImportError, or pycuda's LogicError/RuntimeError without a driver
        return None
    return drv


def cuda_available() -> bool:
    """Whether a CUDA GPU is usable through torch, cuda-python or pycuda."""
    if torch_cuda_available():
        return True
    drv = cuda_driver()
    if drv is None:
        pc = pycuda_driver()
        return pc is not None and pc.Device.count() > 0
    try:
        _check(drv, drv.cuInit(0))
        return bool(_check(drv, drv.cuDeviceGetCount())[0] > 0)
    except EngineError:
        return False


def gpu_info(index: int = 0) -> tuple[str, str]:
    """``(GPU name, "major.minor" compute capability)`` of GPU ``index``, via torch or cuda-python."""
    if torch_cuda_available():
        import torch

        major, minor = torch.cuda.get_device_capability(index)
        return torch.cuda.get_device_name(index), f"{major}.{minor}"
    drv = cuda_driver()
    if drv is None:
        pc = pycuda_driver()
        if pc is None:
            raise BackendUnavailableError(
                "cannot query the GPU: torch has no CUDA here and neither cuda-python nor pycuda is installed"
            )
        dev = pc.Device(index)
        return dev.name(), "{}.{}".format(*dev.compute_capability())
    _check(drv, drv.cuInit(0))
    (dev,) = _check(drv, drv.cuDeviceGet(index))
    (name,) = _check(drv, drv.cuDeviceGetName(256, dev))
    attr = drv.CUdevice_attribute
    (major,) = _check(drv, drv.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev))
    (minor,) = _check(drv, drv.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev))
    return name.split(b"\0", 1)[0].decode(), f"{major}.{minor}"


def gpu_label(index: int = 0) -> str:
    """``"cuda:N (GPU name)"``, or ``"cuda:N"`` when no library can name the GPU."""
    try:
        return f"cuda:{index} ({gpu_info(index)[0]})"
    except (BackendUnavailableError, EngineError):
        return f"cuda:{index}"


def make_memory(index: int = 0) -> CudaMemory:
    """The preferred memory provider for GPU ``index``: torch if it has CUDA, else cuda-python, else pycuda."""
    if torch_cuda_available():
        return TorchMemory(index)
    if cuda_driver() is not None:
        return CudaPythonMemory(index)
    if pycuda_driver() is not None:
        return PyCudaMemory(index)
    raise BackendUnavailableError(
        "no CUDA memory provider: torch has no CUDA here and neither cuda-python nor pycuda is installed "
        "(pip install cuda-python, or a CUDA build of torch)"
    )


class CudaMemory(ABC):
    """Device buffers, host staging arrays and one stream on GPU ``index``.

    Attributes:
        stream: the raw ``cudaStream_t`` handle (an int) that work is queued on.
    """

    stream: int

    @abstractmethod
    def device_array(self, nbytes: int) -> int:
        """Allocate ``nbytes`` of device memory, owned by this object; returns the device pointer."""

    @abstractmethod
    def host_array(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """A host array for staging copies (page-locked where the provider can)."""

    @abstractmethod
    def htod(self, dst: int, src: np.ndarray) -> None:
        """Queue a copy of the C-contiguous ``src`` to device pointer ``dst`` on :attr:`stream`."""

    @abstractmethod
    def dtoh(self, dst: np.ndarray, src: int) -> None:
        """Queue a copy of ``dst.nbytes`` from device pointer ``src`` into ``dst`` on :attr:`stream`."""

    @abstractmethod
    def synchronize(self) -> None:
        """Wait until everything queued on :attr:`stream` is done."""

    @abstractmethod
    def activate(self) -> contextlib.AbstractContextManager[None]:
        """Make the GPU's primary context current in the calling thread for the ``with`` block."""

    @abstractmethod
    def close(self) -> None:
        """Free every allocation and release the context."""


class TorchMemory(CudaMemory):
    """Buffers are torch CUDA tensors; the stream is a torch stream (torch uses the primary context)."""

    def __init__(self, index: int = 0) -> None:
        import torch

        self._torch = torch
        self._device = torch.device("cuda", index)
        self._stream = torch.cuda.Stream(self._device)  # type: ignore[no-untyped-call]
        self.stream = self._stream.cuda_stream
        self._buffers: dict[int, Any] = {}  # pointer -> the torch tensor that owns it

    def device_array(self, nbytes: int) -> int:
        t = self._torch.empty(max(nbytes, 1), dtype=self._torch.uint8, device=self._device)
        self._buffers[t.data_ptr()] = t
        return t.data_ptr()

    def host_array(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        t = self._torch.from_numpy(np.empty(0, dtype))
        return self._torch.empty(shape, dtype=t.dtype, pin_memory=True).numpy()

    def htod(self, dst: int, src: np.ndarray) -> None:
        with self._torch.cuda.stream(self._stream):
            self._buffers[dst][: src.nbytes].copy_(self._bytes(src), non_blocking=True)

    def dtoh(self, dst: np.ndarray, src: int) -> None:
        with self._torch.cuda.stream(self._stream):
            self._bytes(dst).copy_(self._buffers[src][: dst.nbytes], non_blocking=True)

    def _bytes(self, a: np.ndarray) -> Any:  # a flat uint8 tensor view of a C-contiguous array
        return self._torch.from_numpy(a.reshape(-1).view(np.uint8))

    def synchronize(self) -> None:
        self._stream.synchronize()

    @contextlib.contextmanager
    def activate(self) -> Iterator[None]:
        with self._torch.cuda.device(self._device):
            yield

    def close(self) -> None:
        self._buffers.clear()


class CudaPythonMemory(CudaMemory):
    """Driver-API allocations in the retained primary context, pushed around each use."""

    def __init__(self, index: int = 0) -> None:
        drv = cuda_driver()
        if drv is None:
            raise BackendUnavailableError("cuda-python is not installed: pip install cuda-python")
        self._drv = drv
        _check(drv, drv.cuInit(0))
        (self._dev,) = _check(drv, drv.cuDeviceGet(index))
        (self._ctx,) = _check(drv, drv.cuDevicePrimaryCtxRetain(self._dev))
        with self.activate():
            (self._stream,) = _check(drv, drv.cuStreamCreate(drv.CUstream_flags.CU_STREAM_NON_BLOCKING))
        self.stream = int(self._stream)
        self._allocs: list[object] = []

    @contextlib.contextmanager
    def activate(self) -> Iterator[None]:
        _check(self._drv, self._drv.cuCtxPushCurrent(self._ctx))
        try:
            yield
        finally:
            _check(self._drv, self._drv.cuCtxPopCurrent())

    def device_array(self, nbytes: int) -> int:
        with self.activate():
            (ptr,) = _check(self._drv, self._drv.cuMemAlloc(max(nbytes, 1)))
        self._allocs.append(ptr)
        return int(ptr)

    def host_array(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        return np.empty(shape, dtype)  # pageable: the async copies then complete before returning

    def htod(self, dst: int, src: np.ndarray) -> None:
        _check(self._drv, self._drv.cuMemcpyHtoDAsync(dst, src.ctypes.data, src.nbytes, self._stream))

    def dtoh(self, dst: np.ndarray, src: int) -> None:
        _check(self._drv, self._drv.cuMemcpyDtoHAsync(dst.ctypes.data, src, dst.nbytes, self._stream))

    def synchronize(self) -> None:
        _check(self._drv, self._drv.cuStreamSynchronize(self._stream))

    def close(self) -> None:
        if self._ctx is None:
            return
        with self.activate():
            for ptr in self._allocs:
                _check(self._drv, self._drv.cuMemFree(ptr))
            _check(self._drv, self._drv.cuStreamDestroy(self._stream))
        self._allocs.clear()
        _check(self._drv, self._drv.cuDevicePrimaryCtxRelease(self._dev))
        self._ctx = None


class PyCudaMemory(CudaMemory):
    """pycuda allocations in the retained primary context, pushed around each use."""

    def __init__(self, index: int = 0) -> None:
        drv = pycuda_driver()
        if drv is None:
            raise BackendUnavailableError("pycuda is not installed or finds no CUDA driver: pip install pycuda")
        self._drv = drv
        self._ctx = drv.Device(index).retain_primary_context()
        with self.activate():
            self._stream = drv.Stream()
        self.stream = int(self._stream.handle)
        self._allocs: dict[int, Any] = {}  # pointer -> pycuda allocation

    @contextlib.contextmanager
    def activate(self) -> Iterator[None]:
        self._ctx.push()
        try:
            yield
        finally:
            self._drv.Context.pop()

    def device_array(self, nbytes: int) -> int:
        with self.activate():
            alloc = self._drv.mem_alloc(max(nbytes, 1))
        self._allocs[int(alloc)] = alloc
        return int(alloc)

    def host_array(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        with self.activate():
            pinned: np.ndarray = self._drv.pagelocked_empty(shape, dtype)
        return pinned

    def htod(self, dst: int, src: np.ndarray) -> None:
        with self.activate():
            self._drv.memcpy_htod_async(dst, src, self._stream)

    def dtoh(self, dst: np.ndarray, src: int) -> None:
        with self.activate():
            self._drv.memcpy_dtoh_async(dst, src, self._stream)

    def synchronize(self) -> None:
        with self.activate():
            self._stream.synchronize()

    def close(self) -> None:
        if self._ctx is None:
            return
        with self.activate():
            for alloc in self._allocs.values():
                alloc.free()
        self._allocs.clear()
        self._ctx.detach()
        self._ctx = None


def _check(drv: ModuleType, result: Any) -> tuple[Any, ...]:
    """Unpack a cuda-python ``(CUresult, *values)`` tuple; a failure is an EngineError naming the call."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != drv.CUresult.CUDA_SUCCESS:
        _, msg = drv.cuGetErrorString(err)
        raise EngineError(f"CUDA driver call failed: {err} ({msg.decode() if msg else 'no message'})")
    return tuple(values)
