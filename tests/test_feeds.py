"""Feeds from the command line, YAML streams files and .streams lists: parsing, ${ENV}, clear errors."""

from __future__ import annotations

import pytest

from realtime_mer.config import ConfigError
from realtime_mer.feeds import SourceSpec, display_name, parse_source, read_streams_file


@pytest.mark.parametrize(
    ("text", "kind", "target"),
    [
        ("rtsp://cam/live", "rtsp", "rtsp://cam/live"),
        ("RTSPS://user:pw@cam:8554/a?token=x", "rtsp", "RTSPS://user:pw@cam:8554/a?token=x"),
        ("0", "camera", 0),
        ("camera:2", "camera", 2),
        ("  clip.mp4 ", "video", "/base/clip.mp4"),
        ("/abs/clip.mp4", "video", "/abs/clip.mp4"),
    ],
)
def test_parse_source(text, kind, target):
    from pathlib import Path

    spec = parse_source(text, "here", Path("/base"))
    assert (spec.kind, spec.target) == (kind, target)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty source"),
        ("rtsp://user:pw@/live", "no host"),
        ("rtsp://cam:99999/live", "the port is not a number"),
        ("rtsp://admin:pw#1@cam/live", "percent-encode them"),
        ("rtsp://cam/li ve", "white space"),
        ("http://user:pw@cam/stream.m3u8", "not a source this tool reads"),
    ],
)
def test_parse_source_errors_name_the_entry_without_credentials(text, message):
    with pytest.raises(ConfigError) as e:
        parse_source(text, "streams.yaml: feed 3 (door)")
    assert message in str(e.value) and "streams.yaml: feed 3 (door)" in str(e.value)
    assert "pw" not in str(e.value)


def test_yaml_streams_file_with_names_settings_and_env(tmp_path, monkeypatch):
    monkeypatch.setenv("LOBBY_PASS", "s3cret%231")
    path = tmp_path / "feeds.yaml"
    path.write_text(
        "feeds:\n"
        "  - name: lobby\n"
        "    url: rtsp://viewer:${LOBBY_PASS}@10.0.0.5/stream1\n"
        "    capture: {read_timeout_s: 10}\n"
        "    face: {num_faces: 3}\n"
        "  - url: recordings/entrance.mp4\n"
        "  - camera:1\n"
        "  - url: 0\n"
    )
    specs = read_streams_file(path)
    assert specs == [
        SourceSpec(
            "rtsp",
            "rtsp://viewer:s3cret%231@10.0.0.5/stream1",
            "lobby",
            {"capture": {"read_timeout_s": 10}, "face": {"num_faces": 3}},
        ),
        SourceSpec("video", str(tmp_path / "recordings" / "entrance.mp4")),
        SourceSpec("camera", 1),
        SourceSpec("camera", 0),
    ]
    assert [display_name(s) for s in specs] == [
        "lobby",
        str(tmp_path / "recordings" / "entrance.mp4"),
        "camera:1",
        "camera:0",
    ]


def test_a_bare_list_is_a_streams_file_too(tmp_path):
    path = tmp_path / "feeds.yml"
    path.write_text("- rtsp://a/1\n- {url: 'rtsp://b/2', name: b}\n")
    assert [(s.target, s.name) for s in read_streams_file(path)] == [("rtsp://a/1", None), ("rtsp://b/2", "b")]


def test_ultralytics_streams_list(tmp_path, monkeypatch):
    monkeypatch.setenv("PW", "p!w")
    path = tmp_path / "cams.streams"
    path.write_text("# lobby cameras\nrtsp://admin:${PW}@10.0.0.7/live\n\n0\nclips/a.mp4\n")
    specs = read_streams_file(path)
    assert [(s.kind, s.target) for s in specs] == [
        ("rtsp", "rtsp://admin:p!w@10.0.0.7/live"),
        ("camera", 0),
        ("video", str(tmp_path / "clips" / "a.mp4")),
    ]
    assert display_name(specs[0]) == "rtsp://***@10.0.0.7/live"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("- {name: door, urll: rtsp://a/1}\n", "feeds.yaml: feed 1 (door): unknown key(s) 'urll'"),
        ("- {name: door}\n", "feed 1 (door): 'url' is required"),
        ("- rtsp://a/1\n- {name: x, url: 'rtsp://user:pw@:554/a'}\n", "feed 2 (x): malformed URL 'rtsp://***@:554/a'"),
        ("- {url: rtsp://a/1, face: {num_face: 2}}\n", "feed 1: pipeline.face: unknown key(s) num_face"),
        (
            "- {url: rtsp://a/1, spot: {threshold: low}}\n",
            "feed 1: pipeline.spot.threshold: Input should be a valid number",
        ),
        ("- {url: rtsp://a/1, recognize: {model: rcn}}\n", "unknown key(s) 'recognize'"),
        ("- {url: 'rtsp://u:${NOT_SET_ANYWHERE}@a/1'}\n", "feed 1: environment variable NOT_SET_ANYWHERE is not set"),
        ("- rtsp://a/1\n- rtsp://a/1\n", "feeds 1 and 2 are both named 'rtsp://a/1'"),
        ("- {url: rtsp://a/1, name: ''}\n", "'name' must be a non-empty string"),
        ("feeds: rtsp://a/1\n", "expected a list of feeds, got str"),
        ("cameras: [rtsp://a/1]\n", "only the key 'feeds'"),
        ("[]\n", "no feeds"),
        ("- [1, 2]\n", "feed 1: expected a mapping"),
        ("- {url: rtsp://a/1\n", "not valid YAML"),
    ],
)
def test_streams_file_errors_name_the_entry(tmp_path, body, message):
    path = tmp_path / "feeds.yaml"
    path.write_text(body)
    with pytest.raises(ConfigError) as e:
        read_streams_file(path)
    assert message in str(e.value)
    assert "pw" not in str(e.value)


def test_missing_streams_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        read_streams_file(tmp_path / "nope.yaml")
