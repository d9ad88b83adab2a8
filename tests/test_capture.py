"""Capture: real PyAV decoding of files the tests make, the capture thread's queue policy, errors."""

from __future__ import annotations

import time
from pathlib import Path

import av
import numpy as np
import pytest

from realtime_mer.capture import (
    CaptureConfig,
    CaptureThread,
    SourceError,
    open_source,
    redact_url,
)
from realtime_mer.capture.pyav import BgrConverter
from realtime_mer.config import ConfigError, from_mapping
from realtime_mer.media import Mp4Writer

W, H, N, FPS = 64, 48, 20, 30


def _level(k: int) -> int:
    return 20 + 10 * k


def write_video(path: Path, n: int = N, codec: str = "libx264", corrupt: frozenset[int] = frozenset()) -> Path:
    """A ``W x H`` video at ``FPS`` whose frame ``k`` is flat grey ``_level(k)``; packets whose
    order number is in ``corrupt`` are replaced by random bytes of the same size."""
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=FPS)
        s.width, s.height = W, H
        s.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        if codec == "libx264":
            s.options = {"preset": "ultrafast"}
        packets = 0

        def mux(p: av.Packet) -> None:
            nonlocal packets
            if packets in corrupt:
                bad = av.Packet(rng.integers(0, 256, p.size, dtype=np.uint8).tobytes())
                bad.pts, bad.dts, bad.time_base, bad.stream = p.pts, p.dts, p.time_base, s
                p = bad
            c.mux(p)
            packets += 1

        for k in range(n):
            img = np.full((H, W, 3), _level(k), np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                mux(p)
        for p in s.encode():
            mux(p)
    return path


@pytest.fixture(scope="module")
def small_video(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("cap") / "small.mp4")


def test_file_frames_arrive_in_order_with_pts_times(small_video):
    with CaptureThread(open_source("video", small_video)).start() as cap:
        frames = list(cap)
        stats = cap.stats()
    assert [f.index for f in frames] == list(range(N))
    assert [f.t for f in frames] == pytest.approx([k / FPS for k in range(N)], abs=1e-6)
    assert all(b.captured >= a.captured for a, b in zip(frames, frames[1:]))
    for k, f in enumerate(frames):
        assert f.stream == str(small_video)
        assert f.image.shape == (H, W, 3) and f.image.dtype == np.uint8
        assert abs(float(f.image.mean()) - _level(k)) < 3, f"frame {k} decoded to the wrong picture"
    assert stats.finished and stats.frames_read == N and stats.dropped == 0 and stats.bad_frames == 0
    assert stats.fps == pytest.approx(FPS, rel=1e-3) and stats.nominal_fps == pytest.approx(FPS)
    assert cap.error is None and cap.get() is None


def test_frames_say_which_are_keyframes(tmp_path):
    """The decoder's keyframes (H.264 I-frames, here one every 6 frames) are marked on the frames."""
    path = tmp_path / "gop6.mp4"
    with Mp4Writer(path, FPS, (W, H), crf=23, gop=6) as writer:
        for k in range(N):
            writer.write(np.full((H, W, 3), _level(k), np.uint8))
    with CaptureThread(open_source("video", path)).start() as cap:
        frames = list(cap)
    assert [f.key for f in frames] == [k % 6 == 0 for k in range(N)]
    with pytest.raises(ValueError, match="gop"):
        Mp4Writer(tmp_path / "bad.mp4", FPS, (W, H), crf=23, gop=0)


def test_file_never_drops_with_queue_of_one_and_slow_consumer(small_video):
    cap = CaptureThread(open_source("video", small_video), CaptureConfig(queue_size=1)).start()
    indices, max_queued = [], 0
    while (frame := cap.get(timeout=5)) is not None:
        time.sleep(0.01)  # the decoder is far faster: it must wait, not drop
        max_queued = max(max_queued, cap.stats().queued)
        indices.append(frame.index)
    cap.stop()
    assert indices == list(range(N))
    assert max_queued <= 1 and cap.stats().dropped == 0


def test_corrupt_frames_are_skipped_and_counted(tmp_path):
    path = write_video(tmp_path / "bad.mp4", codec="mjpeg", corrupt=frozenset({5, 11}))
    with CaptureThread(open_source("video", path)).start() as cap:
        frames = list(cap)
    stats = cap.stats()
    assert stats.bad_frames == 2 and "could not be decoded" in stats.last_error
    assert [round(f.t * FPS) for f in frames] == [k for k in range(N) if k not in (5, 11)]
    assert [f.index for f in frames] == list(range(N - 2))
    assert cap.error is None


def test_stop_joins_and_ends_the_stream(small_video):
    cap = CaptureThread(open_source("video", small_video), CaptureConfig(queue_size=2)).start()
    assert cap.get(timeout=5).index == 0
    cap.stop(timeout=5)
    assert not cap._thread.is_alive() and cap.stats().finished
    rest = list(cap)  # what was queued, then the end
    assert len(rest) <= 2 and cap.get(timeout=0) is None and cap.finished


def test_get_times_out_with_none_and_not_finished():
    class Silent:  # a live source whose frames have not come yet
        name, live, nominal_fps = "silent", True, None

        def open(self) -> None: ...

        def read(self):
            time.sleep(0.5)
            return None  # then the stream ends

        def close(self) -> None: ...

    cap = CaptureThread(Silent(), CaptureConfig(max_reconnect_attempts=0)).start()
    try:
        assert cap.get(timeout=0.01) is None and not cap.finished  # nothing yet, not the end
        assert cap.get(timeout=5) is None
        assert cap.finished
    finally:
        cap.stop()
    assert isinstance(cap.error, SourceError) and "gave up after 0 reconnect attempt" in str(cap.error)


class Counter:
    """A live source producing ``n`` numbered 8x8 frames as fast as it can, then ending."""

    live, nominal_fps = True, None

    def __init__(self, n: int) -> None:
        self.name, self.n, self.k, self.opens = "counter", n, 0, 0

    def open(self) -> None:
        self.opens += 1

    def read(self):
        if self.k == self.n:
            return None
        self.k += 1
        return np.full((8, 8, 3), self.k - 1, np.uint8), None

    def close(self) -> None: ...


def test_live_source_drops_the_oldest_and_gives_up_after_the_attempts():
    src = Counter(50)
    cfg = CaptureConfig(queue_size=3, backoff_initial_s=0.01, backoff_max_s=0.02, max_reconnect_attempts=2)
    cap = CaptureThread(src, cfg).start()
    deadline = time.monotonic() + 5
    while not cap.stats().finished and time.monotonic() < deadline:  # the thread, frames still queued
        time.sleep(0.01)
    kept = list(cap)
    stats = cap.stats()
    assert [f.index for f in kept] == [47, 48, 49]  # the newest survive
    assert [int(f.image[0, 0, 0]) for f in kept] == [47, 48, 49]
    assert stats.frames_read == 50 and stats.dropped == 47
    assert src.opens == 3 and stats.reconnects == 2  # each reopen worked, and each stream ended at once
    assert all(b.t > a.t for a, b in zip(kept, kept[1:]))
    assert isinstance(cap.error, SourceError) and "the stream ended" in str(cap.error)


def test_missing_and_unreadable_files_raise_clear_errors(tmp_path):
    with pytest.raises(SourceError, match="does not exist; check the path"):
        CaptureThread(open_source("video", tmp_path / "nope.mp4")).start()
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video" * 100)
    with pytest.raises(SourceError, match="cannot read video file .*junk.mp4.*FFmpeg can decode"):
        open_source("video", junk).open()
    with pytest.raises(SourceError, match="is not a file"):
        open_source("video", tmp_path).open()


def test_camera_that_does_not_exist_raises_a_clear_error():
    with pytest.raises(SourceError, match=r"camera 57 did not open .*ls /dev/video"):
        CaptureThread(open_source("camera", "57")).start()
    with pytest.raises(SourceError, match="whole number"):
        open_source("camera", "front")
    with pytest.raises(SourceError, match="unknown source kind 'usb'"):
        open_source("usb", 0)


@pytest.mark.parametrize(
    "url, expected",
    [
        ("rtsp://admin:hunter2@cam.local:554/live?token=abc&ch=1", "rtsp://***@cam.local:554/live?token=***&ch=1"),
        ("rtsp://viewer@10.0.0.2/stream", "rtsp://***@10.0.0.2/stream"),
        ("rtsp://127.0.0.1:8554/test", "rtsp://127.0.0.1:8554/test"),
        ("rtsps://u:p@[::1]:322/x?password=a%40b", "rtsps://***@[::1]:322/x?password=***"),
        ("rtsp://admin:pa#ss@cam/live", "rtsp://***@cam/live"),  # '#' would make a parser see a fragment
        ("rtsp://admin:pa?s@ss@cam/live", "rtsp://***@cam/live"),
    ],
)
def test_redact_url(url, expected):
    assert redact_url(url) == expected


def test_rtsp_source_never_shows_credentials():
    src = open_source("rtsp", "rtsp://admin:hunter2@127.0.0.1:1/live")
    assert src.name == "rtsp://***@127.0.0.1:1/live"
    with pytest.raises(SourceError) as e:
        src.open()  # port 1: nothing listens
    assert "hunter2" not in str(e.value) and "Connection refused" in str(e.value)
    with pytest.raises(SourceError, match="is not an RTSP URL") as e:
        open_source("rtsp", "http://admin:hunter2@cam/live")
    assert "hunter2" not in str(e.value)


def test_config_is_validated():
    assert from_mapping(CaptureConfig, {"queue_size": 8, "max_reconnect_attempts": None}).queue_size == 8
    with pytest.raises(ConfigError, match="queue_size must be at least 1"):
        from_mapping(CaptureConfig, {"queue_size": 0})
    with pytest.raises(ConfigError, match="below backoff_initial_s"):
        from_mapping(CaptureConfig, {"backoff_initial_s": 5.0, "backoff_max_s": 1.0})
    with pytest.raises(ConfigError, match="unknown key"):
        from_mapping(CaptureConfig, {"queue": 3})


def test_bgr_conversion_keeps_colours_like_pyav(tmp_path):
    colours = [(200, 40, 30), (30, 180, 60), (40, 50, 220), (128, 128, 128)]  # BGR blocks
    img = np.zeros((H, W, 3), np.uint8)
    for i, c in enumerate(colours):
        img[(i // 2) * H // 2 : (i // 2 + 1) * H // 2, (i % 2) * W // 2 : (i % 2 + 1) * W // 2] = c
    path = tmp_path / "colours.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=FPS, options={"qp": "0"})
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        for p in [*s.encode(av.VideoFrame.from_ndarray(img, format="bgr24")), *s.encode()]:
            c.mux(p)
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
    ours, ref = BgrConverter()(frame), frame.to_ndarray(format="bgr24")
    assert ours.shape == (H, W, 3) and ours.dtype == np.uint8
    for i, c in enumerate(colours):  # block centres, away from chroma-subsampled edges
        y, x = (i // 2) * H // 2 + H // 4, (i % 2) * W // 2 + W // 4
        block = (slice(y - 4, y + 4), slice(x - 4, x + 4))
        assert np.abs(ours[block].astype(int) - c).max() <= 4, f"colour {c} came back as {ours[y, x]}"
        assert np.abs(ours[block].astype(int) - ref[block]).max() <= 3


@pytest.mark.realdata
def test_real_video_decodes_fully(shared_data):
    path = shared_data / "video" / "smile_d19.mp4"
    with CaptureThread(open_source("video", path), CaptureConfig(queue_size=2)).start() as cap:
        frames = list(cap)
    assert len(frames) == 250 and [f.index for f in frames] == list(range(250))
    assert all(b.t > a.t for a, b in zip(frames, frames[1:]))
    assert frames[-1].t == pytest.approx(249 / 30, abs=1e-3)
    assert frames[0].image.shape == (480, 480, 3) and cap.stats().fps == pytest.approx(30, rel=1e-3)
    assert cap.error is None and cap.stats().dropped == 0


class Scripted:
    """A live source playing a script: per open, a list of steps; a number is a frame with that
    source time (s; ``None``: no time), ``("sleep", s)`` blocks, ``"end"`` ends the stream,
    ``"break"`` raises SourceError. Opens beyond the script fail."""

    live, nominal_fps = True, 30.0

    def __init__(self, sessions: list[list]) -> None:
        self.name, self.sessions, self.opens, self.steps = "scripted", sessions, 0, iter(())

    def open(self) -> None:
        if self.opens >= len(self.sessions):
            raise SourceError("scripted: nothing more to play")
        self.steps = iter(self.sessions[self.opens])
        self.opens += 1

    def read(self):
        for step in self.steps:
            if isinstance(step, tuple):
                time.sleep(step[1])
                continue
            if step == "end":
                return None
            if step == "break":
                raise SourceError("scripted: broken pipe")
            return np.zeros((8, 8, 3), np.uint8), step
        time.sleep(0.05)  # the script ran out: a silent stream
        return None

    def close(self) -> None: ...


def _run_script(sessions: list[list], stall_s: float = 0.3, seconds: float = 3.0) -> tuple[list, list, CaptureThread]:
    cfg = CaptureConfig(
        queue_size=64, backoff_initial_s=0.01, backoff_max_s=0.02, max_reconnect_attempts=1, stall_s=stall_s
    )
    statuses: list = []
    cap = CaptureThread(Scripted(sessions), cfg).add_listener(statuses.append).start()
    frames: list = []
    deadline = time.monotonic() + seconds
    while not cap.finished and time.monotonic() < deadline:
        cap.check_stall()
        if (f := cap.get(timeout=0.02)) is not None:
            frames.append(f)
    cap.stop()
    return frames, statuses, cap


@pytest.mark.parametrize(
    ("sessions", "states"),
    [
        # a stream that plays, then its source gives up: reconnecting, then failed
        ([[0.0, 1 / 30, "end"]], ["connecting", "running", "reconnecting", "failed"]),
        # a dead source (no frame for stall_s) is stalled, and running again when frames come back
        (
            [[0.0, 1 / 30, ("sleep", 0.8), 2 / 30, "end"]],
            ["connecting", "running", "stalled", "running", "reconnecting", "failed"],
        ),
        # a broken stream reconnects; the next session runs
        (
            [[0.0, "break"], [5.0, 5 + 1 / 30, "end"]],
            ["connecting", "running", "reconnecting", "running", "reconnecting", "failed"],
        ),
    ],
)
def test_live_feed_state_machine(sessions, states):
    _, statuses, cap = _run_script(sessions)
    assert [s.state for s in statuses] == states
    assert [s.previous for s in statuses] == [None, *states[:-1]]
    assert cap.state == "failed" and isinstance(cap.error, SourceError)
    assert all(s.stream == "scripted" and s.utc.endswith("Z") for s in statuses)


def test_sessions_map_source_times_onto_one_increasing_media_time():
    dt = 1 / 30
    frames, statuses, _ = _run_script([[None, 10 + dt, 10 + 2 * dt, "break"], [None, 0.5 + dt, 0.5 + 2 * dt, "end"]])
    assert [f.session for f in frames] == [0, 0, 0, 1, 1, 1]
    t = [f.t for f in frames]
    # within a session the source's own spacing, whatever the arrival times; the first frame of a
    # session (RTSP gives it no time) is placed one frame interval before the second
    assert t[1] - t[0] == pytest.approx(dt, abs=1e-9) and t[2] - t[1] == pytest.approx(dt, abs=1e-9)
    assert t[4] - t[3] == pytest.approx(dt, abs=1e-9) and t[5] - t[4] == pytest.approx(dt, abs=1e-9)
    assert t[3] > t[2]  # a new session continues after the old one: media time never goes back
    running = [s for s in statuses if s.state == "running"]
    assert [(s.session, s.index) for s in running] == [(0, 0), (1, 3)]


def test_a_clock_that_jumps_back_starts_a_new_session():
    frames, _, _ = _run_script([[0.0, 1 / 30, 2.0, 0.0, 1 / 30, "end"]])  # a looping server restarts its clock
    assert [f.session for f in frames] == [0, 0, 0, 1, 1]
    assert all(b.t > a.t for a, b in zip(frames, frames[1:]))


def test_back_pressure_is_no_stall(small_video):
    """A file source waiting for a slow consumer delivers nothing for a while, and is not stalled."""
    statuses: list = []
    cap = CaptureThread(open_source("video", small_video), CaptureConfig(queue_size=1, stall_s=0.05))
    cap.add_listener(statuses.append).start()
    try:
        while (f := cap.get(timeout=1)) is not None:
            time.sleep(0.1)  # much slower than stall_s
            assert not cap.check_stall(), f"stalled at frame {f.index}"
    finally:
        cap.stop()
    assert [s.state for s in statuses] == ["connecting", "running", "ended"]


def test_a_feed_that_does_not_open_is_retried_when_asked():
    statuses: list = []
    cfg = CaptureConfig(backoff_initial_s=0.01, backoff_max_s=0.02, max_reconnect_attempts=3)
    src = Scripted([])
    cap = CaptureThread(src, cfg).add_listener(statuses.append).start(open_now=False)
    deadline = time.monotonic() + 5
    while not cap.finished and time.monotonic() < deadline:
        cap.get(timeout=0.05)
    assert src.opens == 0 and [s.state for s in statuses] == ["connecting", "reconnecting", "failed"]
    assert "gave up after 3 reconnect attempt(s)" in str(cap.error)


def test_a_feed_that_keeps_breaking_is_retried_less_and_less_often():
    """Each session delivers a frame and breaks: the backoff is not reset by such short sessions."""
    cfg = CaptureConfig(
        backoff_initial_s=0.05, backoff_max_s=1.0, backoff_jitter=0.0, backoff_reset_s=10.0, max_reconnect_attempts=5
    )
    cap = CaptureThread(Scripted([[0.0, "break"]] * 6), cfg).start()
    starts: list[float] = []
    deadline = time.monotonic() + 10
    while not cap.finished and time.monotonic() < deadline:
        if (f := cap.get(timeout=0.05)) is not None:
            starts.append(f.captured)
    gaps = np.diff(starts)
    assert len(starts) == 6 and cap.state == "failed"
    assert gaps == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.8], abs=0.04)
