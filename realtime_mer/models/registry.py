"""The model registry: name -> how to build the module, what it eats, and its default config.

A model file registers itself with :func:`register`; ``realtime_mer.models`` imports every model
file so that the registry is complete after ``import realtime_mer.models``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class TensorSpec:
    """One named input or output tensor; ``shape`` excludes the batch dimension."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    doc: str = ""


@dataclass(frozen=True)
class ModelSpec:
    """What the engines and the trainer need to know about a registered model.

    Attributes:
        name: registry key, e.g. ``"rcn-a"``.
        family: paper family: ``"rcn"``, ``"strcn"``, ``"region-lstm"`` or ``"dtscnn"``.
        build: ``config -> nn.Module``; the config is ``default_config`` updated by the caller.
        input_spec: ``config -> inputs``; the input tensors for a config (shapes depend on it).
        outputs: names of the output tensors, in ``forward``'s return order.
        default_config: keyword arguments of ``build`` (``realtime-mer models`` lists them).
        classes: default class names, in output order.
        doc: one line: paper, table, input.
    """

    name: str
    family: str
    build: Callable[[dict[str, Any]], nn.Module]
    input_spec: Callable[[dict[str, Any]], tuple[TensorSpec, ...]]
    outputs: tuple[str, ...]
    default_config: dict[str, Any] = field(default_factory=dict)
    classes: tuple[str, ...] = ("negative", "positive", "surprise")
    doc: str = ""

    def config(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """``default_config`` updated with ``overrides``; unknown keys are a ValueError."""
        cfg = dict(self.default_config)
        unknown = sorted(set(overrides or {}) - set(cfg))
        if unknown:
            raise ValueError(f"model {self.name}: unknown config key(s) {unknown}; known: {sorted(cfg)}")
        cfg.update(overrides or {})
        return cfg

    def inputs(self, overrides: dict[str, Any] | None = None) -> tuple[TensorSpec, ...]:
        """Input tensor specs for the given config."""
        return self.input_spec(self.config(overrides))

    def example_inputs(
        self, batch: int = 1, overrides: dict[str, Any] | None = None, seed: int = 0
    ) -> tuple[torch.Tensor, ...]:
        """Random float32 inputs of the right shapes, ``(batch, *shape)`` each."""
        g = torch.Generator().manual_seed(seed)
        return tuple(torch.randn((batch, *s.shape), generator=g) for s in self.inputs(overrides))


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add ``spec`` to the registry; a second model with the same name is a ValueError."""
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def get_spec(name: str) -> ModelSpec:
    """The spec of model ``name``; an unknown name is a KeyError listing the known ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; registered models: {', '.join(sorted(_REGISTRY))}") from None


def list_specs() -> list[ModelSpec]:
    """All registered specs, sorted by name."""
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def build_model(name: str, overrides: dict[str, Any] | None = None) -> nn.Module:
    """A freshly initialised module of model ``name`` in eval mode."""
    spec = get_spec(name)
    return spec.build(spec.config(overrides)).eval()
