"""Recognition of spotted intervals: aligned crops -> model input -> engine -> class probabilities.

Every registered model runs live. Its input is made by :mod:`realtime_mer.inputs`, the definitions
the trainer caches with: the RCN family and STRCN-G from the onset and apex crops, STRCN-A (EVM at the
checkpoint's test factor, then the difference-heat-map mask) and DTSCNN (flow sequences at 64 and 128
flows) from every crop of the interval; items from every track and stream are batched into one engine
call. The region CNN-LSTM (six regions fixed from the onset crop's points) runs its window a step at
a time, live as the frames arrive (:mod:`realtime_mer.region_stream`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .config import settings
from .flow import FlowMethod
from .inputs import STATE_INPUTS, InputSettings, input_def, input_kind, magnify_sequence, model_input
from .types import IntervalCrops

if TYPE_CHECKING:
    from .region_stream import StepRunner

log = logging.getLogger(__name__)


def needs_sequence(model: str) -> bool:
    """Whether registry model ``model`` reads every crop of an interval (not only onset and apex)."""
    from .models import get_spec

    return not input_def(input_kind(model, get_spec(model).family)).pair


@settings
class RecognizeConfig:
    """Which recognizer runs on each spotted interval.

    Attributes:
        model: registry name (``realtime-mer models``), or None to spot without recognizing.
        weights: a checkpoint path, or ``"default"`` for the weights shipped in the package.
        engine: ``auto`` (TensorRT, else ONNX Runtime, else torch), or one backend by name.
        flow: optical-flow method of the flow inputs (RCN, STRCN-G, DTSCNN).
        max_batch: most intervals recognized in one engine call.
    """

    model: str | None = "rcn-a"
    weights: str = "default"
    engine: Literal["auto", "tensorrt", "onnxruntime", "torch"] = "auto"
    flow: FlowMethod = "dis"
    max_batch: int = 32

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {self.max_batch}")


@dataclass(frozen=True)
class Recognition:
    """One interval's result: the top class, every class's probability, the stage times (ms)."""

    label: str
    probs: dict[str, float]
    input_ms: float
    engine_ms: float


class Recognizer:
    """Loads a checkpoint into an engine and classifies spotted intervals in batches."""

    def __init__(self, config: RecognizeConfig) -> None:
        from .engines import make_engine
        from .models.checkpoint import load_checkpoint

        if config.model is None:
            raise ValueError("RecognizeConfig.model is None: there is nothing to load")
        path = _weights_path(config)
        model, meta = load_checkpoint(path, expected_model=config.model)
        self.kind = input_kind(meta.model, _family(meta.model))
        self.input = input_def(self.kind)
        self.meta = meta
        self.config = config
        pre = meta.training.get("preprocess", {}) if isinstance(meta.training, dict) else {}
        alpha = float(pre.get("test_alpha", 0.0)) if self.input.magnified else 0.0
        shapes = {t.name: tuple(t.shape) for t in meta.inputs if t.name not in STATE_INPUTS}
        self.settings = InputSettings.of_model(meta.config, shapes, flow_method=config.flow, alpha=alpha)
        self.states = {t.name: tuple(t.shape) for t in meta.inputs if t.name in STATE_INPUTS}
        self.steps: StepRunner | None = None  # the region CNN-LSTM runs its window step by step
        if self.kind == "regions":
            from .region_stream import StepRunner

            self.steps = StepRunner(model, meta, config.engine)
            self.engine = self.steps.engine
        else:
            self.engine = make_engine(config.engine, model=model, meta=meta)
        log.info("recognizer: %s (%s input) from %s on %s", meta.model, self.kind, path, self.engine.describe())

    @property
    def name(self) -> str:
        return self.meta.model

    @property
    def needs_sequence(self) -> bool:
        """Whether :meth:`classify` needs every crop of an interval, not only onset and apex."""
        return not self.input.pair

    def make_input(self, item: IntervalCrops | tuple[np.ndarray, np.ndarray]) -> dict[str, np.ndarray]:
        """The model inputs of one interval (name -> array without the batch axis)."""
        if isinstance(item, tuple):
            item = IntervalCrops(item, 1)
        crops: Any = item.frames
        if self.settings.alpha:
            crops = magnify_sequence(np.asarray(crops), self.settings.alpha, item.fps)
        return model_input(self.kind, self.settings, crops, item.apex, item.points68, item.fps)

    def classify(self, items: Sequence[IntervalCrops | tuple[np.ndarray, np.ndarray]]) -> list[Recognition]:
        """Classify intervals (``(onset, apex)`` crop pairs are enough for the pair models); one engine
        call per ``max_batch`` items; the region CNN-LSTM's windows step by step (or their logits
        streamed, :attr:`IntervalCrops.logits`)."""
        if self.steps is not None:
            return [self._classify_window(item) for item in items]
        from .engines import probabilities

        out: list[Recognition] = []
        for start in range(0, len(items), self.config.max_batch):
            chunk = items[start : start + self.config.max_batch]
            t0 = time.perf_counter()
            made = [self.make_input(item) for item in chunk]
            n = len(chunk)
            x = {k: np.stack([m[k] for m in made]) for k in made[0]}
            x.update({k: np.zeros((n, *shape), np.float32) for k, shape in self.states.items()})
            t1 = time.perf_counter()
            p = probabilities(self.engine.predict(x))
            t2 = time.perf_counter()
            for row in p:
                k = int(np.argmax(row))
                out.append(
                    Recognition(
                        self.meta.classes[k],
                        dict(zip(self.meta.classes, map(float, row))),
                        (t1 - t0) * 1e3 / n,
                        (t2 - t1) * 1e3 / n,
                    )
                )
        return out

    def _classify_window(self, item: IntervalCrops | tuple[np.ndarray, np.ndarray]) -> Recognition:
        from .engines import probabilities

        assert self.steps is not None
        t0 = time.perf_counter()
        logits = item.logits if isinstance(item, IntervalCrops) else None
        if logits is None:
            window = self.make_input(item)
            t1 = time.perf_counter()
            logits = self.steps.run_window(window)
        else:
            t1 = t0
        row = probabilities(np.asarray(logits)[None])[0]
        t2 = time.perf_counter()
        label = self.meta.classes[int(np.argmax(row))]
        return Recognition(label, dict(zip(self.meta.classes, map(float, row))), (t1 - t0) * 1e3, (t2 - t1) * 1e3)

    def warm_up(self, size: tuple[int, int] = (128, 128)) -> None:
        """One classification of a blank interval of ``size = (w, h)`` crops: the engine's first call
        (allocations, kernel selection) happens now, not on the first live event."""
        frames = np.zeros((8, size[1], size[0], 3), np.uint8)
        frames[4:] = 1
        points = np.zeros((68, 2), np.float32)
        points[:] = (size[0] / 2, size[1] / 2)  # every region centred: valid boxes
        self.classify([IntervalCrops(frames, 4, points)])

    def close(self) -> None:
        self.engine.close()


def step_runner(config: RecognizeConfig) -> StepRunner | None:
    """A :class:`StepRunner` of the configured model when it is the region CNN-LSTM (the live path
    runs its window a step a frame, :mod:`realtime_mer.region_stream`), else None."""
    if config.model is None or input_kind(config.model, _family(config.model)) != "regions":
        return None
    from .models.checkpoint import load_checkpoint
    from .region_stream import StepRunner

    model, meta = load_checkpoint(_weights_path(config), expected_model=config.model)
    return StepRunner(model, meta, config.engine)


def _family(model: str) -> str:
    from .models import get_spec

    return get_spec(model).family


def _weights_path(config: RecognizeConfig) -> Path:
    if config.weights != "default":
        return Path(config.weights)
    from .weights import default_weights

    assert config.model is not None
    return default_weights(config.model)
