"""The overlay drawing, the overlay video sink and the dashboard, on drawn faces (tests/facegen.py).

Real OpenCV drawing and real PyAV encoding: files are decoded back to check their frames, size and
rate. The frame views are built by hand with fabricated sigma traces and events.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from facegen import render_face

from realtime_mer.config import ConfigError
from realtime_mer.display import FRAME_H, PANEL, TRACE_H, render_dashboard
from realtime_mer.overlay import STRIP_BG, THRESHOLD, compose, draw_trace, track_color
from realtime_mer.sinks import SinkError, make_sink
from realtime_mer.sinks import display as display_sink
from realtime_mer.sinks.video import OverlayVideoConfig, OverlayVideoSink
from realtime_mer.types import (
    AlignedFace,
    Event,
    Frame,
    FrameView,
    Interval,
    Status,
    TrackView,
)

H, W = 240, 320
BOX = (40.0, 60.0, 136.0, 156.0)  # where _image draws the face, frame pixels
T = 10.0  # media time of the default view, s
FACE = render_face(96, seed=0).image.astype(np.uint8)


def _image(h: int = H, w: int = W) -> np.ndarray:
    img = np.full((h, w, 3), (60, 70, 80), np.uint8)
    x0, y0 = int(BOX[0] * w / W), int(BOX[1] * h / H)
    side = min(96, h - y0, w - x0)
    img[y0 : y0 + side, x0 : x0 + side] = FACE[:side, :side]
    return img


def _sigma(t: float = T, n: int = 150, fps: float = 30.0, spikes: dict[float, float] | None = None):
    """``(sigma, sigma_t)``: 0.3 noise units everywhere, ``value`` at ``age`` s before ``t`` for each spike."""
    ts = t - np.arange(n)[::-1] / fps
    sigma = np.full(n, 0.3, np.float32)
    sigma[0] = np.nan  # the first value after a (re)start
    for age, value in (spikes or {}).items():
        sigma[np.argmin(np.abs(ts - (t - age)))] = value
    return sigma, ts


def _track(
    track: int = 0, bbox=BOX, t: float = T, threshold: float = 3.0, spikes=None, face=None, magnified=None
) -> TrackView:
    sigma, ts = _sigma(t, spikes=spikes)
    return TrackView(track, bbox, face, magnified, sigma, ts, threshold, False)


def _view(
    tracks=(), stream: str = "cam", index: int = 300, t: float = T, image=None, fps: float = 30.0, points=()
) -> FrameView:
    return FrameView(Frame(stream, index, t, 0.0, _image() if image is None else image), fps, points, tuple(tracks))


def _event(
    track: int = 0,
    on: float = T - 1.0,
    off: float = T - 0.5,
    stream: str = "cam",
    label="positive",
    probs=None,
    error=None,
    kind="micro",
) -> Event:
    if probs is None:
        probs = {"negative": 0.1, "positive": 0.8, "surprise": 0.1} if label else {}
    iv = Interval(0, 1, 2, on, (on + off) / 2, off, kind, 6.0)
    return Event(stream, track, iv, label=label, probs=probs, error=error)


def _changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(h, w)`` bool: pixels that differ."""
    return np.any(a != b, axis=2)


def _right_of_box(image: np.ndarray) -> np.ndarray:
    """The frame part right of the face box (where its label panel goes)."""
    return image[:H, int(BOX[2]) + 3 :]


def _decode(path: Path) -> tuple[list[np.ndarray], float]:
    with av.open(str(path)) as c:
        rate = float(c.streams.video[0].average_rate)
        return [f.to_ndarray(format="bgr24") for f in c.decode(video=0)], rate


# --- overlay drawing --------------------------------------------------------------------------


@pytest.mark.parametrize("strip_px", [96, 40])
def test_compose_shape_and_the_frame_left_alone_without_faces(strip_px):
    view = _view()
    out = compose(view, [], strip_px=strip_px)
    assert out.shape == (H + strip_px, W, 3) and out.dtype == np.uint8
    assert np.array_equal(out[:H], view.frame.image)
    assert view.frame.image[0, 0].tolist() == [60, 70, 80]  # the input is not drawn on


