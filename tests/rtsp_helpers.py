"""The real RTSP server of the tests (:mod:`realtime_mer.bench.rtsp`); tests that use it are marked
``rtsp`` and skip without GStreamer's server bindings for the system python3."""

from __future__ import annotations

import pytest

from realtime_mer.bench.rtsp import SYSTEM_PYTHON, RtspServer, free_port, has_rtsp_server

__all__ = ["RtspServer", "free_port", "needs_rtsp"]

needs_rtsp = [
    pytest.mark.rtsp,
    pytest.mark.skipif(
        not has_rtsp_server(),
        reason=f"{SYSTEM_PYTHON} lacks gi with GstRtspServer 1.0 (apt: python3-gi gir1.2-gst-rtsp-server-1.0 "
        "gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-libav)",
    ),
]
