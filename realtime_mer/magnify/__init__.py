"""Eulerian Video Magnification, streamed per face track (MIT Laplacian pyramid + causal IIR band-pass).

``make_magnifier(config, shape, fps)`` gives a :class:`Magnifier` of ``config.backend``:
``"numba"`` (CPU, default), ``"reference"`` (NumPy) or ``"cuda"`` (Numba CUDA; batched across faces
with :class:`realtime_mer.magnify.numba_cuda.CudaMagnifier`). :class:`TrackMagnifiers` holds a
stream's per-track magnifiers and magnifies a frame's tracks together (one CUDA call for all).
Importing this package needs no GPU.
"""

from .core import (
    Magnifier,
    MagnifyConfig,
    MagnifyError,
    Plan,
    auto_levels,
    coefficient_from_hz,
    hz_from_coefficient,
    make_magnifier,
    make_plan,
)
from .tracks import TrackMagnifiers

__all__ = [
    "MagnifyConfig",
    "MagnifyError",
    "Magnifier",
    "Plan",
    "TrackMagnifiers",
    "auto_levels",
    "coefficient_from_hz",
    "hz_from_coefficient",
    "make_magnifier",
    "make_plan",
]
