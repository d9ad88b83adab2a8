"""Numba CUDA EVM, batched across faces: ``(N, H, W, C)`` crops in, one state slot per track on the device.

The same maths and table-driven stencils as :mod:`.reference` and :mod:`.numba_cpu`, one thread per
output sample. Device buffers are flat and planar like the CPU backend's, with a leading batch
axis: ``pyr``, ``frame`` and ``tmp`` are indexed by position in the batch, the filter states
``lp1``/``lp2`` by the track's slot, so any subset of the tracks can be magnified in one call.
Everything is allocated in the constructor; a call copies the crops in and the result out (pinned
host memory) on the magnifier's own stream and launches about ``6 * levels`` small kernels.

The GPU may fuse a multiply and an add (FMA), so results match the CPU backends to float32
rounding (~1e-6), not bit for bit. Importing this module needs no GPU; constructing
:class:`CudaMagnifier` does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numba import cuda, float32

from .core import INV255, Magnifier, MagnifyConfig, MagnifyError

_MODE_SET, _MODE_SUB_FROM_BASE, _MODE_ADD_BASE = 0, 1, 2
_BLOCK = (32, 4, 1)
_BLOCK_FLAT = 128


@cuda.jit
def _k_to_planar(img, n_items, scale, fwd, frame):
    """frame[b, c*H*W + y*W + x] = ``fwd @ (img[b, y, x] * scale)``."""
    x, y, b = cuda.grid(3)
    height, width, cin = img.shape[1], img.shape[2], img.shape[3]
    if x >= width or y >= height or b >= n_items:
        return
    p = y * width + x
    for c in range(fwd.shape[0]):
        acc = fwd[c, 0] * (float32(img[b, y, x, 0]) * scale)
        for k in range(1, cin):
            acc += fwd[c, k] * (float32(img[b, y, x, k]) * scale)
        frame[b, c * height * width + p] = acc


@cuda.jit
def _k_cols(src, src_off, dst, dst_off, channels, height, m, n, idx, w, start, n_items):
    """Taps along the last axis: dst (C, h, n) at dst_off from src (C, h, m) at src_off."""
    j, i, z = cuda.grid(3)
    if j >= n or i >= height or z >= n_items * channels:
        return
    b, c = z // channels, z % channels
    s = src_off + (c * height + i) * m
    col = start + j
    acc = w[0, col] * src[b, s + idx[0, col]]
    for t in range(1, idx.shape[0]):
        acc += w[t, col] * src[b, s + idx[t, col]]
    dst[b, dst_off + (c * height + i) * n + j] = acc


@cuda.jit
def _k_rows(src, src_off, dst, dst_off, base, base_off, mode, channels, m, n, width, idx, w, start, n_items):
    """Taps along axis 1: dst (C, n, wd) from src (C, m, wd); then set / base - acc / acc + base."""
    x, i, z = cuda.grid(3)
    if x >= width or i >= n or z >= n_items * channels:
        return
    b, c = z // channels, z % channels
    s = src_off + c * m * width + x
    r = start + i
    acc = w[0, r] * src[b, s + idx[0, r] * width]
    for t in range(1, idx.shape[0]):
        acc += w[t, r] * src[b, s + idx[t, r] * width]
    k = (c * n + i) * width + x
    if mode == _MODE_SET:
        dst[b, dst_off + k] = acc
    elif mode == _MODE_SUB_FROM_BASE:
        dst[b, dst_off + k] = base[b, base_off + k] - acc
    else:
        dst[b, dst_off + k] = acc + base[b, base_off + k]


@cuda.jit
def _k_iir(pyr, lp1, lp2, slots, first, offsets, gains, active, channels, c1, r1, c2, r2, n_items):
    """Band-pass and gain in place (``pyr`` becomes the deltas); first frames set the states."""
    i, b = cuda.grid(2)
    levels = offsets.shape[0] - 1
    if i >= offsets[levels] or b >= n_items:
        return
    lv = 0
    while i >= offsets[lv + 1]:
        lv += 1
    s = slots[b]
    x = pyr[b, i]
    if first[b]:
        lp1[s, i] = x
        lp2[s, i] = x
    elif active[lv]:
        c = (i - offsets[lv]) // ((offsets[lv + 1] - offsets[lv]) // channels)
        a = c1 * lp1[s, i] + r1 * x
        d = c2 * lp2[s, i] + r2 * x
        lp1[s, i] = a
        lp2[s, i] = d
        pyr[b, i] = gains[lv, c] * (a - d)
    elif lv == levels - 1:
        pyr[b, i] = 0


@cuda.jit
def _k_output(img, scale, frame, pyr, inv, first, clip, out, n_items):
    """out[b, y, x] = ``inv @ (frame + recon)`` (clipped); first frames pass the input through."""
    x, y, b = cuda.grid(3)
    height, width, cout = out.shape[1], out.shape[2], out.shape[3]
    if x >= width or y >= height or b >= n_items:
        return
    if first[b] and img.shape[3] == cout:
        for k in range(cout):
            out[b, y, x, k] = float32(img[b, y, x, k]) * scale
        return
    p, hw = y * width + x, height * width
    for k in range(cout):
        acc = inv[k, 0] * (frame[b, p] + (float32(0.0) if first[b] else pyr[b, p]))
        for c in range(1, inv.shape[1]):
            acc += inv[k, c] * (frame[b, c * hw + p] + (float32(0.0) if first[b] else pyr[b, c * hw + p]))
        out[b, y, x, k] = min(max(acc, float32(0.0)), float32(1.0)) if clip else acc


def _grid(nx: int, ny: int, nz: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Grid and block covering ``nx x ny x nz`` threads; blocks shrink to fit the small levels."""
    bx, by = min(_BLOCK[0], nx), min(_BLOCK[1], ny)
    return ((nx + bx - 1) // bx, (ny + by - 1) // by, nz), (bx, by, 1)


class CudaMagnifier(Magnifier):
    """Numba CUDA backend: up to ``capacity`` tracks, each with device-resident filter state.

    :meth:`process_batch` magnifies ``(N, H, W, C)`` crops of the tracks in ``slots`` in one go;
    :meth:`process` is the one-track interface on slot 0. A track that ends frees its slot with
    ``reset(slot)``; a new track on that slot starts with a first frame.
    """

    def __init__(self, config: MagnifyConfig, shape: tuple[int, int, int], fps: float, capacity: int = 1) -> None:
        if not cuda.is_available():
            raise MagnifyError(
                "magnify backend 'cuda' needs an NVIDIA GPU visible to numba (numba.cuda.is_available() is "
                "False); use backend 'numba' on this machine"
            )
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise MagnifyError(f"capacity must be a positive number of tracks, got {capacity!r}")
        super().__init__(config, shape, fps)
        plan = self.plan
        height, width, cin = self.shape
        self.capacity = capacity
        total, planar = int(plan.offsets[-1]), plan.channels * height * width
        self._stream = cuda.stream()
        self._tables = {
            name: cuda.to_device(np.ascontiguousarray(getattr(plan, name)))
            for name in ("fwd", "inv", "dn_idx", "dn_w", "up_idx", "up_w", "gains", "offsets")
        }
        self._tables["active"] = cuda.to_device(plan.active.astype(np.uint8))
        self._frame = cuda.device_array((capacity, planar), np.float32)
        self._tmp = cuda.device_array((capacity, planar), np.float32)
        self._pyr = cuda.device_array((capacity, total), np.float32)
        self._lp1 = cuda.device_array((capacity, total), np.float32)
        self._lp2 = cuda.device_array((capacity, total), np.float32)
        self._out = cuda.device_array((capacity, *self.out_shape), np.float32)
        self._img = {dt: cuda.device_array((capacity, height, width, cin), dt) for dt in (np.uint8, np.float32)}
        self._slots = cuda.device_array(capacity, np.int32)
        self._first = cuda.device_array(capacity, np.uint8)
        self._h_out = cuda.pinned_array((capacity, *self.out_shape), np.float32)
        self._h_slots = cuda.pinned_array(capacity, np.int32)
        self._h_first = cuda.pinned_array(capacity, np.uint8)
        self._all_slots = np.arange(capacity, dtype=np.int32)
        self._new = np.ones(capacity, dtype=bool)

    def reset(self, slot: int | None = None) -> None:
        """Forget one slot's track (or all): its next frame is a first frame."""
        if slot is None:
            self._new[:] = True
        elif 0 <= slot < self.capacity:
            self._new[slot] = True
        else:
            raise MagnifyError(f"slot {slot} is outside 0..{self.capacity - 1}")

    def _process(self, image: np.ndarray, out: np.ndarray | None) -> np.ndarray:
        result = self.process_batch(image[None], self._all_slots[:1])[0]
        if out is None:
            return result
        out = self.check_out(out, result)
        out[...] = result
        return out

    def process_batch(self, images: np.ndarray, slots: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Magnify ``images`` ``(N, H, W, C)`` (uint8 or float32 [0, 1]) of the tracks ``slots``.

        ``slots``: N distinct slot numbers in ``0..capacity-1`` (default ``0..N-1``). Returns float32
        ``(N, H, W, Cout)``, a view of pinned memory overwritten by the next call.
        """
        images = self._check_batch(images)
        n = images.shape[0]
        slots = self._all_slots[:n] if slots is None else self._check_slots(slots, n)
        plan, tab, st = self.plan, self._tables, self._stream
        height, width, _ = self.shape
        channels, levels, sizes, offs = plan.channels, plan.levels, plan.sizes, plan.offsets
        scale = INV255 if images.dtype == np.uint8 else np.float32(1.0)
        self._h_slots[:n] = slots
        self._h_first[:n] = self._new[slots]
        self._slots.copy_to_device(self._h_slots, stream=st)
        self._first.copy_to_device(self._h_first, stream=st)
        img = self._img[images.dtype.type]
        img[:n].copy_to_device(images, stream=st)
        frame, tmp, pyr = self._frame, self._tmp, self._pyr

        _k_to_planar[(*_grid(width, height, n), st)](img, n, scale, tab["fwd"], frame)
        src, src_off = frame, 0
        for lv in range(levels - 1):
            h0, w0, h1, w1 = (int(v) for v in (*sizes[lv], *sizes[lv + 1]))
            o0, o1 = int(offs[lv]), int(offs[lv + 1])
            ds, us = plan.dn_start[lv], plan.up_start[lv]
            self._rows(src, src_off, tmp, 0, tmp, 0, _MODE_SET, h0, h1, w0, tab["dn_idx"], tab["dn_w"], ds[0], n)
            self._cols(tmp, 0, pyr, o1, h1, w0, w1, tab["dn_idx"], tab["dn_w"], ds[1], n)
            if plan.active[lv]:
                self._cols(pyr, o1, tmp, 0, h1, w1, w0, tab["up_idx"], tab["up_w"], us[1], n)
                self._rows(
                    tmp, 0, pyr, o0, src, src_off, _MODE_SUB_FROM_BASE, h1, h0, w0, tab["up_idx"], tab["up_w"], us[0], n
                )
            src, src_off = pyr, o1

        total = int(offs[-1])
        _k_iir[((total + _BLOCK_FLAT - 1) // _BLOCK_FLAT, n), (_BLOCK_FLAT, 1), st](
            pyr, self._lp1, self._lp2, self._slots, self._first, tab["offsets"], tab["gains"], tab["active"],
            channels, self.c1, self.r1, self.c2, self.r2, n,
        )  # fmt: skip
        for lv in range(levels - 2, -1, -1):
            h0, w0, h1, w1 = (int(v) for v in (*sizes[lv], *sizes[lv + 1]))
            o0, o1 = int(offs[lv]), int(offs[lv + 1])
            us = plan.up_start[lv]
            mode = _MODE_ADD_BASE if plan.active[lv] else _MODE_SET
            self._cols(pyr, o1, tmp, 0, h1, w1, w0, tab["up_idx"], tab["up_w"], us[1], n)
            self._rows(tmp, 0, pyr, o0, pyr, o0, mode, h1, h0, w0, tab["up_idx"], tab["up_w"], us[0], n)
        _k_output[(*_grid(width, height, n), st)](
            img, scale, frame, pyr, tab["inv"], self._first, self.config.clip, self._out, n
        )
        self._out[:n].copy_to_host(self._h_out[:n], stream=st)
        st.synchronize()
        self._new[slots] = False
        return self._h_out[:n]

    def _cols(self, src, src_off, dst, dst_off, height, m, n_out, idx, w, start, n) -> None:
        grid, block = _grid(n_out, height, n * self.plan.channels)
        _k_cols[grid, block, self._stream](
            src, src_off, dst, dst_off, self.plan.channels, height, m, n_out, idx, w, int(start), n
        )

    def _rows(self, src, src_off, dst, dst_off, base, base_off, mode, m, n_out, width, idx, w, start, n) -> None:
        grid, block = _grid(width, n_out, n * self.plan.channels)
        _k_rows[grid, block, self._stream](
            src, src_off, dst, dst_off, base, base_off, mode, self.plan.channels, m, n_out, width, idx, w, int(start), n
        )

    def _check_batch(self, images: np.ndarray) -> np.ndarray:
        """``images`` as C-contiguous ``(N, H, W, C)``, 1 <= N <= capacity, or a MagnifyError."""
        if not isinstance(images, np.ndarray):
            raise MagnifyError(f"a batch must be a numpy array, got {type(images).__name__}")
        if images.ndim == 3 and self.shape[2] == 1:
            images = images[..., None]
        if images.ndim != 4 or images.shape[1:] != self.shape or not 1 <= images.shape[0] <= self.capacity:
            raise MagnifyError(
                f"a batch must be (N, *{self.shape}) with 1 <= N <= capacity {self.capacity}, got {images.shape}"
            )
        if images.dtype not in (np.uint8, np.float32):
            raise MagnifyError(f"crops must be uint8 (0-255) or float32 (0-1), got {images.dtype}")
        return np.ascontiguousarray(images)

    def _check_slots(self, slots: Sequence[int] | np.ndarray, n: int) -> np.ndarray:
        s = np.asarray(slots)
        if s.shape != (n,) or s.dtype.kind not in "iu" or len(set(s.tolist())) != n:
            raise MagnifyError(f"slots must be {n} distinct integers, one per crop, got {slots!r}")
        if s.min() < 0 or s.max() >= self.capacity:
            raise MagnifyError(f"slots must lie in 0..{self.capacity - 1}, got {slots!r}")
        return s
