"""A real RTSP server for tests and soak runs: ``rtsp_server.py`` (GStreamer's gst-rtsp-server) run
by the system python3, which has the ``gi`` bindings (Debian: python3-gi, gir1.2-gst-rtsp-server-1.0,
gstreamer1.0-plugins-base/-good/-ugly, gstreamer1.0-libav)."""

from __future__ import annotations

import select
import socket
import subprocess
from functools import cache
from pathlib import Path

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


def free_port() -> int:
    """A TCP port nothing listens on now, on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RtspServer:
    """Serves ``video`` (an h264 mp4) at ``rtsp://127.0.0.1:port/test``, restartable on the same port;
    every client session plays the file from its start. Killing it is a realistic outage."""

    def __init__(self, video: Path, port: int | None = None) -> None:
        self.video, self.port = video, port or free_port()
        self.proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/test"

    def start(self, timeout: float = 20.0) -> RtspServer:
        """Start serving; RuntimeError with the server's own words when it does not come up."""
        # -P: the script's folder holds signal.py (the signal-path benchmarks), which must not shadow the stdlib
        self.proc = subprocess.Popen([SYSTEM_PYTHON, "-P", str(SERVER), str(self.video), str(self.port)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        assert self.proc.stdout is not None and self.proc.stderr is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline().strip() if ready else ""
        if line != "ready":
            err = self.proc.stderr.read()[-2000:] if self.proc.poll() is not None else ""
            self.kill()
            raise RuntimeError(f"the RTSP server did not start on port {self.port}: {line!r} {err}")
        return self

    def kill(self) -> None:
        """Stop serving (at once, as an outage would)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        self.proc = None
