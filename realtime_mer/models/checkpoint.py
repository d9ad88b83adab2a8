"""Checkpoints: a registered model's weights plus the metadata needed to rebuild it.

Two formats, chosen by the file suffix when saving and by the file's content when loading:

- safetensors (``.safetensors``): the state dict, with the metadata in the header's
  ``__metadata__`` as JSON strings (see :meth:`ModelMeta.to_strings`);
- torch (``.pt``, ``.pth``, ``.ckpt``): ``{"state_dict": ..., "meta": {key: json string}}``, read back
  with ``torch.load(weights_only=True)`` so that loading never runs pickled code.

The same metadata strings go into an exported ONNX model's ``metadata_props``
(:mod:`realtime_mer.models.export`).
"""

from __future__ import annotations

import json
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from realtime_mer import __version__
from realtime_mer.errors import UserError
from realtime_mer.files import atomic_path
from realtime_mer.models.registry import ModelSpec, TensorSpec, get_spec

log = logging.getLogger(__name__)

META_PREFIX = "realtime_mer."
SAFETENSORS_SUFFIXES = (".safetensors",)
TORCH_SUFFIXES = (".pt", ".pth", ".ckpt")


class CheckpointError(UserError, ValueError):
    """A checkpoint file is missing, corrupt, or does not fit the model; the message says what to do."""


@dataclass(frozen=True)
class ModelMeta:
    """What a checkpoint or an ONNX file says about the model it holds.

    Attributes:
        model: registry name, e.g. ``"rcn-a"``.
        config: the full build config (the spec's defaults with the overrides applied).
        classes: class names in output order.
        inputs: input tensors; shapes exclude the batch dimension.
        outputs: output tensor names, in ``forward``'s return order.
        version: the realtime-mer version that wrote the file.
        training: free description of the training data and run (dataset, protocol, epochs...).
    """

    model: str
    config: dict[str, Any]
    classes: tuple[str, ...]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[str, ...]
    version: str = __version__
    training: dict[str, Any] | str | None = None

    @classmethod
    def from_spec(
        cls,
        spec: ModelSpec | str,
        config: dict[str, Any] | None = None,
        *,
        classes: tuple[str, ...] | None = None,
        training: dict[str, Any] | str | None = None,
    ) -> ModelMeta:
        """Metadata of registered model ``spec`` built with ``config`` (overrides of its defaults)."""
        spec = get_spec(spec) if isinstance(spec, str) else spec
        cfg = spec.config(config)
        return cls(
            model=spec.name,
            config=cfg,
            classes=tuple(classes or spec.classes),
            inputs=tuple(spec.input_spec(cfg)),
            outputs=tuple(spec.outputs),
            training=training,
        )

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.inputs)

    def to_strings(self) -> dict[str, str]:
        """``{"realtime_mer.<field>": json}``: the form stored in safetensors, torch and ONNX files."""
        values = {
            "model": self.model,
            "config": self.config,
            "classes": list(self.classes),
            "inputs": [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype, "doc": s.doc} for s in self.inputs],
            "outputs": list(self.outputs),
            "version": self.version,
            "training": self.training,
        }
        return {META_PREFIX + k: json.dumps(v, sort_keys=True) for k, v in values.items()}

    @classmethod
    def from_strings(cls, strings: dict[str, str], where: str = "file") -> ModelMeta:
        """Inverse of :meth:`to_strings`; missing or malformed keys are a :class:`CheckpointError`."""
        needed = ("model", "config", "classes", "inputs", "outputs", "version")
        missing = [k for k in needed if META_PREFIX + k not in strings]
        if missing:
            raise CheckpointError(
                f"{where} has no realtime-mer metadata ({', '.join(META_PREFIX + k for k in missing)} missing): "
                "it was not written by realtime-mer's save_checkpoint/export_onnx; re-save it with them"
            )
        try:
            v = {k[len(META_PREFIX) :]: json.loads(s) for k, s in strings.items() if k.startswith(META_PREFIX)}
            inputs = tuple(
                TensorSpec(d["name"], tuple(int(n) for n in d["shape"]), d.get("dtype", "float32"), d.get("doc", ""))
                for d in v["inputs"]
            )
            return cls(
                model=str(v["model"]),
                config=dict(v["config"]),
                classes=tuple(v["classes"]),
                inputs=inputs,
                outputs=tuple(v["outputs"]),
                version=str(v["version"]),
                training=v.get("training"),
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{where} has malformed realtime-mer metadata ({e!r}); re-save it") from e


class _Loaded(NamedTuple):
    state_dict: dict[str, torch.Tensor]
    meta: ModelMeta


def save_checkpoint(model: nn.Module, path: str | Path, meta: ModelMeta) -> Path:
    """Write ``model``'s state dict and ``meta`` to ``path``; the suffix picks the format.

    ``.safetensors`` writes safetensors; ``.pt``/``.pth``/``.ckpt`` write a torch file. Any other
    suffix is a :class:`CheckpointError`. Parent folders are created. Returns the path.
    """
    path = Path(path)
    state = {k: v.detach().to("cpu").clone().contiguous() for k, v in model.state_dict().items()}
    if path.suffix not in SAFETENSORS_SUFFIXES + TORCH_SUFFIXES:
        raise CheckpointError(
            f"cannot tell the checkpoint format from {path.name!r}: use a name ending in "
            f"{', '.join(SAFETENSORS_SUFFIXES + TORCH_SUFFIXES)}"
        )
    with atomic_path(path) as tmp:
        if path.suffix in SAFETENSORS_SUFFIXES:
            save_file(state, str(tmp), metadata=meta.to_strings())
        else:
            torch.save({"state_dict": state, "meta": meta.to_strings()}, tmp)
    return path


def read_checkpoint_meta(path: str | Path) -> ModelMeta:
    """The metadata of the checkpoint at ``path``, without building the model."""
    return _read(Path(path)).meta


def load_checkpoint(
    path: str | Path, expected_model: str | None = None, *, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, ModelMeta]:
    """Build the registered model named in the checkpoint with its stored config and load the weights strictly.

    Args:
        path: a ``.safetensors`` or torch checkpoint written by :func:`save_checkpoint`.
        expected_model: when given, the checkpoint must hold this registry name.
        map_location: device the weights (and the returned module) end up on.

    Returns:
        ``(module in eval mode, metadata)``.

    Raises:
        CheckpointError: missing, truncated or foreign file; another model than expected; a model
            that is not registered; weights that do not fit the model (missing, unexpected or
            misshapen tensors).
    """
    path = Path(path)
    loaded = _read(path)
    meta = loaded.meta
    if expected_model is not None and meta.model != expected_model:
        raise CheckpointError(
            f"{path} holds model {meta.model!r}, but {expected_model!r} was expected: "
            f"pass a checkpoint of {expected_model!r}, or select model {meta.model!r}"
        )
    try:
        spec = get_spec(meta.model)
    except KeyError as e:
        raise CheckpointError(
            f"{path} holds model {meta.model!r}, which this realtime-mer ({__version__}; file written by "
            f"{meta.version}) does not know: {e.args[0]}"
        ) from None
    try:
        model = spec.build(spec.config(meta.config))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: cannot build {meta.model!r} from the stored config {meta.config}: {e}") from e
    _check_state_dict(model, loaded.state_dict, path)
    model.load_state_dict(loaded.state_dict, strict=True)
    return model.to(map_location).eval(), meta


def _check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """Raise a :class:`CheckpointError` listing missing, unexpected and misshapen tensors."""
    want = model.state_dict()
    problems = []
    missing = [k for k in want if k not in state]
    unexpected = [k for k in state if k not in want]
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in want.items()
        if k in state and state[k].shape != v.shape
    ]
    for what, items in (("missing tensors", missing), ("unexpected tensors", unexpected), ("wrong shapes", shapes)):
        if items:
            more = f" (+{len(items) - 5} more)" if len(items) > 5 else ""
            problems.append(f"{what}: {'; '.join(items[:5])}{more}")
    if problems:
        raise CheckpointError(
            f"{path}: the weights do not fit model {type(model).__name__} built from the stored config - "
            + " | ".join(problems)
            + ". The file was saved from a different architecture or config: re-train or re-export it"
        )


