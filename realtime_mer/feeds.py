"""The feeds of a run: from the command line, a YAML streams file, or an Ultralytics-style ``.streams`` list.

A YAML streams file is a list of feeds (or a mapping with the list under ``feeds``)::

    - name: lobby                                   # optional; how logs, metrics and events name it
      url: rtsp://viewer:${LOBBY_PASSWORD}@10.0.0.5/stream1
      capture: {read_timeout_s: 10}                 # optional per-feed settings: any pipeline section
      face: {num_faces: 3}                          # but recognize and sinks
    - url: recordings/entrance.mp4                  # a file (relative to the streams file's folder)
    - url: camera:0                                 # a local camera

A ``.streams`` file (as Ultralytics reads them) holds one source a line: an RTSP URL, a file path
or a camera index; blank lines and lines starting with ``#`` are skipped. In both, ``${NAME}`` is replaced by
the environment variable NAME, so passwords need not be stored in the file; a variable that is not
set is an error. Names never carry credentials: the default name of an RTSP feed is its URL with
them removed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml

from .capture import redact_url
from .config import ConfigError, expand_env

SourceKind = Literal["camera", "video", "replay", "rtsp", "demo"]

# pipeline sections a feed may set for itself (the recognizer and the sinks are shared by all feeds)
FEED_SECTIONS = ("capture", "face", "magnify", "spot", "spot_input", "buffer_seconds", "track_timeout_s")
FEED_KEYS = ("name", "url", *FEED_SECTIONS)


@dataclass(frozen=True)
class SourceSpec:
    """One feed: what to open and, optionally, its name and its own pipeline settings.

    Attributes:
        kind: ``camera``, ``video`` (a file, as fast as it decodes), ``replay`` (a file at its own frame
            rate, as a live feed), ``rtsp`` or ``demo`` (the synthetic live face).
        target: camera index, file path, URL (credentials included: never log it), or ``"SEED:FPS"``.
        name: stream id in frames, events, logs and metrics; ``None``: the source's own (redacted) name.
        settings: pipeline config sections for this feed only (``FEED_SECTIONS``), merged over the run's.
    """

    kind: SourceKind
    target: str | int
    name: str | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)


def parse_source(text: str, where: str, base: Path | None = None) -> SourceSpec:
    """A source written as a user writes it: ``rtsp://...``, ``camera:N`` or a bare camera index,
    or a file path (relative to ``base``). Malformed URLs raise ConfigError naming ``where``."""
    text = text.strip()
    if not text:
        raise ConfigError(f"{where}: empty source; give an rtsp:// URL, a file path or a camera index")
    low = text.lower()
    if low.startswith(("rtsp://", "rtsps://")):
        _check_url(text, where)
        return SourceSpec("rtsp", text)
    if re.fullmatch(r"(camera:)?\d+", low):
        return SourceSpec("camera", int(low.removeprefix("camera:")))
    if re.match(r"^[a-z][a-z0-9+.-]*://", low):
        raise ConfigError(
            f"{where}: {redact_url(text)!r} is not a source this tool reads; use rtsp:// or "
            "rtsps:// URLs, file paths or camera indices"
        )
    path = Path(text).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    return SourceSpec("video", str(path))


def _check_url(url: str, where: str) -> None:
    shown = redact_url(url)
    if any(c.isspace() for c in url):
        raise ConfigError(f"{where}: malformed URL {shown!r}: it contains white space")
    authority = url.partition("://")[2].split("/", 1)[0]
    if "#" in authority or "?" in authority:
        raise ConfigError(
            f"{where}: malformed URL {shown!r}: '#' or '?' in the user name or password; "
            "percent-encode them (# as %23, ? as %3F)"
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ConfigError(f"{where}: malformed URL {shown!r}: the port is not a number from 1 to 65535") from None
    if not parts.hostname:
        raise ConfigError(f"{where}: malformed URL {shown!r}: no host; expected rtsp://[user:pass@]host[:port]/path")
    if port == 0:
        raise ConfigError(f"{where}: malformed URL {shown!r}: port 0")


def read_streams_file(path: str | Path) -> list[SourceSpec]:
    """The feeds of a YAML streams file (``.yaml``/``.yml``) or a ``.streams`` list (any other suffix).

    Every entry is checked here (keys, URL, per-feed settings, duplicate names), and an error
    names the file and the entry: ``streams.yaml: feed 2 (door): unknown key 'urll'; ...``.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"streams file {p} does not exist")
    text = p.read_text(encoding="utf-8")
    specs = _read_yaml(p, text) if p.suffix.lower() in (".yaml", ".yml") else _read_list(p, text)
    if not specs:
        raise ConfigError(f"{p}: no feeds in it")
    check_names(specs, str(p))
    return specs


