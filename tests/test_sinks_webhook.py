"""Webhook sink against a real HTTP server on 127.0.0.1: batching, outages, spill and replay, refusals."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from realtime_mer.config import ConfigError
from realtime_mer.sinks import SinkError, make_sink
from realtime_mer.sinks.webhook import WebhookSink
from realtime_mer.types import Event, Interval, Record, Status

LOGGER = "realtime_mer.sinks.webhook"


class Endpoint:
    """A real HTTP endpoint that keeps the JSON arrays POSTed to it.

    ``answer`` is the status of the answers (200, 503, ...) after the ``script`` ones are used up;
    a batch holding an id in ``reject_ids`` is answered ``reject_code`` instead of 200; while
    ``gate`` is clear, answers are held back. ``stop()`` closes the port, ``start()`` reopens it.
    """

    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []  # answered 200
        self.refused: list[list[dict[str, Any]]] = []  # answered reject_code
        self.headers: list[dict[str, str]] = []
        self.paths: list[str] = []
        self.gets = 0
        self.answer = 200
        self.script: list[int] = []
        self.reject_ids: set[str] = set()
        self.reject_code = 400
        self.gate = threading.Event()
        self.gate.set()
        self.arrived = threading.Event()
        self.lock = threading.Lock()
        self.port = 0
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> Endpoint:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                batch = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                endpoint.arrived.set()
                endpoint.gate.wait(10)
                with endpoint.lock:
                    code = endpoint.script.pop(0) if endpoint.script else endpoint.answer
                    if code == 200 and any(r.get("id") in endpoint.reject_ids for r in batch):
                        code = endpoint.reject_code
                    endpoint.headers.append(dict(self.headers))
                    endpoint.paths.append(self.path)
                    if code == 200:
                        endpoint.batches.append(batch)
                    elif code == endpoint.reject_code:
                        endpoint.refused.append(batch)
                self.send_response(code)
                if 300 <= code < 400:
                    self.send_header("Location", f"http://127.0.0.1:{endpoint.port}/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:
                endpoint.gets += 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def url(self, userinfo: str = "", query: str = "") -> str:
        return f"http://{userinfo}127.0.0.1:{self.port}/hook{query}"

    @property
    def ids(self) -> list[str]:
        with self.lock:
            return [key(r) for batch in self.batches for r in batch]


def event(i: int) -> Event:
    return Event("cam", 0, Interval(i, i + 1, i + 2, i / 30, (i + 1) / 30, (i + 2) / 30, "micro", 6.0), id=f"e{i}")


def status(i: int) -> Status:
    return Status("cam", "running", "connecting", "first frame", "2026-01-01T00:00:00.000Z", 0, i, i, 0, 0, 0)


def key(record: dict[str, Any]) -> str:
    return record["id"] if record["type"] == "event" else f"status{record['index']}"


def ids(records: list[Record] | range) -> list[str]:
    return [f"e{i}" for i in records] if isinstance(records, range) else [key(r.to_json()) for r in records]


def spill_ids(path: Path) -> list[str]:
    return [key(json.loads(line)) for line in path.read_text().splitlines()]


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    ep = Endpoint().start()
    yield ep
    ep.stop()


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[..., WebhookSink]]:
    """Builds sinks with fast timings and a spill folder in ``tmp_path``; closes them at the end."""
    made: list[WebhookSink] = []

    def build(url: str, **settings: Any) -> WebhookSink:
        options: dict[str, Any] = {
            "flush_s": 0.05,
            "timeout_s": 2.0,
            "retry_initial_s": 0.05,
            "retry_max_s": 0.2,
            "drain_s": 2.0,
            "spill_dir": str(tmp_path / "spill"),
        }
        sink = WebhookSink(url, WebhookSink.Config(**{**options, **settings}))
        made.append(sink)
        return sink

    yield build
    for sink in made:
        sink.close()


def test_up_delivers_every_record_once_in_order_in_batches(
    endpoint: Endpoint, make: Callable[..., WebhookSink], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MER_TEST_TOKEN", "tok-from-env")
    sink = make(
        endpoint.url(),
        batch_size=7,
        headers={"Authorization": "Bearer ${MER_TEST_TOKEN}", "X-Trace": "${MER_TEST_TOKEN}-7"},
    )
    records: list[Record] = [event(i) for i in range(40)]
    records[10:10] = [status(1)]
    records[25:25] = [status(2)]
    for r in records:
        sink.emit(r)
    wait_until(lambda: sink.delivered == len(records), "every record delivered")
    assert endpoint.ids == ids(records)
    sizes = [len(b) for b in endpoint.batches]
    assert max(sizes) <= 7 and len(sizes) >= len(records) // 7
    assert (sink.pending(), sink.spilled, sink.rejected, sink.failures) == (0, 0, 0, 0)
    assert {h["Content-Type"] for h in endpoint.headers} == {"application/json"}
    assert {h["Authorization"] for h in endpoint.headers} == {"Bearer tok-from-env"}
    assert {h["X-Trace"] for h in endpoint.headers} == {"tok-from-env-7"}
    sink.close()
    assert not sink.spill_path.exists()


def test_status_records_are_skipped_when_off(endpoint: Endpoint, make: Callable[..., WebhookSink]) -> None:
    sink = make(endpoint.url(), status=False)
    for r in (status(1), event(0), status(2), event(1)):
        sink.emit(r)
    sink.close()
    assert endpoint.ids == ["e0", "e1"]


def test_outages_lose_and_duplicate_nothing(endpoint: Endpoint, make: Callable[..., WebhookSink]) -> None:
    endpoint.stop()  # down from the start: the port is closed
    sink = make(endpoint.url(), batch_size=5)
    sent = 0

    def emit(n: int) -> None:
        nonlocal sent
        for _ in range(n):
            sink.emit(event(sent))
            sent += 1

    emit(12)
    wait_until(lambda: sink.failures >= 2 and sink.spilled >= 1, "failed attempts while the port is closed")
    assert sink.delivered == 0 and sink.pending() == 12
    endpoint.start()
    emit(12)
    wait_until(lambda: sink.delivered == 24, "the spill replayed, then the new records")
    endpoint.answer = 503  # down again, answering this time
    failed = sink.failures
    emit(12)
    wait_until(lambda: sink.failures >= failed + 2, "failed attempts while answering 503")
    endpoint.answer = 200
    emit(12)
    wait_until(lambda: sink.delivered == 48, "every record delivered")
    assert endpoint.ids == ids(range(48))
    assert sink.pending() == 0 and sink.spilled >= 12 and sink.rejected == 0
    assert sink.last_error is not None and "503" in sink.last_error
    assert not sink.spill_path.exists()


def test_close_while_down_spills_and_the_next_run_replays(
    endpoint: Endpoint, make: Callable[..., WebhookSink], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    endpoint.stop()
    sink = make(endpoint.url(), batch_size=4, drain_s=0.3)
    for i in range(10):
        sink.emit(event(i))
    wait_until(lambda: sink.spilled >= 1, "a failed batch in the spill file")
    for i in range(10, 20):
        sink.emit(event(i))
    sink.flush()  # while the spill holds records, flush moves the memory queue into it
    assert spill_ids(sink.spill_path) == ids(range(20))
    started = time.monotonic()
    sink.close()
    assert time.monotonic() - started < 0.3 + 2.0 + 1.0  # drain_s + timeout_s + slack
    assert sink.pending() == 20 and sink.delivered == 0
    assert spill_ids(sink.spill_path) == ids(range(20))
    assert any("20 records wait in" in m and str(sink.spill_path) in m for m in caplog.messages)
    with pytest.raises(SinkError, match="closed"):
        sink.emit(event(99))
    sink.close()  # a second close does nothing

    endpoint.start()
    again = make(endpoint.url(), batch_size=4)
    assert any("replaying 20 records" in m for m in caplog.messages)
    for i in range(20, 25):
        again.emit(event(i))
    wait_until(lambda: again.delivered == 25, "the old run's records, then the new ones")
    assert endpoint.ids == ids(range(25))
    again.close()
    assert sorted(p.suffix for p in sink.spill_path.parent.iterdir()) == [".lock"]


def test_replay_resumes_after_the_last_delivered_batch(
    endpoint: Endpoint, make: Callable[..., WebhookSink], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    endpoint.stop()
    first = make(endpoint.url(), batch_size=5, drain_s=0.0)
    for i in range(20):
        first.emit(event(i))
    first.close()
    assert spill_ids(first.spill_path) == ids(range(20))
    with first.spill_path.open("ab") as fh:  # the machine stopped while a record was being written
        fh.write(b'{"type":"event","id":"torn')

    endpoint.script = [200]  # one batch gets through, then the endpoint fails again
    endpoint.answer = 503
    endpoint.start()
    second = make(endpoint.url(), batch_size=5, drain_s=0.2)
    assert any("incomplete last record" in m for m in caplog.messages)
    wait_until(lambda: second.delivered == 5 and second.failures >= 1, "one batch delivered, then failures")
    second.emit(event(20))  # appended after the cut
    second.close()
    assert second.pending() == 16

    endpoint.answer = 200
    third = make(endpoint.url(), batch_size=5)
    wait_until(lambda: third.delivered == 16, "the rest of the spill")
    assert endpoint.ids == ids(range(21))


def test_close_during_a_hanging_request_keeps_the_batch_and_the_queue(
    endpoint: Endpoint, make: Callable[..., WebhookSink]
) -> None:
    endpoint.gate.clear()  # the endpoint takes the request and never answers in time
    sink = make(endpoint.url(), batch_size=2, flush_s=0.0, timeout_s=0.5, drain_s=0.1)
    sink.emit(event(0))
    assert endpoint.arrived.wait(5), "the first batch never reached the endpoint"
    for i in range(1, 5):
        sink.emit(event(i))
    started = time.monotonic()
    sink.close()
    assert time.monotonic() - started < 0.1 + 0.5 + 1.0  # drain_s + timeout_s + slack
    endpoint.gate.set()
    assert sink.pending() == 5 and sink.delivered == 0
    assert sink.last_error is not None and "timed out" in sink.last_error
    assert spill_ids(sink.spill_path) == ids(range(5))


@pytest.mark.parametrize("code", [400, 302])
@pytest.mark.parametrize("from_spill", [False, True], ids=["from-memory", "from-spill"])
def test_refused_batch_goes_to_the_rejected_file_and_later_ones_arrive(
    endpoint: Endpoint, make: Callable[..., WebhookSink], caplog: pytest.LogCaptureFixture, code: int, from_spill: bool
) -> None:
    caplog.set_level(logging.ERROR, logger=LOGGER)
    endpoint.reject_ids = {"e7"}
    endpoint.reject_code = code
    if from_spill:
        endpoint.stop()
    sink = make(endpoint.url(), batch_size=5, flush_s=1.0)
    for i in range(15):
        sink.emit(event(i))
    if from_spill:
        wait_until(lambda: sink.spilled == 15, "every record in the spill file")
        endpoint.start()
    wait_until(lambda: sink.delivered + sink.rejected == 15, "every batch answered")
    refused = [key(r) for batch in endpoint.refused for r in batch]
    assert len(endpoint.refused) == 1 and "e7" in refused
    assert sink.rejected == len(refused)
    assert spill_ids(sink.rejected_path) == refused
    assert endpoint.ids == [i for i in ids(range(15)) if i not in refused]
    assert "e14" in endpoint.ids
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and f"HTTP {code}" in errors[0] and str(sink.rejected_path) in errors[0]
    assert endpoint.gets == 0  # a redirect is not followed as a GET
    assert sink.pending() == 0 and not sink.spill_path.exists()


def test_full_memory_queue_spills_instead_of_blocking_or_dropping(
    endpoint: Endpoint, make: Callable[..., WebhookSink]
) -> None:
    endpoint.gate.clear()  # the endpoint holds its answers back
    sink = make(endpoint.url(), batch_size=2, max_queue=3, flush_s=0.0)
    sink.emit(event(0))
    assert endpoint.arrived.wait(5), "the first batch never reached the endpoint"
    started = time.monotonic()
    for i in range(1, 31):
        sink.emit(event(i))
    assert time.monotonic() - started < 1.0
    assert sink.spilled > 0 and sink.pending() == 31
    endpoint.gate.set()
    wait_until(lambda: sink.delivered == 31, "every record delivered")
    assert endpoint.ids == ids(range(31))
    assert not sink.spill_path.exists()


@pytest.mark.parametrize(
    ("target", "match"),
    [
        ("", "empty"),
        ("ftp://example.com/hook", "not http or https"),
        ("example.com/hook", "not http or https"),
        ("http:///hook", "needs a host"),
        ("http://example.com:0/hook", "port other than 0"),
        ("http://example.com:99999/hook", "not a valid URL"),
        ("http://example.com:web/hook", "not a valid URL"),
        ("http://exa mple.com/hook", "spaces"),
        ("http://bücher.example/hook", "non-ASCII"),
    ],
)
def test_bad_target_says_what_is_expected(tmp_path: Path, target: str, match: str) -> None:
    with pytest.raises(SinkError, match=match) as err:
        WebhookSink(target, WebhookSink.Config(spill_dir=str(tmp_path)))
    assert "http:// or https://" in str(err.value)


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"batch_size": 2.5}, "batch_size\n  Input should be a valid integer"),
        ({"max_queue": 0}, "max_queue must be an integer >= 1"),
        ({"flush_s": -1}, "flush_s must be a number of seconds >= 0"),
        ({"timeout_s": 0}, "timeout_s must be a number of seconds > 0"),
        ({"retry_initial_s": 0}, "retry_initial_s must be a number of seconds > 0"),
        ({"retry_max_s": float("inf")}, "retry_max_s must be a number of seconds > 0"),
        ({"retry_initial_s": 2.0, "retry_max_s": 1.0}, r"retry_max_s \(1.0\) must be >= retry_initial_s"),
        ({"drain_s": -0.5}, "drain_s must be a number of seconds >= 0"),
        ({"spill_dir": " "}, "spill_dir must be a folder path"),
        ({"status": "maybe"}, "status\n  Input should be a valid boolean"),
        ({"headers": ["Authorization"]}, "headers\n  Input should be a valid dictionary"),
        ({"headers": {"Bad Name": "x"}}, "not a valid HTTP header name"),
        ({"headers": {"Content-Type": "text/plain"}}, "set by the sink"),
        ({"headers": {"X-Token": "a\r\nX-Evil: 1"}}, "one-line string"),
    ],
)
def test_bad_config_is_a_clear_error(settings: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        WebhookSink.Config(**settings)


def test_bad_options_through_the_registry_name_the_key(tmp_path: Path, endpoint: Endpoint) -> None:
    with pytest.raises(ConfigError, match=r"sinks\.webhook.*batch_size"):
        make_sink("webhook", endpoint.url(), {"batch_size": 0, "spill_dir": str(tmp_path)})
    with pytest.raises(ConfigError, match=r"sinks\.webhook.*unknown key\(s\) retries"):
        make_sink("webhook", endpoint.url(), {"retries": 3})
    sink = make_sink("webhook", endpoint.url(), {"batch_size": 2, "spill_dir": str(tmp_path)})
    sink.emit(event(0))
    sink.close()
    assert isinstance(sink, WebhookSink) and endpoint.ids == ["e0"]


def test_header_errors_and_one_sink_per_spill(
    tmp_path: Path, endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MER_TEST_UNSET", raising=False)
    config = WebhookSink.Config(spill_dir=str(tmp_path), headers={"Authorization": "Bearer ${MER_TEST_UNSET}"})
    with pytest.raises(SinkError, match="environment variable MER_TEST_UNSET is not set"):
        WebhookSink(endpoint.url(), config)
    config = WebhookSink.Config(spill_dir=str(tmp_path), headers={"authorization": "Bearer x"})
    with pytest.raises(SinkError, match="keep one"):
        WebhookSink(endpoint.url("u:p@"), config)
    sink = WebhookSink(endpoint.url(), WebhookSink.Config(spill_dir=str(tmp_path)))
    try:
        with pytest.raises(SinkError, match="another sink"):
            WebhookSink(endpoint.url(), WebhookSink.Config(spill_dir=str(tmp_path)))
    finally:
        sink.close()
    WebhookSink(endpoint.url(), WebhookSink.Config(spill_dir=str(tmp_path))).close()  # free again


def test_credentials_appear_nowhere(
    tmp_path: Path, endpoint: Endpoint, make: Callable[..., WebhookSink], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="realtime_mer")
    endpoint.stop()
    url = endpoint.url("alice:s3cr3t@", "?token=tok123&ch=1")
    sink = make(url, batch_size=2, drain_s=0.1)
    assert sink.name == f"webhook:http://***@127.0.0.1:{endpoint.port}/hook?token=***&ch=1"
    for i in range(3):
        sink.emit(event(i))
    wait_until(lambda: sink.failures >= 2 and sink.spilled >= 1, "failed attempts while the port is closed")
    down_error = sink.last_error
    endpoint.start()
    wait_until(lambda: sink.delivered == 3, "the spill replayed")
    endpoint.reject_ids = {"e3"}
    sink.emit(event(3))
    wait_until(lambda: sink.rejected == 1, "a refused batch")
    endpoint.stop()
    sink.emit(event(4))
    sink.close()  # leaves e4 in the spill file, logging where
    with pytest.raises(SinkError) as err:
        WebhookSink("ftp://alice:s3cr3t@example.com/x", WebhookSink.Config(spill_dir=str(tmp_path)))

    assert any("records wait in" in m for m in caplog.messages)
    texts = [
        sink.name,
        str(down_error),
        str(sink.last_error),
        str(err.value),
        caplog.text,
        *(p.name for p in tmp_path.rglob("*")),
    ]
    for secret in ("alice", "s3cr3t", "tok123"):
        assert not [t for t in texts if secret in t], secret
    # ...but the endpoint got them: user info as Basic authentication, the token in the query
    assert endpoint.headers[0]["Authorization"] == "Basic " + base64.b64encode(b"alice:s3cr3t").decode()
    assert endpoint.paths[0] == "/hook?token=tok123&ch=1"
