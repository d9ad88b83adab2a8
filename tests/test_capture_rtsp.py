"""RTSP capture against a real local server (GStreamer gst-rtsp-server run by the system python3)."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from rtsp_helpers import RtspServer, free_port, needs_rtsp

from realtime_mer.capture import CaptureConfig, CaptureThread, SourceError, open_source

W, H, FPS, SECONDS = 160, 120, 30, 10

pytestmark = needs_rtsp

# Short timeouts and backoffs so that outages resolve within the test's time.
FAST = CaptureConfig(
    queue_size=2,
    open_timeout_s=1.0,
    read_timeout_s=1.0,
    backoff_initial_s=0.2,
    backoff_max_s=0.8,
    max_reconnect_attempts=20,
)


@pytest.fixture(scope="module")
def h264_video(tmp_path_factory) -> Path:
    """A ``W x H`` h264 mp4 of ``SECONDS`` s at ``FPS``: a bright bar moving down a grey field."""
    path = tmp_path_factory.mktemp("rtsp") / "bar.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=FPS, options={"preset": "ultrafast", "g": str(FPS), "bf": "0"})
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        for k in range(FPS * SECONDS):
            img = np.full((H, W, 3), 90, np.uint8)
            img[(2 * k) % (H - 8) : (2 * k) % (H - 8) + 8] = 230
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


@pytest.fixture
def server(h264_video):
    srv = RtspServer(h264_video).start()
    yield srv
    srv.kill()


def _take(cap: CaptureThread, n: int, timeout: float = 10.0, pause: float = 0.0) -> list:
    frames, deadline = [], time.monotonic() + timeout
    while len(frames) < n and time.monotonic() < deadline:
        frame = cap.get(timeout=max(0.01, deadline - time.monotonic()))
        assert frame is not None, f"no frame in time; finished={cap.finished}, error={cap.error}"
        frames.append(frame)
        time.sleep(pause)
    return frames


def test_rtsp_reads_frames_without_showing_credentials(server):
    url = server.url.replace("rtsp://", "rtsp://viewer:s3cret@")  # the server asks for none
    t0 = time.monotonic()
    cap = CaptureThread(open_source("rtsp", url, FAST), FAST).start()
    opened = time.monotonic() - t0
    try:
        frames = _take(cap, 20)
    finally:
        cap.stop(timeout=5)
    print(f"RTSP open {opened * 1e3:.0f} ms")
    assert len(frames) == 20
    assert frames[0].stream == f"rtsp://***@127.0.0.1:{server.port}/test"
    assert all(f.image.shape == (H, W, 3) and f.image.dtype == np.uint8 for f in frames)
    assert all(b.index > a.index and b.t >= a.t for a, b in zip(frames, frames[1:]))
    assert 80 < float(frames[0].image.mean()) < 130  # the grey field with its bar, decoded
    stats = cap.stats()
    assert stats.nominal_fps == pytest.approx(FPS) and stats.reconnects == 0 and cap.error is None
    assert "s3cret" not in repr(stats)


def test_rtsp_reconnects_after_a_server_restart(server):
    cap = CaptureThread(open_source("rtsp", server.url, FAST), FAST).start()
    try:
        before = _take(cap, 45, pause=0.05)  # a consumer slower than 30 fps: the oldest frames drop
        assert cap.stats().dropped > 0
        assert 20 < cap.stats().fps < 45  # measured from capture times: the server's real-time pace

        killed = time.monotonic()
        server.kill()
        server.start()  # same port
        restarted = time.monotonic()
        while (first := _take(cap, 1)[0]).captured < restarted:  # what was queued before the outage
            before.append(first)
        after = [first, *_take(cap, 10)]
        assert cap.stats().reconnects == 1, cap.stats()
        print(
            f"server down {(restarted - killed) * 1e3:.0f} ms; first frame "
            f"{(after[0].captured - restarted) * 1e3:.0f} ms after it was back"
        )
        assert after[0].index > before[-1].index and after[0].t > before[-1].t
        assert cap.error is None and not cap.finished
    finally:
        cap.stop(timeout=5)


def test_rtsp_gives_up_when_the_server_stays_down(server):
    cfg = CaptureConfig(**{**FAST.__dict__, "max_reconnect_attempts": 3})
    cap = CaptureThread(open_source("rtsp", server.url, cfg), cfg).start()
    try:
        _take(cap, 5)
        server.kill()  # for good: 3 attempts (0.2 + 0.4 + 0.8 s at most), then the stream ends
        deadline = time.monotonic() + 10
        while not cap.finished and time.monotonic() < deadline:
            cap.get(timeout=0.1)
    finally:
        cap.stop(timeout=5)
    assert cap.finished and isinstance(cap.error, SourceError)
    assert "gave up after 3 reconnect attempt(s)" in str(cap.error) and "Connection refused" in str(cap.error)


def test_rtsp_closed_port_fails_fast_with_a_clear_error():
    url = f"rtsp://admin:hunter2@127.0.0.1:{free_port()}/live"
    t0 = time.monotonic()
    with pytest.raises(SourceError) as e:
        CaptureThread(open_source("rtsp", url, FAST), FAST).start()
    assert time.monotonic() - t0 < 3
    msg = str(e.value)
    assert "Connection refused" in msg and "Check that the server is running" in msg and "hunter2" not in msg


def test_rtsp_silent_server_fails_fast_with_a_clear_error():
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        url = f"rtsp://admin:hunter2@127.0.0.1:{silent.getsockname()[1]}/live"
        t0 = time.monotonic()
        with pytest.raises(SourceError) as e:
            CaptureThread(open_source("rtsp", url, FAST), FAST).start()
        waited = time.monotonic() - t0
    assert waited < 3, f"took {waited:.1f} s"
    msg = str(e.value)
    assert "no answer within 1 s" in msg and "open_timeout_s" in msg and "hunter2" not in msg


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-s", "-q"]))
