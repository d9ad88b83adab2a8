"""``monitor --backend ray --address``: joining a Ray cluster started apart (``ray start --head``)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="Ray is the optional [cluster] extra: pip install 'realtime-mer[cluster]'")

VIDEO = Path(__file__).resolve().parents[2] / "shared" / "data" / "video"
RAY = Path(sys.executable).with_name("ray")
pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(not VIDEO.is_dir(), reason=f"real clips not found at {VIDEO}"),
    pytest.mark.skipif(not RAY.exists(), reason=f"no ray command next to {sys.executable}"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_monitor_joins_a_cluster_started_apart(tmp_path):
    env = dict(os.environ, RAY_AUTH_MODE="token")  # the head's default from Ray 2.59: a client must match it
    port = _free_port()
    start = [str(RAY), "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false"]
    subprocess.run([*start, "--disable-usage-stats"], env=env, check=True, capture_output=True, timeout=120)
    try:
        out = tmp_path / "events.jsonl"
        clip = str(VIDEO / "smile_d19.mp4")
        r = subprocess.run(
            [sys.executable, "-m", "realtime_mer.cli", "monitor", "--backend", "ray", "--address", f"127.0.0.1:{port}"]
            + ["--video", clip, "--events", str(out), "--health-s", "0"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert r.returncode == 0, r.stderr[-3000:]
        events = [json.loads(line) for line in out.read_text().splitlines() if '"type":"event"' in line]
        assert [(e["kind"], e["label"]) for e in events] == [("macro", "positive")]  # the clip's smile
        assert 180 <= events[0]["onset"] <= 195
    finally:
        subprocess.run([str(RAY), "stop"], env=env, capture_output=True, timeout=120)
