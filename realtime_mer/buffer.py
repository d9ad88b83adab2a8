"""Pre-allocated ring buffer of one track's aligned faces, with their frame numbers and times."""

from __future__ import annotations

import numpy as np


class FaceRing:
    """The last ``capacity`` images of one track, stored in place: no allocation per push.

    Args:
        capacity: number of frames kept (e.g. ``ceil(fps * longest_event_s) + margin``).
        shape: image shape, e.g. ``(128, 128, 3)``.
        dtype: image dtype (uint8 for aligned crops, float32 for magnified ones).
    """

    def __init__(self, capacity: int, shape: tuple[int, ...], dtype: np.dtype | type = np.uint8) -> None:
        if capacity < 2:
            raise ValueError(f"ring capacity must be at least 2 frames, got {capacity}")
        self.capacity = capacity
        self.images = np.zeros((capacity, *shape), dtype=dtype)
        self.indices = np.full(capacity, -1, dtype=np.int64)
        self.times = np.zeros(capacity, dtype=np.float64)
        self.captured = np.zeros(capacity, dtype=np.float64)
        self._next = 0
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @property
    def shape(self) -> tuple[int, ...]:
        return self.images.shape[1:]

    def push(self, index: int, t: float, image: np.ndarray, captured: float = 0.0) -> None:
        """Copy ``image`` (of ``shape``) into the oldest slot; ``index`` must increase.

        ``t`` is the frame's media time and ``captured`` its ``time.monotonic()`` capture time (s).
        """
        if self._count and index <= self.indices[(self._next - 1) % self.capacity]:
            raise ValueError(f"frame {index} pushed after frame {self.newest_index}: indices must increase")
        np.copyto(self.images[self._next], image, casting="same_kind")
        self.indices[self._next] = index
        self.times[self._next] = t
        self.captured[self._next] = captured
        self._next = (self._next + 1) % self.capacity
        self._count = min(self._count + 1, self.capacity)

    def next_image(self) -> np.ndarray:
        """The slot the next :meth:`push` writes, as a view: a producer that writes its image there
        and pushes that view copies nothing. Once the ring is full that slot holds the oldest frame,
        which is dropped now (it is dropped by the push anyway), so it is never read half-written."""
        if self._count == self.capacity:
            self._count -= 1
        return self.images[self._next]

    @property
    def newest_index(self) -> int:
        """Frame number of the newest image, -1 when empty."""
        return int(self.indices[(self._next - 1) % self.capacity]) if self._count else -1

    @property
    def oldest_index(self) -> int:
        """Frame number of the oldest image still held, -1 when empty."""
        return int(self.indices[self._order()[0]]) if self._count else -1

    def _order(self) -> np.ndarray:
        """Slots from oldest to newest."""
        start = (self._next - self._count) % self.capacity
        return (start + np.arange(self._count)) % self.capacity

    def slot(self, index: int) -> int | None:
        """Slot holding the newest frame with number <= ``index``; None if all held frames are later."""
        if not self._count:
            return None
        order = self._order()
        pos = int(np.searchsorted(self.indices[order], index, side="right")) - 1
        return None if pos < 0 else int(order[pos])

    def get(self, index: int) -> tuple[int, float, np.ndarray] | None:
        """``(frame number, t, image view)`` of the frame at or just before ``index``, or None.

        The view is overwritten once ``capacity`` newer frames are pushed: copy it to keep it.
        """
        s = self.slot(index)
        if s is None:
            return None
        return int(self.indices[s]), float(self.times[s]), self.images[s]

    def sequence(self, first: int, last: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Copies of the held frames numbered ``first..last`` inclusive:
        ``(indices (T,), times (T,), images (T, *shape))``."""
        order = self._order()
        idx = self.indices[order]
        sel = order[(idx >= first) & (idx <= last)]
        return self.indices[sel].copy(), self.times[sel].copy(), self.images[sel].copy()
