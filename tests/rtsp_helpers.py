"""A real RTSP server for tests: ``tests/rtsp_server.py`` (GStreamer gst-rtsp-server) run by the
system python3, restartable on its port. Tests that use it are marked ``rtsp`` and skip without it."""

from __future__ import annotations

import select
import socket
import subprocess
from functools import cache
from pathlib import Path

import pytest

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER = Path(__file__).with_name("rtsp_server.py")


@cache
def has_rtsp_server() -> bool:
    """Whether the system python3 has GStreamer's RTSP server bindings."""
    try:
        probe = "import gi; gi.require_version('GstRtspServer', '1.0')"
        return subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


needs_rtsp = [
    pytest.mark.rtsp,
    pytest.mark.skipif(
        not has_rtsp_server(),
        reason=f"{SYSTEM_PYTHON} lacks gi with GstRtspServer 1.0 (apt: python3-gi gir1.2-gst-rtsp-server-1.0 "
        "gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-libav)",
    ),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RtspServer:
    """``tests/rtsp_server.py`` serving ``video`` at ``rtsp://127.0.0.1:port/test``; restartable on the same
    port (every client session starts at the beginning of the file)."""

    def __init__(self, video: Path) -> None:
        self.video, self.port = video, free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/test"

    def start(self, timeout: float = 20.0) -> RtspServer:
        self.proc = subprocess.Popen(
            [SYSTEM_PYTHON, str(SERVER), str(self.video), str(self.port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline().strip() if ready else ""
        if line != "ready":
            err = self.proc.stderr.read()[-2000:] if self.proc.poll() is not None else ""
            self.kill()
            pytest.fail(f"RTSP server did not start: {line!r} {err}")
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.proc is not None:
            self.proc.stdout.close()
            self.proc.stderr.close()
        self.proc = None
