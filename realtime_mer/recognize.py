"""Recognition of spotted intervals: onset->apex crops -> model input -> engine -> class probabilities.

The live path runs the models whose input is built from an interval's onset and apex crops: the RCN
family (the 3-channel flow + strain map, 60x60 by default) and STRCN-G (2-channel flow, 300x245).
Items from every track and stream are batched into one engine call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from .config import settings
from .errors import UserError
from .flow import FlowMethod, flow_strain_map, strcn_g_input

log = logging.getLogger(__name__)

LIVE_FAMILIES = ("rcn", "strcn-g")


@settings
class RecognizeConfig:
    """Which recognizer runs on each spotted interval.

    Attributes:
        model: registry name (``realtime-mer models``), or None to spot without recognizing.
        weights: a checkpoint path, or ``"default"`` for the weights shipped in the package.
        engine: ``auto`` (TensorRT, else ONNX Runtime, else torch), or one backend by name.
        flow: optical-flow method for the onset->apex map.
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
    """Loads a checkpoint into an engine and classifies onset/apex crop pairs in batches."""

    def __init__(self, config: RecognizeConfig) -> None:
        from .engines import make_engine
        from .models.checkpoint import load_checkpoint

        if config.model is None:
            raise ValueError("RecognizeConfig.model is None: there is nothing to load")
        path = _weights_path(config)
        model, meta = load_checkpoint(path, expected_model=config.model)
        family = "strcn-g" if meta.model == "strcn-g" else _family(meta.model)
        if family not in LIVE_FAMILIES:
            raise UserError(
                f"model {meta.model!r} needs frame sequences, which the live path does not assemble; "
                f"live recognizers: the RCN family (rcn, rcn-a, rcn-s, rcn-w, rcn-p, rcn-c, rcn-f) and strcn-g"
            )
        self.family = family
        self.meta = meta
        self.config = config
        self.input_name = meta.inputs[0].name
        h, w = meta.inputs[0].shape[-2:]
        self.input_hw = (h, w)
        self.engine = make_engine(config.engine, model=model, meta=meta)
        log.info("recognizer: %s from %s on %s", meta.model, path, self.engine.describe())

    @property
    def name(self) -> str:
        return self.meta.model

    def make_input(self, onset: np.ndarray, apex: np.ndarray) -> np.ndarray:
        """The model input of one interval: ``(C, h, w)`` float32 from two ``(H, W, 3)`` uint8 crops."""
        if self.family == "strcn-g":
            return strcn_g_input(onset, apex, size=self.input_hw, method=self.config.flow)
        m = flow_strain_map(onset, apex, size=self.input_hw, method=self.config.flow)
        return np.ascontiguousarray(m.transpose(2, 0, 1))

    def classify(self, pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[Recognition]:
        """Classify onset/apex pairs; one engine call per ``max_batch`` pairs."""
        from .engines import probabilities

        out: list[Recognition] = []
        for start in range(0, len(pairs), self.config.max_batch):
            chunk = pairs[start : start + self.config.max_batch]
            t0 = time.perf_counter()
            x = np.stack([self.make_input(a, b) for a, b in chunk])
            t1 = time.perf_counter()
            p = probabilities(self.engine.predict({self.input_name: x}))
            t2 = time.perf_counter()
            n = len(chunk)
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

    def warm_up(self, size: tuple[int, int] = (128, 128)) -> None:
        """One classification of a blank pair of ``size = (w, h)`` crops: the engine's first call
        (allocations, kernel selection) happens now, not on the first live event."""
        blank = np.zeros((size[1], size[0], 3), np.uint8)
        self.classify([(blank, blank)])

    def close(self) -> None:
        self.engine.close()


def _family(model: str) -> str:
    from .models import get_spec

    return get_spec(model).family


def _weights_path(config: RecognizeConfig) -> Path:
    if config.weights != "default":
        return Path(config.weights)
    from .weights import default_weights

    assert config.model is not None
    return default_weights(config.model)