def _read_list(p: Path, text: str) -> list[SourceSpec]:
    specs = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()  # no comments after a source: a password may hold '#'
        if line and not line.startswith("#"):
            where = f"{p.name}: line {n}"
            specs.append(parse_source(expand_env(line, where), where, p.parent))
    return specs


def _read_yaml(p: Path, text: str) -> list[SourceSpec]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML: {e}") from e
    if isinstance(data, dict):
        if set(data) != {"feeds"}:
            raise ConfigError(
                f"{p}: expected a list of feeds, or a mapping with only the key 'feeds'; "
                f"got keys {', '.join(map(str, data))}"
            )
        data = data["feeds"]
    if not isinstance(data, list):
        raise ConfigError(f"{p}: expected a list of feeds, got {type(data).__name__}")
    return [_feed(p, k, entry) for k, entry in enumerate(data, 1)]


def _feed(p: Path, k: int, entry: Any) -> SourceSpec:
    where = f"{p.name}: feed {k}"
    if isinstance(entry, str):
        entry = {"url": entry}
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping with 'url' (and optional 'name' and settings), got {entry!r}")
    name = entry.get("name")
    if name is not None:
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{where}: 'name' must be a non-empty string, got {name!r}")
        where = f"{where} ({name})"
    unknown = sorted(set(map(str, entry)) - set(FEED_KEYS))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; known keys: {', '.join(FEED_KEYS)}"
        )
    url = entry.get("url")
    if isinstance(url, int) and not isinstance(url, bool):
        url = str(url)
    if not isinstance(url, str):
        raise ConfigError(f"{where}: 'url' is required: an rtsp:// URL, a file path or camera:N")
    spec = parse_source(expand_env(url, where), where, p.parent)
    settings = {key: _expand_all(entry[key], where) for key in FEED_SECTIONS if key in entry}
    _check_settings(settings, where)
    return SourceSpec(spec.kind, spec.target, name.strip() if name else None, settings)


def _expand_all(value: Any, where: str) -> Any:
    if isinstance(value, str):
        return expand_env(value, where)
    if isinstance(value, dict):
        return {k: _expand_all(v, where) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_all(v, where) for v in value]
    return value


def _check_settings(settings: Mapping[str, Any], where: str) -> None:
    """Validate per-feed settings against the pipeline config now, so the error names the feed."""
    from .pipeline import PipelineConfig, merge_config

    try:
        merge_config(PipelineConfig(), settings)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


def check_names(specs: Sequence[SourceSpec], where: str) -> None:
    """ConfigError when two feeds would have the same name (their events could not be told apart)."""
    seen: dict[str, int] = {}
    for k, s in enumerate(specs, 1):
        name = display_name(s)
        if name in seen:
            raise ConfigError(
                f"{where}: feeds {seen[name]} and {k} are both named {name!r}; give each a distinct 'name'"
            )
        seen[name] = k


def display_name(spec: SourceSpec) -> str:
    """The stream id of a feed: its name, else its target without credentials."""
    if spec.name:
        return spec.name
    if spec.kind == "rtsp":
        return redact_url(str(spec.target))
    if spec.kind == "camera":
        return f"camera:{spec.target}"
    if spec.kind == "demo":
        return "synthetic"
    return str(spec.target)  # a file, played or replayed


class StreamsWatcher:
    """The feeds of a running monitor, for :class:`~realtime_mer.pipeline.Pipeline`'s ``reload``:
    each call reads the streams files again and gives every feed (theirs, then ``fixed``) when a
    file's text changed since the last call, else ``None``. A file that cannot be read or parsed
    raises ConfigError (the monitor keeps its feeds and says why).

    Args:
        files: the ``--streams`` files.
        fixed: the feeds given on the command line.
    """

    def __init__(self, files: Sequence[str | Path], fixed: Sequence[SourceSpec] = ()) -> None:
        self.files = [Path(f) for f in files]
        self.fixed = list(fixed)
        self._texts = [self._text(f) for f in self.files]

    @staticmethod
    def _text(path: Path) -> str | None:
        try:
            return path.read_text(encoding="utf-8")
        except OSError:
            return None

    def __call__(self) -> list[SourceSpec] | None:
        texts = [self._text(f) for f in self.files]
        if texts == self._texts:
            return None
        self._texts = texts
        return [s for f in self.files for s in read_streams_file(f)] + self.fixed
