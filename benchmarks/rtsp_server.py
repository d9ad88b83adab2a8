"""A real RTSP server for the capture tests: GStreamer's gst-rtsp-server serving one h264 mp4.

Run it with the SYSTEM interpreter (the ``gi`` bindings live there, not in the venv)::

    /usr/bin/python3 -P benchmarks/rtsp_server.py FILE.mp4 PORT [MOUNT]

It binds 127.0.0.1:PORT, serves ``rtsp://127.0.0.1:PORT/MOUNT`` (default mount ``test``) paced in
real time, prints ``ready`` on stdout once it listens, and runs until it is killed. Every client
session starts at the beginning of the file. Killing the process is a realistic server outage.
"""

from __future__ import annotations

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    path, port = argv[0], argv[1]
    mount = "/" + (argv[2] if len(argv) == 3 else "test").lstrip("/")
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f'( filesrc location="{path}" ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )'
    )
    factory.set_shared(False)
    server.get_mount_points().add_factory(mount, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{port}", file=sys.stderr)
        return 1
    print("ready", flush=True)
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
