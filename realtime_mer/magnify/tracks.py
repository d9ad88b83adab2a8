"""EVM for the face tracks of one stream: a filter state per track, a frame's tracks magnified together.

With ``backend="cuda"`` the tracks share :class:`~realtime_mer.magnify.numba_cuda.CudaMagnifier`\\ s
of ``batch`` slots each, and the crops of one frame go to the GPU in one ``process_batch`` call
per magnifier (one copy in, about ``6 * levels`` launches, one copy out, whatever the number of
faces). The CPU backends keep one magnifier per track and call them in turn. A batched Numba CPU
call (one dispatch, one loop over the faces) did not pay on a 2-core Xeon, 128x128 crops, medians
of 21 x 100 calls, per-track calls vs one batched call: 1 face 0.28 vs 0.26 ms, 2 faces 0.67 vs
0.68 ms, 4 faces 1.18 vs 0.98 ms (other runs: -3 % to +25 %, as noisy as the machine); a call's
overhead is microseconds against ~0.27 ms of work per face. A ``prange`` over the faces halved
the time with the other core idle (2 faces 0.33 ms, 4 faces 0.58 ms) but took 3.7-6.9 ms for one
face when the other core was busy, as it is in the pipeline (MediaPipe, decoding).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .core import Magnifier, MagnifyConfig, MagnifyError, make_magnifier


def _check_fps(fps: float) -> float:
    if isinstance(fps, bool) or not isinstance(fps, int | float) or not math.isfinite(fps) or fps <= 0:
        raise MagnifyError(f"fps must be a positive finite number, got {fps!r}")
    return float(fps)


class TrackMagnifiers:
    """The magnifiers of one stream's face tracks.

    Args:
        config: the EVM settings; ``backend`` picks per-track CPU magnifiers or shared CUDA ones.
        shape: ``(H, W, C)`` of the crops.
        batch: tracks one CUDA magnifier holds (e.g. the most faces per frame); a stream with more
            live tracks gets another one.

    :meth:`process` returns float32 ``(H, W, Cout)`` arrays owned by the magnifiers: each is
    overwritten by the next call.
    """

    def __init__(self, config: MagnifyConfig, shape: tuple[int, ...], batch: int = 1) -> None:
        if len(shape) != 3:
            raise MagnifyError(f"crop shape must be (H, W, C), got {shape!r}")
        self.config = config
        self.shape: tuple[int, int, int] = (int(shape[0]), int(shape[1]), int(shape[2]))
        self.batched = config.backend == "cuda"
        self.batch = max(1, int(batch))
        self._fps: dict[int, float] = {}
        self._single: dict[int, Magnifier] = {}  # CPU: one magnifier per track
        self._slot: dict[int, tuple[int, int]] = {}  # CUDA: track -> (magnifier, slot)
        self._pools: list = []  # CudaMagnifier
        self._free: list[list[int]] = []  # free slots of each CUDA magnifier
        self._stage: dict[tuple[int, str], np.ndarray] = {}  # (magnifier, dtype): contiguous batch of crops

    def __contains__(self, track: object) -> bool:
        return track in self._fps

    def __len__(self) -> int:
        return len(self._fps)

    def add(self, track: int, fps: float) -> None:
        """Start ``track`` at ``fps``: its first crop is passed through and starts its filters."""
        if track in self._fps:
            raise ValueError(f"track {track} has a magnifier already")
        fps = _check_fps(fps)
        if not self.batched:
            self._single[track] = make_magnifier(self.config, self.shape, fps)
        else:
            pool = next((i for i, free in enumerate(self._free) if free), None)
            if pool is None:
                from .numba_cuda import CudaMagnifier

                self._pools.append(CudaMagnifier(self.config, self.shape, fps, capacity=self.batch))
                self._free.append(list(range(self.batch - 1, -1, -1)))
                pool = len(self._pools) - 1
            slot = self._free[pool].pop()
            self._pools[pool].reset(slot)
            self._slot[track] = (pool, slot)
        self._fps[track] = fps

    def remove(self, track: int) -> None:
        """End ``track`` (its slot goes to the next new track)."""
        del self._fps[track]
        if self.batched:
            pool, slot = self._slot.pop(track)
            self._free[pool].append(slot)
        else:
            del self._single[track]

    def set_fps(self, track: int, fps: float) -> None:
        """Give ``track`` new IIR coefficients for ``fps``; its filter state is kept."""
        if not self.batched:
            self._single[track].set_fps(fps)
        self._fps[track] = _check_fps(fps)

    def process(self, tracks: Sequence[int], images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Magnify one crop of each of ``tracks`` (distinct); the outputs, in the same order."""
        if len(tracks) != len(images):
            raise ValueError(f"{len(tracks)} tracks but {len(images)} crops")
        if not self.batched:
            return [self._single[t].process(image) for t, image in zip(tracks, images)]
        return self._process_batched(tracks, images)

    def _process_batched(self, tracks: Sequence[int], images: Sequence[np.ndarray]) -> list[np.ndarray]:
        # one call per (magnifier, fps): the tracks of a stream share its rate except while one
        # waits to follow a new rate until its movement ends
        groups: dict[tuple[int, float], list[int]] = {}
        for i, t in enumerate(tracks):
            groups.setdefault((self._slot[t][0], self._fps[t]), []).append(i)
        calls_per_pool: dict[int, int] = {}
        for pool, _ in groups:
            calls_per_pool[pool] = calls_per_pool.get(pool, 0) + 1
        out: list[np.ndarray] = [np.empty(0, np.float32)] * len(tracks)
        for (pool, fps), members in groups.items():
            mag = self._pools[pool]
            if mag.fps != fps:
                mag.set_fps(fps)
            slots = [self._slot[tracks[i]][1] for i in members]
            dtype = np.dtype(images[members[0]].dtype)
            stage = self._stage.get((pool, dtype.str))
            if stage is None:
                stage = self._stage[(pool, dtype.str)] = np.empty((self.batch, *self.shape), dtype)
            batch = stage[: len(members)]
            for row, i in zip(batch, members):
                np.copyto(row, np.asarray(images[i]).reshape(self.shape), casting="same_kind")
            result = mag.process_batch(batch, slots)
            shared = calls_per_pool[pool] > 1  # a later call on this magnifier overwrites its output
            for row, i in zip(result, members):
                out[i] = row.copy() if shared else row
        return out
