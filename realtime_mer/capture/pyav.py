"""Sources decoded by PyAV (FFmpeg): video files and RTSP streams."""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path

import av
import cv2
import numpy as np

from .base import BadFrame, CaptureConfig, SourceError, redact_url

# FFmpeg colour spaces that mean BT.601 (what OpenCV's I420 conversion implements):
# 2 unspecified (FFmpeg also takes it as BT.601), 5 BT.470BG, 6 SMPTE 170M.
_BT601 = (2, 5, 6)
_JPEG_RANGE = 2


class BgrConverter:
    """Decoded frame -> ``(H, W, 3)`` uint8 BGR, a new array per call (it is handed to another thread).

    Limited-range BT.601 yuv420p (most camera and h264 streams) goes through OpenCV, several times
    faster than FFmpeg's swscale here, staging the planes in one reused ``(H * 3 / 2, W)`` I420
    buffer; every other format goes through PyAV's own conversion.
    """

    def __init__(self) -> None:
        self._i420 = np.empty((0, 0), np.uint8)

    def __call__(self, frame: av.VideoFrame) -> np.ndarray:
        w, h = frame.width, frame.height
        if (
            frame.format.name != "yuv420p"
            or w % 2
            or h % 2
            or frame.colorspace not in _BT601
            or frame.color_range == _JPEG_RANGE
        ):
            return frame.to_ndarray(format="bgr24")
        if self._i420.shape != (h * 3 // 2, w):
            self._i420 = np.empty((h * 3 // 2, w), np.uint8)
        flat = self._i420.reshape(-1)
        quarter = (h // 2) * (w // 2)
        _copy_plane(frame.planes[0], self._i420[:h])
        _copy_plane(frame.planes[1], flat[h * w : h * w + quarter].reshape(h // 2, w // 2))
        _copy_plane(frame.planes[2], flat[h * w + quarter :].reshape(h // 2, w // 2))
        return cv2.cvtColor(self._i420, cv2.COLOR_YUV2BGR_I420)


def _copy_plane(plane: av.video.plane.VideoPlane, out: np.ndarray) -> None:
    """Copy one image plane (rows padded to ``line_size`` bytes) into ``out`` ``(rows, cols)``."""
    rows, cols = out.shape
    np.copyto(out, np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)[:rows, :cols])


class _Decoder:
    """The first video stream of an open container, decoded packet by packet.

    ``fps`` is the rate the stream announces (``None`` if none). ``next`` raises BadFrame for a
    packet that does not decode and SourceError when demuxing fails.
    """

    def __init__(self, container: av.container.InputContainer, name: str, thread_type: str) -> None:
        if not container.streams.video:
            container.close()
            raise SourceError(f"{name} has no video stream; give a source that carries video")
        stream = container.streams.video[0]
        stream.thread_type = thread_type
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else None
        self.name = name
        self._container = container
        self._packets = container.demux(stream)
        self._pending: deque[av.VideoFrame] = deque()

    def next(self) -> av.VideoFrame | None:
        """The next decoded frame, or ``None`` at the end of the stream."""
        while not self._pending:
            try:
                packet = next(self._packets)
            except StopIteration:
                return None
            except av.error.FFmpegError as e:
                raise SourceError(f"{self.name}: reading failed ({_describe(e)})") from None
            try:
                self._pending.extend(packet.decode())
            except av.error.FFmpegError as e:
                raise BadFrame(f"{self.name}: a frame could not be decoded ({_describe(e)})") from None
        return self._pending.popleft()

    def close(self) -> None:
        self._pending.clear()
        self._container.close()


class VideoFileSource:
    """A video file; media time is the frame's PTS (s).

    By default it is decoded as fast as the consumer takes frames (never dropping). With
    ``realtime`` it is *replayed*: delivered at its own frame rate like a camera, as a live source
    (a lagging consumer loses frames; at its end it is reopened and plays again), to try a
    monitor set-up or measure live latency without a camera.
    """

    def __init__(self, path: str | Path, config: CaptureConfig | None = None, realtime: bool = False) -> None:
        self.path = Path(path)
        self.name = str(path)
        self.live = realtime
        self.nominal_fps: float | None = None
        self.keyframe = False  # the frame last read is a keyframe
        self._decoder: _Decoder | None = None
        self._to_bgr = BgrConverter()
        self._count = 0
        self._start: float | None = None  # time.monotonic() at which the first frame is due

    def open(self) -> None:
        self.close()
        if not self.path.exists():
            raise SourceError(f"video file {self.path} does not exist; check the path given to --video")
        if not self.path.is_file():
            raise SourceError(f"{self.path} is not a file; --video takes a video file such as an .mp4")
        try:
            container = av.open(str(self.path))
        except av.error.FFmpegError as e:
            raise SourceError(
                f"cannot read video file {self.path} ({_describe(e)}); is it a video FFmpeg can decode, "
                "readable by this user?"
            ) from e
        self._decoder = _Decoder(container, self.name, "AUTO")
        self.nominal_fps = self._decoder.fps
        self._count = 0
        self._start = None

    def read(self) -> tuple[np.ndarray, float] | None:
        if self._decoder is None:
            raise SourceError(f"{self.name} is not open; call open() first")
        frame = self._decoder.next()
        if frame is None:
            return None
        t = frame.time
        if t is None:  # no PTS: count frames at the announced rate
            t = self._count / (self.nominal_fps or 30.0)
        self._count += 1
        self.keyframe = bool(frame.key_frame)
        if self.live:  # replay: wait until the frame is due
            if self._start is None:
                self._start = time.monotonic() - t
            time.sleep(max(0.0, self._start + t - time.monotonic()))
        return self._to_bgr(frame), t

    def close(self) -> None:
        if self._decoder is not None:
            self._decoder.close()
            self._decoder = None


class RtspSource:
    """An RTSP stream over TCP with open and read timeouts; media time is the stream's presentation
    time (RTP timestamps; ``None`` for a frame without one), which the capture thread maps per session.

    A server that closes the stream or goes silent for ``read_timeout_s`` ends ``read`` (``None``
    or SourceError); the capture thread then reconnects with ``open``.
    """

    live = True

    def __init__(self, url: str, config: CaptureConfig | None = None) -> None:
        if not url.lower().startswith(("rtsp://", "rtsps://")):
            raise SourceError(
                f"{redact_url(url)!r} is not an RTSP URL; --rtsp takes rtsp://[user:pass@]host[:port]/path"
            )
        self.url = url
        self.name = redact_url(url)
        self.config = config or CaptureConfig()
        self.nominal_fps: float | None = None
        self.keyframe = False  # the frame last read is a keyframe
        self._decoder: _Decoder | None = None
        self._to_bgr = BgrConverter()

    def open(self) -> None:
        self.close()
        cfg = self.config
        t0 = time.monotonic()
        try:
            container = av.open(
                self.url,
                options={"rtsp_transport": "tcp", "analyzeduration": str(round(cfg.probe_s * 1e6))},
                timeout=(cfg.open_timeout_s, cfg.read_timeout_s),
            )
        except av.error.FFmpegError as e:
            waited = time.monotonic() - t0
            what = f"no answer within {cfg.open_timeout_s:g} s" if waited >= 0.9 * cfg.open_timeout_s else _describe(e)
            raise SourceError(
                f"cannot open {self.name} (RTSP over TCP): {what}. Check that the server is running and "
                "reachable and that host, port, path and credentials are right; for a slow server raise "
                "capture.open_timeout_s."
            ) from None
        # Frame threading would hold back every frame by the thread count: slices only for live.
        self._decoder = _Decoder(container, self.name, "SLICE")
        self.nominal_fps = self._decoder.fps

    def read(self) -> tuple[np.ndarray, float | None] | None:
        if self._decoder is None:
            raise SourceError(f"{self.name} is not open; call open() first")
        frame = self._decoder.next()
        if frame is None:
            return None
        self.keyframe = bool(frame.key_frame)
        return self._to_bgr(frame), frame.time

    def close(self) -> None:
        if self._decoder is not None:
            self._decoder.close()
            self._decoder = None


def _describe(e: av.error.FFmpegError) -> str:
    """The error without the file name PyAV appends (an RTSP URL may hold credentials)."""
    return e.strerror or type(e).__name__
