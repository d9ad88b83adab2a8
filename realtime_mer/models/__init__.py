"""Torch models of the seed papers and their registry.

Importing this package registers every model: ``rcn``, ``rcn-a``, ``rcn-s``, ``rcn-w``, ``rcn-p``,
``rcn-c``, ``rcn-f`` (seed 003), ``strcn-a``, ``strcn-g`` (seed 001), ``region-lstm`` (seed 002) and
``dtscnn`` (seed 004). Output convention, for all of them: the first output is ``logits``, class
logits ``(B, K)`` before the softmax (the engines apply it); further outputs are named in
``ModelSpec.outputs`` (the region model's LSTM state, DTSCNN's per-stream logits).
"""

from . import dtscnn, rcn, region_lstm, strcn
from .registry import ModelSpec, TensorSpec, build_model, get_spec, list_specs, register

__all__ = [
    "ModelSpec",
    "TensorSpec",
    "build_model",
    "dtscnn",
    "get_spec",
    "list_specs",
    "rcn",
    "region_lstm",
    "register",
    "strcn",
]
