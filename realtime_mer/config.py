"""Typed configuration: every stage's settings are a pydantic dataclass (:func:`settings`), filled
from YAML mappings and validated by pydantic, with errors that name the bad key.

Each stage owns its config class in its own module; this module knows how to validate a mapping
against one (:func:`from_mapping`), where the shipped YAML files live (:func:`find_config`), and how
to expand ``${ENV}`` in values.
"""

from __future__ import annotations

import dataclasses
import os
import re
import typing
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar, cast, dataclass_transform, overload

import yaml
from pydantic import ConfigDict, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass as _pydantic_dataclass

from .errors import UserError

T = TypeVar("T")

# what every config class forbids and allows: unknown keys are errors (a typo must not be ignored)
SETTINGS = ConfigDict(extra="forbid")


@overload
def settings(cls: type[T], /) -> type[T]: ...


@overload
def settings(*, frozen: bool = True) -> Callable[[type[T]], type[T]]: ...


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field,))
def settings(cls: type[T] | None = None, /, *, frozen: bool = True) -> Any:
    """Make ``cls`` a config class: a pydantic dataclass that validates its fields (types, then
    ``__post_init__``) whenever one is made, also by ``dataclasses.replace``; unknown keys are errors.

    >>> @settings
    ... class Example:
    ...     size: tuple[int, int] = (128, 128)
    >>> Example(size=[96, 64])
    Example(size=(96, 64))
    """

    def wrap(c: type[T]) -> type[T]:
        return cast("type[T]", _pydantic_dataclass(frozen=frozen, config=SETTINGS)(c))

    return wrap if cls is None else wrap(cls)


class ConfigError(UserError, ValueError):
    """A configuration value or file is wrong; the message says which and what is expected."""


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_env(text: str, where: str) -> str:
    """``text`` with every ``${NAME}`` replaced by the environment variable NAME (so secrets need not
    be written in files); ConfigError naming ``where`` if one is not set.

    >>> os.environ["REALTIME_MER_DOC"] = "s3cret"
    >>> expand_env("rtsp://admin:${REALTIME_MER_DOC}@cam/live", "feed 1")
    'rtsp://admin:s3cret@cam/live'
    """

    def value(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in os.environ:
            raise ConfigError(f"{where}: environment variable {name} is not set (used as ${{{name}}})")
        return os.environ[name]

    return _ENV.sub(value, text)


def find_config(name: str) -> Path:
    """Path of the shipped config ``NAME`` (``.yaml`` added if missing), e.g. ``"pipeline"`` or
    ``"train/rcn"``: the package ``realtime_mer.configs`` (the checkout's ``configs/`` folder).

    >>> find_config("pipeline").name
    'pipeline.yaml'
    """
    fname = name if name.endswith((".yaml", ".yml")) else f"{name}.yaml"
    path = Path(str(resources.files("realtime_mer.configs").joinpath(fname)))
    if not path.is_file():
        raise ConfigError(f"no shipped config named {fname!r} (in {path.parent})")
    return path


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file or a non-mapping top level is a ConfigError."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {p} is not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping at the top level, not {type(data).__name__}")
    return data


_ADAPTERS: dict[type, TypeAdapter[Any]] = {}


def _adapter(cls: type) -> TypeAdapter[Any]:
    """The pydantic validator of config class ``cls`` (built once)."""
    if cls not in _ADAPTERS:
        _ADAPTERS[cls] = TypeAdapter(cls)
    return _ADAPTERS[cls]


def from_mapping(cls: type[T], data: dict[str, Any] | None, where: str = "") -> T:
    """Build config class ``cls`` from ``data`` (e.g. a YAML mapping), validated by pydantic.

    Keys left out keep their defaults, and an empty section (``recognize:`` with nothing under it)
    means the defaults too. Every problem is reported in one ConfigError, each with the dotted key
    it concerns under ``where`` (e.g. ``pipeline.spot.threshold: Input should be a valid number``).
    """
    try:
        config: T = _adapter(cls).validate_python(_defaults_for_empty(cls, data or {}))
        return config
    except ValidationError as e:
        raise ConfigError(describe_errors(e, where or cls.__name__, cls)) from None


def describe_errors(error: ValidationError, where: str, cls: type | None = None) -> str:
    """One line per problem of a pydantic ValidationError: ``where.key.path: what is wrong (got X)``;
    unknown keys list the known ones."""
    lines = []
    for err in error.errors():
        loc = [str(part) for part in err["loc"]]
        if err["type"] == "unexpected_keyword_argument":
            parent = ".".join([where, *loc[:-1]])
            known = ", ".join(_field_names(cls, loc[:-1])) if cls is not None else ""
            lines.append(f"{parent}: unknown key(s) {loc[-1]}" + (f"; known keys: {known}" if known else ""))
            continue
        msg = err["msg"].removeprefix("Value error, ")
        got = "" if err["type"] == "value_error" or "input" not in err else f" (got {err['input']!r})"
        lines.append(f"{'.'.join([where, *loc])}: {msg}{got}")
    return "; ".join(lines)


def _field_names(cls: Any, path: list[str]) -> list[str]:
    """Field names of the config class reached from ``cls`` by the field names in ``path``."""
    for name in path:
        if not dataclasses.is_dataclass(cls):
            return []
        cls = typing.get_type_hints(cls).get(name)
    return [f.name for f in dataclasses.fields(cls)] if dataclasses.is_dataclass(cls) else []


def _defaults_for_empty(cls: Any, data: Any) -> Any:
    """``data`` without the ``None`` values of config-class and mapping fields (empty YAML sections)."""
    if not (dataclasses.is_dataclass(cls) and isinstance(data, dict)):
        return data
    hints = typing.get_type_hints(cls)
    out = {}
    for key, value in data.items():
        tp = hints.get(key)
        nested = dataclasses.is_dataclass(tp) or typing.get_origin(tp) is dict
        if value is None and nested:
            continue
        out[key] = _defaults_for_empty(tp, value) if nested else value
    return out


def json_schema(cls: type) -> dict[str, Any]:
    """The JSON Schema of config class ``cls`` (what its YAML may hold)."""
    schema: dict[str, Any] = _adapter(cls).json_schema()
    return schema


def to_mapping(config: Any) -> dict[str, Any]:
    """A config as plain YAML-ready data (tuples as lists), e.g. to print the effective settings."""
    data: dict[str, Any] = _adapter(type(config)).dump_python(config, mode="json")
    return data
