"""A local camera through OpenCV's VideoCapture."""

from __future__ import annotations

import cv2
import numpy as np

from .base import BadFrame, CaptureConfig, SourceError


class CameraSource:
    """Camera ``index`` (``/dev/videoN`` on Linux); media time comes from the capture clock."""

    live = True

    def __init__(self, index: int, config: CaptureConfig | None = None) -> None:
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise SourceError(f"camera index must be a whole number >= 0, got {index!r}; e.g. --camera 0")
        self.index = index
        self.name = f"camera:{index}"
        self.nominal_fps: float | None = None
        self._cap: cv2.VideoCapture | None = None

    def open(self) -> None:
        self.close()
        cap = cv2.VideoCapture(self.index)
        if not cap.isOpened():
            cap.release()
            raise SourceError(
                f"camera {self.index} did not open (OpenCV VideoCapture). Check that a camera is connected "
                "and free, that the index is right (ls /dev/video*), and that this user may use it "
                "(group 'video')."
            )
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # hand on the newest frame, not a backlog
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.nominal_fps = float(fps) if fps > 0 else None
        self._cap = cap

    def read(self) -> tuple[np.ndarray, None]:
        if self._cap is None:
            raise SourceError(f"{self.name} is not open; call open() first")
        ok, image = self._cap.read()
        if not ok:
            raise SourceError(f"{self.name} stopped delivering frames (unplugged or taken by another program?)")
        if image is None or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise BadFrame(f"{self.name} returned an image that is not 8-bit BGR")
        return image, None

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
