"""Writing video files: BGR frames -> H.264 in an mp4 (or mkv, mov, avi) container with PyAV.

Shared by the synthetic dataset generator and the overlay video sink.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Self

import av
import cv2
import numpy as np

# file suffixes whose containers PyAV (FFmpeg) can write H.264 into
VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".m4v", ".mkv", ".mov", ".avi")


class Mp4Writer:
    """BGR frames -> H.264 mp4 (libx264, yuv420p) at a constant ``fps``, with OpenCV's BT.601 conversion.

    Args:
        path: output file.
        fps: frame rate (a fraction is derived, e.g. 29.97 -> 30000/1001).
        size: ``(width, height)``, even numbers.
        crf: libx264 constant rate factor (0 lossless).
        intra: every frame coded on its own (a GOP of one frame), as a camera that stores JPEG
            frames; else H.264's usual prediction from earlier frames.
        gop: frames from one keyframe to the next (libx264's ``g``) when not ``intra``; ``None``:
            the encoder's default (250).
    """

    def __init__(
        self, path: Path, fps: float, size: tuple[int, int], crf: int, intra: bool = False, gop: int | None = None
    ):
        if gop is not None and gop < 1:
            raise ValueError(f"gop must be at least 1 frame, got {gop}")
        self._container = av.open(str(path), "w")
        rate = Fraction(fps).limit_denominator(1001)
        self._stream = self._container.add_stream("libx264", rate=rate)
        self._stream.width, self._stream.height = size
        self._stream.pix_fmt = "yuv420p"
        g = 1 if intra else gop
        self._stream.options = {"crf": str(crf), "preset": "veryfast", **({} if g is None else {"g": str(g)})}
        self._i420 = np.empty((size[1] * 3 // 2, size[0]), np.uint8)
        self._n = 0

    def write(self, image: np.ndarray) -> None:
        """Append one ``(H, W, 3)`` uint8 BGR frame."""
        cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420, dst=self._i420)
        frame = av.VideoFrame.from_ndarray(self._i420, format="yuv420p")
        frame.pts = self._n
        self._n += 1
        self._container.mux(self._stream.encode(frame))

    def close(self) -> None:
        self._container.mux(self._stream.encode(None))
        self._container.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
