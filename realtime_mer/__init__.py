"""realtime-mer: live facial micro-expression spotting and recognition.

The public API, for running the pipeline on your own frames without the command line:

- :class:`StreamProcessor` spots micro- and macro-expressions in one stream, frame by frame
  (faces, alignment, EVM, spotting); :class:`Frame` is what it takes, :class:`Spotted` what it gives.
- :class:`Recognizer` labels spotted intervals from their onset and apex crops.
- :class:`Pipeline` runs sources (:class:`SourceSpec`) through threads into sinks
  (:func:`make_sink`), as ``realtime-mer`` does; :func:`run_pipeline` is the short form.
- :func:`load_pipeline_config` reads the settings (:class:`PipelineConfig`).
- Records: :class:`Event`, :class:`Interval`, :class:`Status`.

Names are imported when first used, so ``import realtime_mer`` stays quick.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "Event": "realtime_mer.types",
    "Frame": "realtime_mer.types",
    "Interval": "realtime_mer.types",
    "Status": "realtime_mer.types",
    "FrameView": "realtime_mer.types",
    "PipelineConfig": "realtime_mer.pipeline",
    "Pipeline": "realtime_mer.pipeline",
    "RunSummary": "realtime_mer.pipeline",
    "Spotted": "realtime_mer.pipeline",
    "StreamProcessor": "realtime_mer.pipeline",
    "load_pipeline_config": "realtime_mer.pipeline",
    "run_pipeline": "realtime_mer.pipeline",
    "SourceSpec": "realtime_mer.feeds",
    "read_streams_file": "realtime_mer.feeds",
    "Recognizer": "realtime_mer.recognize",
    "RecognizeConfig": "realtime_mer.recognize",
    "Spotter": "realtime_mer.spotting",
    "SpotConfig": "realtime_mer.spotting",
    "match_intervals": "realtime_mer.spotting",
    "make_sink": "realtime_mer.sinks",
    "Metrics": "realtime_mer.metrics",
    "UserError": "realtime_mer.errors",
}

__all__ = [  # grouped as in _EXPORTS
    "__version__",
    "Event",
    "Frame",
    "Interval",
    "Status",
    "FrameView",
    "PipelineConfig",
    "Pipeline",
    "RunSummary",
    "Spotted",
    "StreamProcessor",
    "load_pipeline_config",
    "run_pipeline",
    "SourceSpec",
    "read_streams_file",
    "Recognizer",
    "RecognizeConfig",
    "Spotter",
    "SpotConfig",
    "match_intervals",
    "make_sink",
    "Metrics",
    "UserError",
]

if TYPE_CHECKING:
    from realtime_mer.errors import UserError
    from realtime_mer.feeds import SourceSpec, read_streams_file
    from realtime_mer.metrics import Metrics
    from realtime_mer.pipeline import (
        Pipeline,
        PipelineConfig,
        RunSummary,
        Spotted,
        StreamProcessor,
        load_pipeline_config,
        run_pipeline,
    )
    from realtime_mer.recognize import RecognizeConfig, Recognizer
    from realtime_mer.sinks import make_sink
    from realtime_mer.spotting import SpotConfig, Spotter, match_intervals
    from realtime_mer.types import Event, Frame, FrameView, Interval, Status


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'realtime_mer' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
