"""The camera a synthetic clip is filmed with: frame rate, colour or greyscale sensor, resolution and
its noise, compression.

The real micro-expression sets were filmed with different cameras, and each gives the recognizer
differently made input: CASME II at 200 fps in colour, 640x480 with faces of about 280x340 px, kept
as JPEG frames (Yan et al., PLoS ONE 2014); SAMM at 200 fps with a greyscale 2040x1088 sensor (Davison
et al., IEEE TAC 2018); SMIC's high-speed set at 100 fps in colour, 640x480 with faces of about
190x230 px and visible noise, and its VIS/NIR sets at 25 fps (Li et al., FG 2013); CAS(ME)^3 at 30 fps,
1280x720 (Li et al., TPAMI 2023). A clip draws one :class:`Camera` from
:class:`realtime_mer.synth.config.CameraConfig` and every frame goes through it after rendering.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .config import CameraConfig


@dataclass(frozen=True)
class Camera:
    """One clip's camera.

    Attributes:
        fps: frame rate, frames per second.
        grey: a greyscale sensor (the frame is written as three equal channels).
        scale: the sensor's resolution as a fraction of the canvas (1: full); the frame is filmed
            at that size and scaled back up, so faces are blurred like a small face in a wide shot.
        noise_std: Gaussian sensor noise added at the sensor's resolution, 8-bit levels.
        jpeg_quality: JPEG quality every frame is stored with (1-100), or 0 for none.
        crf: libx264 CRF of the clip's mp4.
        seed: seeds the noise (frame ``f``'s noise depends on ``(seed, f)`` only).
    """

    fps: float
    grey: bool = False
    scale: float = 1.0
    noise_std: float = 0.0
    jpeg_quality: int = 0
    crf: int = 23
    seed: int = 0

    @property
    def passthrough(self) -> bool:
        """True when :meth:`film` returns its input unchanged."""
        return not self.grey and self.scale == 1.0 and self.noise_std == 0 and not self.jpeg_quality

    def film(self, image: np.ndarray, frame: int) -> np.ndarray:
        """``(H, W, 3)`` uint8 BGR as this camera records it (same size and type)."""
        if self.passthrough:
            return image
        h, w = image.shape[:2]
        out = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR) if self.grey else image
        if self.scale < 1.0:
            out = cv2.resize(out, (max(16, round(w * self.scale)), max(16, round(h * self.scale))),
                             interpolation=cv2.INTER_AREA)  # fmt: skip
        if self.noise_std > 0:
            rng = np.random.default_rng([self.seed, frame])
            noise = rng.normal(0.0, self.noise_std, out.shape[:2] + ((1,) if self.grey else (3,)))
            out = np.clip(out + noise, 0, 255).astype(np.uint8)
        if out.shape[:2] != (h, w):
            out = cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR)
        if self.jpeg_quality:
            ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
            decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
            out = out if decoded is None else decoded
        return out

    def to_json(self) -> dict:
        """The camera as written to a clip's ground truth (``"camera"``)."""
        return {"fps": self.fps, "grey": self.grey, "scale": round(self.scale, 4),
                "noise_std": round(self.noise_std, 3), "jpeg_quality": self.jpeg_quality, "crf": self.crf}  # fmt: skip


def draw_camera(config: CameraConfig, fps: float, crf: int, rng: np.random.Generator) -> Camera:
    """A clip's camera: ``fps`` and ``crf`` (the dataset's) unless ``config`` lists frame rates or a CRF
    range; greyscale, low resolution and JPEG each with their configured odds."""
    rate = float(config.fps[int(rng.integers(len(config.fps)))]) if config.fps else fps
    grey = bool(rng.random() < config.grey_fraction)
    low = bool(rng.random() < config.low_res_fraction)
    scale = float(rng.uniform(*config.low_res_scale)) if low else 1.0
    noise = float(rng.uniform(*config.low_res_noise)) if low else 0.0
    jpeg = (
        int(rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1))
        if rng.random() < config.jpeg_fraction
        else 0
    )
    clip_crf = int(rng.integers(config.crf[0], config.crf[1] + 1)) if config.crf else crf
    return Camera(rate, grey, scale, noise, jpeg, clip_crf, int(rng.integers(2**31)))
