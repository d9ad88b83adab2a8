"""The region CNN-LSTM run one step at a time: on each step of its window as the frame arrives.

The window of an interval (:func:`realtime_mer.inputs.region_window`) is the onset frame's six
regions and then every ``fps / rate``-th frame's, differenced from the onset's; the model reads it
after its last real step. Nothing in a step depends on a later frame, so the live path runs the
per-region CNNs and the LSTMs on each step when its frame arrives and carries the LSTM state per
track (:class:`RegionStream`); when the interval closes, its logits are those after the last step at
or before the offset, already computed. Intervals whose window was not streamed (a movement that
began before the track's stream could start) are run step by step at the close
(:meth:`StepRunner.run_window`), the same computation.

Steps go through an engine of the checkpoint exported with a one-step window (T = 1) and the LSTM
state as explicit inputs and outputs (``h0``, ``c0`` -> ``h1``, ``c1``), so ONNX Runtime, TensorRT
and torch all run it.

Example:
    >>> import numpy as np
    >>> from realtime_mer.models import build_model
    >>> from realtime_mer.models.checkpoint import ModelMeta
    >>> cfg = {"frames": 4, "rate": 30.0, "difference": 50.0}
    >>> runner = StepRunner(build_model("region-lstm", cfg), ModelMeta.from_spec("region-lstm", cfg), "torch")
    >>> crops = np.random.default_rng(0).integers(0, 255, (6, 128, 128, 3), dtype=np.uint8)
    >>> points = np.tile(np.float32([64, 64]), (68, 1)) + np.random.default_rng(1).normal(0, 20, (68, 2))
    >>> stream = runner.start(0, crops[0], points.astype(np.float32), fps=30.0)
    >>> for i in range(1, 6):
    ...     _ = stream.push(i, crops[i])
    >>> len(stream.steps), stream.logits_at(5).shape  # 4 steps: the window is full
    (4, (3,))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .inputs import InputSettings, region_step, region_stride

if TYPE_CHECKING:
    from torch import nn

    from .models.checkpoint import ModelMeta


THREADS = 1
"""Intra-op threads of a step engine (ONNX Runtime): a step is a small graph, and more threads than
free cores spin (4.8 ms against 7.9 ms a step on the 2-core Xeon while another process used a core)."""


class StepRunner:
    """One engine for the steps of region windows, shared by every track of a thread.

    Args:
        model: the loaded region CNN-LSTM.
        meta: its checkpoint metadata (window ``frames``, ``rate``, ``difference`` in ``config``).
        engine: the backend (:func:`realtime_mer.engines.make_engine`).
    """

    def __init__(self, model: nn.Module, meta: ModelMeta, engine: str = "auto") -> None:
        from .engines import make_engine
        from .models.checkpoint import ModelMeta

        self.meta = meta
        step_meta = ModelMeta.from_spec(meta.model, {**meta.config, "frames": 1}, classes=meta.classes,
                                        training=meta.training)  # fmt: skip
        self.engine = make_engine(engine, model=model, meta=step_meta, intra_op_threads=THREADS)  # type: ignore[arg-type]
        window = {t.name: tuple(t.shape) for t in meta.inputs if t.name not in ("h0", "c0")}
        self.frames = next(iter(window.values()))[0]
        self.settings = InputSettings.of_model(meta.config, window)
        self.state_shape = next(tuple(t.shape) for t in meta.inputs if t.name == "h0")
        zeros = np.zeros(self.state_shape, np.float32)
        self.step({k: np.zeros(v[1:], np.float32) for k, v in window.items()}, zeros, zeros)  # the first call now

    def start(self, index: int, crop: np.ndarray, points68: np.ndarray, fps: float) -> RegionStream:
        """A window starting at frame ``index`` (its onset) with that frame's ``(h, w, 3)`` crop and
        ``(68, 2)`` points; its first step runs now."""
        from .face.regions import regions

        boxes = regions(points68, (crop.shape[1], crop.shape[0]))
        first = region_step(self.settings, boxes, None, crop)
        offsets = region_stride(fps, self.settings.rate) * np.arange(self.frames)
        stream = RegionStream(self, index, boxes, first, offsets)
        stream.push(index, crop)
        return stream

    def step(
        self, regions: dict[str, np.ndarray], h: np.ndarray, c: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One step: ``regions`` name -> ``(3, h_i, w_i)``, state ``(6, hidden)`` -> logits ``(K,)``, h, c."""
        x = {k: v[None, None] for k, v in regions.items()}
        out = self.engine.predict({**x, "h0": h[None], "c0": c[None]})
        return out["logits"][0], out["h1"][0], out["c1"][0]

    def run_window(self, window: dict[str, np.ndarray]) -> np.ndarray:
        """Logits ``(K,)`` of one padded window of :func:`realtime_mer.inputs.region_window`
        (its ``length`` real steps), step by step."""
        h = np.zeros(self.state_shape, np.float32)
        c = np.zeros(self.state_shape, np.float32)
        logits = np.zeros(len(self.meta.classes), np.float32)
        for j in range(max(1, int(window["length"][0]))):
            logits, h, c = self.step({k: v[j] for k, v in window.items() if k != "length"}, h, c)
        return logits

    def close(self) -> None:
        self.engine.close()


@dataclass
class RegionStream:
    """One interval's window in progress: its steps so far, their logits, the LSTM state.

    Attributes:
        runner: the engine of the steps.
        start: frame number of the window's first frame (the onset it was started at).
        boxes: the six region boxes, fixed from the first frame's points.
        first: the first frame's regions (the difference reference).
        offsets: frame offsets from ``start`` of the window's steps.
        steps: frame numbers of the steps run so far; ``logits`` after each ``(K,)``.
    """

    runner: StepRunner
    start: int
    boxes: Sequence[tuple[str, float, float, float, float]]
    first: dict[str, np.ndarray]
    offsets: np.ndarray
    steps: list[int] = field(default_factory=list)
    logits: list[np.ndarray] = field(default_factory=list)
    h: np.ndarray | None = None
    c: np.ndarray | None = None

    def due(self, index: int) -> bool:
        """Whether frame ``index`` is the window's next step."""
        return index == self.next_index

    @property
    def next_index(self) -> int | None:
        """Frame number of the window's next step, None once it is full."""
        j = len(self.steps)
        return self.start + int(self.offsets[j]) if j < len(self.offsets) else None

    @property
    def stride(self) -> int:
        """Frames between steps."""
        return int(self.offsets[1] - self.offsets[0]) if len(self.offsets) > 1 else 1

    def push(self, index: int, crop: np.ndarray) -> bool:
        """Run the step of frame ``index`` if it is one (``(h, w, 3)`` crop); whether it ran."""
        if not self.due(index):
            return False
        if self.h is None or self.c is None:
            self.h = np.zeros(self.runner.state_shape, np.float32)
            self.c = np.zeros(self.runner.state_shape, np.float32)
        regions = region_step(self.runner.settings, self.boxes, self.first, crop)
        logits, self.h, self.c = self.runner.step(regions, self.h, self.c)
        self.steps.append(index)
        self.logits.append(logits)
        return True

    def logits_at(self, offset: int) -> np.ndarray | None:
        """Logits ``(K,)`` after the last step at or before frame ``offset`` (None: no step yet)."""
        k = int(np.searchsorted(np.asarray(self.steps), offset, side="right"))
        return self.logits[k - 1] if k else None