def test_box_and_track_id_are_drawn_around_the_face():
    bare, drawn = compose(_view(), []), compose(_view([_track(track=3)]), [])
    diff = _changed(bare[:H], drawn[:H])
    x0, y0, x1, y1 = (int(v) for v in BOX)
    assert diff[y0, x0:x1].mean() > 0.9 and diff[y1, x0:x1].mean() > 0.9  # top and bottom edges
    assert diff[y0:y1, x0].mean() > 0.9 and diff[y0:y1, x1].mean() > 0.9  # left and right edges
    assert drawn[y1, (x0 + x1) // 2].tolist() == list(track_color(3))
    assert diff[y0 - 20 : y0 - 2, x0 : x0 + 40].mean() > 0.2  # "track 3" above the box
    assert not diff[y0 + 5 : y1 - 5, x0 + 5 : x1 - 5].any()  # the face itself is untouched
    assert not diff[y1 + 10 :, :].any() and not diff[:, x1 + 10 :].any()


LABEL_CASES = {
    # name: (event, rows changed right of the box: (min, max) or 0 for none)
    "three classes": (_event(), (60, 110)),
    "one class": (_event(probs={"positive": 0.9}), (30, 59)),
    "unlabelled": (_event(label=None), (10, 29)),
    "recognition failed": (_event(label=None, error="timeout"), (10, 29)),
    "other track": (_event(track=7), 0),
    "offset too long ago": (_event(on=T - 3.0, off=T - 2.5), 0),
    "onset still to come": (_event(on=T + 0.5, off=T + 1.0), 0),
}


@pytest.mark.parametrize("name", LABEL_CASES)
def test_event_label_and_class_bars_beside_the_box(name):
    event, rows = LABEL_CASES[name]
    view = _view([_track()])
    bare, drawn = _right_of_box(compose(view, [])), _right_of_box(compose(view, [event], show_s=2.0))
    changed_rows = int(_changed(bare, drawn).any(axis=1).sum())
    if rows == 0:
        assert changed_rows == 0
    else:
        assert rows[0] <= changed_rows <= rows[1]
    failed_red = np.all(drawn == (80, 80, 255), axis=2).any() or np.any(
        (drawn[..., 2] > 200) & (drawn[..., 1] < 120) & (drawn[..., 0] < 120)
    )
    assert failed_red == (name == "recognition failed")


def test_the_label_bar_grows_with_the_probability():
    view = _view([_track()])
    green = track_color(0)
    counts = []
    for p in (0.3, 0.6, 0.9):
        drawn = _right_of_box(compose(view, [_event(probs={"positive": p, "negative": 1 - p})]))
        counts.append(int(np.all(drawn == green, axis=2).sum()))
    assert counts[0] > 0
    assert counts[1] / counts[0] == pytest.approx(2.0, rel=0.2)
    assert counts[2] / counts[0] == pytest.approx(3.0, rel=0.2)


def _strip(view: FrameView, events=(), h: int = 96, trace_s: float = 4.0) -> np.ndarray:
    canvas = np.zeros((h, W, 3), np.uint8)
    draw_trace(canvas, view, list(events), trace_s)
    return canvas


@pytest.mark.parametrize("age", [0.1, 1.0, 2.0, 3.5])
def test_trace_newest_at_the_right(age):
    """A spike ``age`` s before the frame peaks at x = (1 - age / trace_s) of the width."""
    flat = _strip(_view([_track()]))
    spiked = _strip(_view([_track(spikes={age: 6.0})]))
    diff = _changed(flat, spiked)[20:]  # below the caption
    cols = np.flatnonzero(diff.any(axis=0))
    assert cols.size and abs(np.median(cols) - (1 - age / 4.0) * (W - 1)) <= 0.03 * W
    rows = np.flatnonzero(diff.any(axis=1)) + 20
    assert rows.min() < 30  # the spike reaches the top: the y scale fits the largest value


def _threshold_row(strip: np.ndarray) -> int:
    on_row = np.all(strip == THRESHOLD, axis=2).sum(axis=1)
    return int(np.argmax(on_row))


def test_threshold_dashed_line_and_y_scale_at_least_twice_the_threshold():
    low = _strip(_view([_track(threshold=3.0)]))  # sigma never above 0.3: scale 0..6
    other = _strip(_view([_track(threshold=1.5)]))  # scale 0..3: the line is again halfway
    high = _strip(_view([_track(threshold=3.0, spikes={1.0: 12.0})]))  # scale 0..12: a quarter up
    y_low, y_other, y_high = _threshold_row(low), _threshold_row(other), _threshold_row(high)
    assert y_low == y_other
    assert 0.35 * 96 < y_low < 0.7 * 96
    bottom = 96 - 4
    assert (bottom - y_high) / (bottom - y_low) == pytest.approx(0.5, abs=0.1)
    dashes = np.all(low[y_low] == THRESHOLD, axis=1).astype(np.int8)
    assert np.count_nonzero(np.diff(dashes) == 1) >= W // 12 - 2  # dashed, not solid
    assert not np.all(_strip(_view())[20:] == THRESHOLD, axis=2).any()  # no track, no threshold


@pytest.mark.parametrize(
    ("on_age", "off_age", "span"),
    [
        (3.0, 2.0, (0.25, 0.5)),
        (0.5, 0.0, (0.875, 1.0)),
        (5.0, 3.0, (0.0, 0.25)),  # partly before the window
        (7.0, 5.0, None),  # all before it
    ],
)
def test_event_spans_are_shaded(on_age, off_age, span):
    view = _view([_track(track=1)])
    ev = _event(track=1, on=T - on_age, off=T - off_age)
    shaded = _changed(_strip(view), _strip(view, [ev]))[30:80]  # between the caption and the polyline
    cols = np.flatnonzero(shaded.mean(axis=0) > 0.9)
    if span is None:
        assert cols.size == 0
        return
    assert abs(cols.min() - span[0] * (W - 1)) <= 2 and abs(cols.max() - span[1] * (W - 1)) <= 2
    assert cols.size == cols.max() - cols.min() + 1  # one solid span
    x = (cols.min() + cols.max()) // 2
    assert _strip(view, [ev])[50, x].tolist() != list(STRIP_BG)


def test_each_track_has_its_trace_in_its_colour():
    strip = _strip(_view([_track(0, spikes={1.0: 5.0}), _track(1, spikes={3.0: 5.0})]))
    for track, age in ((0, 1.0), (1, 3.0)):
        near = np.linalg.norm(strip.astype(int) - track_color(track), axis=2) < 60
        cols = np.flatnonzero(near[20:40].any(axis=0))  # the upper part: only the spikes reach it
        assert cols.size and abs(np.median(cols) - (1 - age / 4.0) * (W - 1)) <= 0.03 * W


# --- the overlay video sink --------------------------------------------------------------------


def test_one_playable_file_per_stream_with_its_frames_size_and_rate(tmp_path):
    sink = OverlayVideoSink(str(tmp_path / "out" / "overlay-{stream}.mp4"), OverlayVideoConfig(crf=18))
    streams = {"cam 1": (25.0, H, W, 12), "rtsp://host:554/live": (15.0, 121, 161, 7)}
    for stream, (fps, h, w, n) in streams.items():
        for i in range(n):
            sink.frame(_view(stream=stream, index=i, t=i / fps, fps=fps, image=_image(h, w)))
    sink.close()
    assert sink.paths == {
        "cam 1": tmp_path / "out" / "overlay-cam_1.mp4",
        "rtsp://host:554/live": tmp_path / "out" / "overlay-rtsp_host_554_live.mp4",
    }
    for stream, (fps, h, w, n) in streams.items():
        frames, rate = _decode(sink.paths[stream])
        assert len(frames) == n and rate == pytest.approx(fps)
        assert frames[0].shape == (h + 96 + (h + 96) % 2, w + w % 2, 3)  # odd sizes padded to even
        err = np.abs(frames[-1][:h, :w].astype(int) - _image(h, w)).mean()
        assert err < 6  # the frame itself, not garbage


def test_without_stream_placeholder_the_first_stream_takes_the_target(tmp_path, caplog):
    target = tmp_path / "overlay.mkv"
    sink = OverlayVideoSink(str(target))
    with caplog.at_level(logging.WARNING, logger="realtime_mer.sinks.video"):
        for stream in ("b/c", "a", "b:c", "a", "d"):
            sink.frame(_view(stream=stream, image=_image(48, 64)))
    sink.close()
    assert sink.paths == {
        "b/c": target,
        "a": tmp_path / "overlay.a.mkv",
        "b:c": tmp_path / "overlay.b_c.mkv",
        "d": tmp_path / "overlay.d.mkv",
    }
    assert [len(_decode(p)[0]) for p in sink.paths.values()] == [1, 2, 1, 1]
    warnings = [r for r in caplog.records if "{stream}" in r.getMessage()]
    assert len(warnings) == 1


def test_streams_whose_safe_names_collide_get_distinct_files(tmp_path):
    sink = OverlayVideoSink(str(tmp_path / "{stream}.mp4"))
    for stream in ("cam/1", "cam:1", "cam?1"):
        sink.frame(_view(stream=stream, image=_image(48, 64)))
    sink.close()
    assert sorted(p.name for p in sink.paths.values()) == ["cam_1-2.mp4", "cam_1-3.mp4", "cam_1.mp4"]


def test_frames_of_another_size_are_resized_to_the_first(tmp_path):
    sink = OverlayVideoSink(str(tmp_path / "o.mp4"))
    for i, (h, w) in enumerate([(120, 160), (240, 320), (60, 80), (120, 160)]):
        sink.frame(_view(index=i, t=i / 30, image=_image(h, w)))
    sink.close()
    frames, _ = _decode(tmp_path / "o.mp4")
    assert [f.shape for f in frames] == [(216, 160, 3)] * 4
    for i, h in ((1, 240), (2, 60)):  # the frame scaled, the strip as it is
        want = cv2.resize(_image(h, 4 * h // 3), (160, 120), interpolation=cv2.INTER_AREA)
        assert np.abs(frames[i][:120].astype(int) - want).mean() < 4
        assert np.abs(frames[i][120:].astype(int) - frames[0][120:]).mean() < 4


def test_two_streams_from_two_threads_while_events_arrive(tmp_path):
    sink = OverlayVideoSink(str(tmp_path / "{stream}.mp4"))
    n = 40

    def work(stream: str) -> None:
        for i in range(n):
            sink.frame(_view([_track(t=i / 30)], stream=stream, index=i, t=i / 30, image=_image(120, 160)))

    with ThreadPoolExecutor(2) as pool:
        done = [pool.submit(work, s) for s in ("left", "right")]
        for i in range(300):
            sink.emit(_event(stream=("left", "right")[i % 2], on=i / 300, off=i / 300 + 0.1))
            sink.emit(Status("left", "running", None, "first frame", "", 0, 0, 0, 0, 0, 0))
        for d in done:
            d.result()  # re-raises what a worker raised
    sink.close()
    assert {s: len(_decode(p)[0]) for s, p in sink.paths.items()} == {"left": n, "right": n}


def test_memory_stays_bounded_however_long_the_run(tmp_path):
    cfg = OverlayVideoConfig(trace_s=2.0, show_s=1.0, strip_px=32)
    sink = OverlayVideoSink(str(tmp_path / "long.mp4"), cfg)
    image, fps = _image(32, 48), 30.0
    for i in range(1500):  # 50 s of frames, an event every 5 frames (6 per s)
        t = i / fps
        if i % 5 == 0:
            sink.emit(_event(on=t - 0.2, off=t - 0.1))
        sink.frame(_view(t=t, index=i, image=image))
    held = len(sink.events)
    assert 0 < held <= 2.0 * 6 + 2  # the events of the last trace window only
    sink.emit(_event(on=1.0, off=1.1))  # far older than the newest frame: not kept at all
    assert len(sink.events) == held
    sink.emit(Status("cam", "running", None, "first frame", "", 0, 0, 0, 0, 0, 0))
    assert len(sink.events) == held and sink.pending() == 0
    for i in range(2000):  # events of a stream that sends no frame are capped too
        sink.emit(_event(stream="silent", on=i, off=i + 0.1))
    assert len(sink.events) <= held + sink.events.limit
    sink.close()
    assert len(_decode(tmp_path / "long.mp4")[0]) == 1500


def test_close_is_idempotent_and_later_frames_are_ignored(tmp_path):
    sink = OverlayVideoSink(str(tmp_path / "{stream}.mp4"))
    sink.frame(_view(stream="a", image=_image(48, 64)))
    sink.flush()
    sink.close()
    sink.close()
    sink.frame(_view(stream="a", image=_image(48, 64)))
    sink.frame(_view(stream="b", image=_image(48, 64)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4"]
    assert len(_decode(tmp_path / "a.mp4")[0]) == 1


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("overlay.txt", "must end in one of"),
        ("overlay", "must end in one of"),
        ("file.bin/overlay.mp4", "cannot create folder"),
        ("{stream}/overlay.mp4", "in the file name"),
        ("folder.mp4", "it is a folder"),
    ],
)
def test_bad_targets_are_refused_with_a_clear_message(tmp_path, target, message):
    (tmp_path / "file.bin").write_bytes(b"x")
    (tmp_path / "folder.mp4").mkdir()
    with pytest.raises(SinkError, match=message):
        OverlayVideoSink(str(tmp_path / target))


def test_registry_builds_it_from_the_config_mapping(tmp_path):
    sink = make_sink("video", str(tmp_path / "o.mp4"), {"strip_px": 64, "crf": 30})
    assert isinstance(sink, OverlayVideoSink) and sink.config == OverlayVideoConfig(crf=30, strip_px=64)
    sink.close()
    with pytest.raises(ConfigError, match="crf"):
        make_sink("video", str(tmp_path / "o.mp4"), {"crf": 99})


# --- the dashboard -----------------------------------------------------------------------------


def _face_view(**kw) -> FrameView:
    crop = render_face(112, seed=2).image.astype(np.uint8)
    face = AlignedFace("cam", 0, 300, T, crop, np.zeros((68, 2), np.float32), np.eye(2, 3, dtype=np.float32))
    magnified = np.full((112, 112, 3), 0.75, np.float32)
    points = (np.array([[60.0, 100.0], [120.0, 100.0], [88.0, 140.0]], np.float32),)
    return _view([_track(face=face, magnified=magnified, **kw)], points=points)


def test_dashboard_shape_and_panels():
    view = _face_view()
    board = render_dashboard(view, [])
    fw = round(W * FRAME_H / H)
    assert board.shape == (FRAME_H + TRACE_H, fw + PANEL, 3)
    aligned = board[20:PANEL, fw:]  # below the panel's caption
    want = cv2.resize(view.tracks[0].face.image, (PANEL, PANEL))[20:].astype(int)
    assert np.abs(aligned.astype(int) - want).mean() < 3
    magnified = board[PANEL + 20 : FRAME_H, fw:]
    assert np.abs(magnified.astype(int) - 191).max() <= 1
    scale = FRAME_H / H
    for x, y in view.points[0] * scale:
        assert board[round(float(y)), round(float(x))].tolist() == [0, 255, 0]  # landmarks
    x0, y0, x1, _ = (round(v * scale) for v in BOX)
    assert board[y0, (x0 + x1) // 2].tolist() == list(track_color(0))  # the box, scaled
    bare = render_dashboard(_view([_track()]), [])
    assert not bare[:FRAME_H, fw:][20:PANEL].any()  # no face seen in this frame: empty panel


def test_dashboard_draws_labels_and_trace():
    view = _face_view()
    bare = render_dashboard(view, [])
    fw = round(W * FRAME_H / H)
    labelled = render_dashboard(view, [_event()])
    diff = _changed(bare, labelled)
    assert diff[:FRAME_H, round(BOX[2] * FRAME_H / H) + 3 : fw].any()  # the label beside the box
    assert diff[FRAME_H:].any()  # the event's span in the trace
    spiked = render_dashboard(_face_view(spikes={0.5: 6.0}), [])
    trace_diff = _changed(bare, spiked)[FRAME_H:]
    assert trace_diff.any() and not _changed(bare, spiked)[:FRAME_H].any()
    assert np.median(np.flatnonzero(trace_diff.any(axis=0))) > 0.8 * (fw + PANEL)


# --- the display sink --------------------------------------------------------------------------


def test_display_sink_needs_a_screen(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(SinkError, match="DISPLAY is not set"):
        make_sink("display", "")


def test_display_sink_shows_the_newest_dashboard_of_each_stream(monkeypatch):
    monkeypatch.setenv("DISPLAY", ":99")  # never opened: ``show`` is replaced below
    shown: list[tuple[dict, list]] = []
    answer = [True]

    def fake_show(images, windows):
        shown.append((dict(images), list(windows)))
        return answer[0]

    closed: list[list[str]] = []
    monkeypatch.setattr(display_sink, "show", fake_show)
    monkeypatch.setattr(display_sink, "close_windows", lambda w: closed.append(list(w)))
    sink = make_sink("display", "ignored", {"trace_s": 3.0})
    event = _event(stream="b")
    sink.emit(event)
    sink.emit(Status("b", "running", None, "first frame", "", 0, 0, 0, 0, 0, 0))
    last: dict[str, FrameView] = {}

    def work(stream: str) -> None:
        for i in range(5):
            view = replace(_face_view(), frame=Frame(stream, 300 + i, T + i / 30, 0.0, _image()))
            sink.frame(view)
            last[stream] = view

    with ThreadPoolExecutor(2) as pool:
        for d in [pool.submit(work, s) for s in ("a", "b")]:
            d.result()
    assert sink.poll() is True
    images, windows = shown[-1]
    assert sorted(images) == sorted(windows) == ["realtime-mer: a", "realtime-mer: b"]
    for stream, events in (("a", []), ("b", [event])):
        want = render_dashboard(last[stream], events, trace_s=3.0)
        assert np.array_equal(images[f"realtime-mer: {stream}"], want)
    assert sink.poll() is True and shown[-1] == ({}, windows)  # nothing new: nothing redrawn
    answer[0] = False
    assert sink.poll() is False
    answer[0] = True
    assert sink.poll() is False  # once closed by the user, it stays closed
    sink.close()
    sink.close()
    assert closed == [windows]