def _read(path: Path) -> _Loaded:
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    with path.open("rb") as f:
        head = f.read(9)  # torch: a zip file; safetensors: u64 header length, then the JSON header
    if head.startswith(b"PK\x03\x04"):
        return _read_torch(path)
    if len(head) == 9 and head[8:9] == b"{":
        if 8 + int.from_bytes(head[:8], "little") > path.stat().st_size:
            raise CheckpointError(
                f"{path} is a truncated safetensors file (its header runs past the end): copy or re-save it"
            )
        return _read_safetensors(path)
    raise CheckpointError(
        f"{path} is not a checkpoint (neither a safetensors file nor a torch zip file): "
        "pass a file written by save_checkpoint / mer-train"
    )


def _read_safetensors(path: Path) -> _Loaded:
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            strings = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (a safetensors handle)
    except (SafetensorError, OSError, RuntimeError, ValueError) as e:
        raise CheckpointError(f"{path} is a truncated or corrupt safetensors file ({e}): copy or re-save it") from e
    return _Loaded(state, ModelMeta.from_strings(strings, str(path)))


def _read_torch(path: Path) -> _Loaded:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"{path} is a truncated or corrupt torch file ({e}): copy or re-save it") from e
    except Exception as e:  # weights_only's unpickler refuses foreign objects with its own error types
        raise CheckpointError(
            f"{path} is a torch file that cannot be read safely with weights_only=True ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}): it was not written by save_checkpoint"
        ) from e
    if not (isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict) and isinstance(obj.get("meta"), dict)):
        raise CheckpointError(
            f"{path} is a torch file but not a realtime-mer checkpoint (expected a dict with 'state_dict' "
            "and 'meta'): re-save it with save_checkpoint"
        )
    return _Loaded(obj["state_dict"], ModelMeta.from_strings(obj["meta"], str(path)))


def export_source(model: str, checkpoint: str | Path | None = None) -> tuple[nn.Module, ModelMeta]:
    """The module and metadata to export: ``checkpoint``, else the shipped weights of ``model``, else fresh ones.

    Fresh (untrained) weights are logged as such: fine for latency benchmarks, useless for predictions.
    """
    if checkpoint is not None:
        return load_checkpoint(checkpoint, expected_model=model)
    from realtime_mer.weights import available, default_weights

    if model in available():
        return load_checkpoint(default_weights(model), expected_model=model)
    log.warning("no trained weights ship for %s: exporting freshly initialised weights (pass --checkpoint)", model)
    spec = get_spec(model)
    return spec.build(spec.config()).eval(), ModelMeta.from_spec(spec)
