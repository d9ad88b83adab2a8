"""ONNX export of registered models: one self-contained file with a dynamic batch axis and metadata.

The exporter is torch's dynamo exporter (``torch.onnx.export(..., dynamo=True)``, which uses
onnxscript): the legacy TorchScript exporter is deprecated in torch 2.x. The weights are embedded
(no ``.onnx.data`` side file), every input and output is named after the model's spec, axis 0 of
every input and output is the symbolic ``batch`` dimension, and the model's :class:`ModelMeta` is
stored in the ONNX ``metadata_props`` under ``realtime_mer.*`` keys.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import onnx
import onnx_ir as ir
import torch
from torch import nn
from torch.export import Dim, ShapesCollection

from realtime_mer.errors import UserError
from realtime_mer.files import atomic_path
from realtime_mer.models.checkpoint import CheckpointError, ModelMeta
from realtime_mer.models.registry import ModelSpec

DEFAULT_OPSET = 18


class ExportError(UserError, RuntimeError):
    """The model could not be exported to a valid ONNX file; the message says why."""


def export_onnx(
    model: nn.Module,
    spec: ModelMeta | ModelSpec | str,
    path: str | Path,
    *,
    config: dict[str, Any] | None = None,
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
) -> Path:
    """Export ``model`` to ``path`` as a checked, self-contained ONNX file.

    Args:
        model: the module; exported in eval mode on its own device, inputs float32 ``(B, *shape)``.
        spec: the model's metadata, or its registry spec / name (then ``config`` gives the overrides
            it was built with).
        path: destination ``.onnx`` file; parent folders are created.
        opset: ONNX opset version (default 18, the dynamo exporter's native opset).
        dynamic_batch: make axis 0 of every input and output symbolic (``batch``); otherwise the
            file is fixed to batch 1.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ExportError: the exporter or ``onnx.checker`` rejected the model.
    """
    if isinstance(spec, ModelMeta):
        if config is not None:
            raise ValueError("export_onnx: pass config only with a spec or model name, not with a ModelMeta")
        meta = spec
    else:
        meta = ModelMeta.from_spec(spec, config)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    try:
        device = next(iter(model.parameters())).device
    except StopIteration:
        device = torch.device("cpu")
    batch = 2 if dynamic_batch else 1  # torch.export specialises a size-1 example dimension
    g = torch.Generator().manual_seed(0)
    args = tuple(torch.randn((batch, *s.shape), generator=g).to(device) for s in meta.inputs)
    dynamic_shapes = None
    if dynamic_batch:  # keyed by tensor, so it fits any forward signature (``*inputs`` too)
        dynamic_shapes = ShapesCollection()
        batch_dim = Dim("batch", min=1)
        for a in args:
            dynamic_shapes[a] = {0: batch_dim}
    try:
        with _quiet_exporter():
            program = torch.onnx.export(
                model,
                args,
                dynamo=True,
                input_names=list(meta.input_names),
                output_names=list(meta.outputs),
                opset_version=opset,
                dynamic_shapes=dynamic_shapes,  # type: ignore[arg-type]  # a ShapesCollection is documented
                verbose=False,
            )
    except Exception as e:
        raise ExportError(f"torch.onnx.export failed for model {meta.model!r}: {type(e).__name__}: {e}") from e
    finally:
        model.train(was_training)
    if program is None:
        raise ExportError(f"torch.onnx.export returned no program for model {meta.model!r}")
    graph = program.model.graph
    for value in (*graph.inputs, *graph.outputs):
        if dynamic_batch and value.shape is not None and not isinstance(value.shape[0], int):
            value.shape = ir.Shape(["batch", *value.shape[1:]])
    for key, text in meta.to_strings().items():
        program.model.metadata_props[key] = text
    with atomic_path(path) as tmp:
        program.save(tmp, external_data=False)
        try:
            onnx.checker.check_model(str(tmp), full_check=True)
        except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
            raise ExportError(
                f"onnx.checker rejected the export of {meta.model!r} (torch {torch.__version__}): {e}; the "
                "exports are tested with torch 2.13 (torch 2.11's export of the region CNN-LSTM is rejected), "
                "or run the model with --engine torch"
            ) from e
    return path


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's deprecation notes and its 'torchvision is not installed' log lines."""
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            for category in (FutureWarning, DeprecationWarning, UserWarning):
                warnings.simplefilter("ignore", category)
            yield
    finally:
        registration.setLevel(level)


def read_onnx_meta(path: str | Path) -> ModelMeta:
    """The :class:`ModelMeta` stored by :func:`export_onnx`; a CheckpointError if absent or malformed."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"ONNX file {path} does not exist")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise CheckpointError(f"{path} is not a readable ONNX file ({e}): re-export it") from e
    return ModelMeta.from_strings({p.key: p.value for p in proto.metadata_props}, str(path))
