"""MediaPipe Tasks FaceLandmarker in VIDEO mode: BGR frames in, 478 landmarks in pixels out."""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

from realtime_mer.face.model import resolve_model_path

log = logging.getLogger(__name__)


_STDERR_LOCK = threading.Lock()  # file descriptor 2 is the process's: one redirection at a time


@contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Hide what MediaPipe's C++ graph writes to file descriptor 2 while it is built (INFO/WARNING
    lines that Python logging cannot filter); shown with the log level at DEBUG.

    Serialized across threads: two streams restarting at once would otherwise each save the
    other's redirection and leave stderr pointing at /dev/null for the rest of the run.
    """
    if log.isEnabledFor(logging.DEBUG):
        yield
        return
    with _STDERR_LOCK:
        sys.stderr.flush()
        saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(null)


N_LANDMARKS = 478


class Landmarker:
    """478-point face landmarks for a video stream (one instance per stream; not thread-safe).

    VIDEO mode tracks faces across calls, so timestamps must increase: an equal or earlier
    timestamp is bumped to one millisecond after the previous one. Close it explicitly (or use it
    as a context manager): MediaPipe's own finaliser fails at interpreter exit.
    """

    def __init__(self, model_path: str | Path | None = None, num_faces: int = 1, min_confidence: float = 0.5):
        if num_faces < 1:
            raise ValueError(f"num_faces must be >= 1, got {num_faces}")
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {min_confidence}")
        import mediapipe as mp
        from mediapipe.tasks.python.core.base_options import BaseOptions
        from mediapipe.tasks.python.vision import FaceLandmarker, FaceLandmarkerOptions
        from mediapipe.tasks.python.vision.core.vision_task_running_mode import VisionTaskRunningMode

        self._mp = mp
        self.model_path = resolve_model_path(model_path)
        options = FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(self.model_path)),
            running_mode=VisionTaskRunningMode.VIDEO,
            num_faces=num_faces,
            min_face_detection_confidence=min_confidence,
            min_face_presence_confidence=min_confidence,
            min_tracking_confidence=min_confidence,
        )
        with _quiet_native_stderr():
            self._task = FaceLandmarker.create_from_options(options)
        self._last_ms: int | None = None
        self._rgb: np.ndarray | None = None

    def detect(self, image_bgr: np.ndarray, t_ms: int) -> list[np.ndarray]:
        """Landmarks of every face in one frame.

        Args:
            image_bgr: ``(H, W, 3)`` uint8 BGR frame.
            t_ms: the frame's timestamp in integer milliseconds.

        Returns:
            one ``(478, 3)`` float32 array per face: x, y in pixels of the frame, z in MediaPipe's
            relative depth units (scaled like x before pixel conversion).
        """
        if self._task is None:
            raise RuntimeError("Landmarker is closed")
        if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 BGR image, got {image_bgr.shape} {image_bgr.dtype}")
        t = int(t_ms)
        if self._last_ms is not None and t <= self._last_ms:
            t = self._last_ms + 1
        self._last_ms = t
        if self._rgb is None or self._rgb.shape != image_bgr.shape:
            self._rgb = np.empty_like(image_bgr)
        cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB, dst=self._rgb)
        result = self._task.detect_for_video(self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=self._rgb), t)
        h, w = image_bgr.shape[:2]
        faces = []
        for face in result.face_landmarks:
            # a flat iterator: no list of 478 tuples (faster, and 20 kB less allocated per face)
            pts = np.fromiter((v for p in face for v in (p.x, p.y, p.z)), np.float32, 3 * len(face)).reshape(-1, 3)
            pts[:, 0] *= w
            pts[:, 1] *= h
            faces.append(pts)
        return faces

    def close(self) -> None:
        """Release MediaPipe's graph; safe to call twice."""
        if self._task is not None:
            self._task.close()
            self._task = None

    def __enter__(self) -> Landmarker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
