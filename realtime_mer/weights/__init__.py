"""Weights shipped with the package: small safetensors checkpoints trained by ``mer-train``.

Each ``<model>.safetensors`` carries its :class:`realtime_mer.models.checkpoint.ModelMeta`
(model, config, classes, input spec, and under ``training`` the data, preprocessing, optimisation
and protocol scores); ``REPORT.md`` says how each was trained and how well it does, with the
commands that reproduce it. Shipped: ``rcn-a``, ``strcn-g``, ``strcn-a``, ``region-lstm`` and ``dtscnn``
(:func:`available`; ``realtime-mer models`` lists them). Load one with
``realtime_mer.models.checkpoint.load_checkpoint(default_weights("rcn-a"))``.
"""

from __future__ import annotations

from pathlib import Path

from realtime_mer.errors import UserError

WEIGHTS_DIR = Path(__file__).resolve().parent


class WeightsNotFoundError(UserError, FileNotFoundError):
    """No shipped weights for the requested model; the message lists those that exist."""


def available() -> list[str]:
    """Model names with shipped weights, sorted."""
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.safetensors"))


def default_weights(model_name: str) -> Path:
    """Path of the shipped checkpoint of registry model ``model_name`` (e.g. ``"rcn-a"``).

    Raises:
        WeightsNotFoundError: none is shipped for that model; the message says which are and how
            to train one (``mer-train ... --out DIR`` writes ``DIR/model.safetensors``).
    """
    path = WEIGHTS_DIR / f"{model_name}.safetensors"
    if not path.is_file():
        have = ", ".join(available()) or "none"
        raise WeightsNotFoundError(
            f"no shipped weights for model {model_name!r} (shipped: {have}); train one with "
            f"`mer-train --dataset KIND:PATH --model {model_name} --out DIR` and pass DIR/model.safetensors"
        )
    return path


__all__ = ["WEIGHTS_DIR", "WeightsNotFoundError", "available", "default_weights"]
