"""HTTP POST of records in JSON batches, kept in a spill file on disk while the endpoint is down."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import math
import os
import random
import re
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import field
from email.message import Message
from http.client import HTTPException
from pathlib import Path
from typing import IO, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from .. import __version__
from ..capture.base import redact_url
from ..config import ConfigError, expand_env, settings
from ..files import atomic_path, cache_dir
from ..types import Record, Status
from .base import SinkError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; one process per spill_dir is then the user's care
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

Outcome = Literal["ok", "down", "rejected"]

_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_SET_BY_SINK = ("content-type", "content-length", "host")
_EXPECTED = "expected an http:// or https:// URL such as https://example.com/hook"


@settings
class WebhookConfig:
    """Settings of the webhook sink (``sinks.webhook`` in the pipeline config).

    Attributes:
        batch_size: records per POST, at most.
        flush_s: a partial batch is sent once its oldest record has waited this long, s.
        timeout_s: limit of each request (connecting, then each read of the answer), s.
        retry_initial_s, retry_max_s: pauses between attempts while the endpoint is down, s:
            doubling from ``retry_initial_s`` up to ``retry_max_s``, each drawn at 50-100 % of
            that (jitter); a ``Retry-After`` answer lengthens the pause, up to ``retry_max_s``.
        max_queue: records held in memory; one more and ``emit`` moves them all to the spill file.
        spill_dir: folder of the spill, replay offset and rejected files (``None``: the user cache
            folder's ``realtime-mer/webhook-spill``).
        status: post the feeds' status records too, not only the events.
        headers: extra HTTP headers (e.g. ``Authorization``); ``${NAME}`` in a value is replaced by
            that environment variable when the sink starts, an unset one is an error.
            Left out of ``repr`` (they may hold secrets).
        drain_s: how long ``close()`` keeps delivering before it leaves the rest in the spill file, s.
    """

    batch_size: int = 100
    flush_s: float = 0.5
    timeout_s: float = 5.0
    retry_initial_s: float = 0.5
    retry_max_s: float = 30.0
    max_queue: int = 10000
    spill_dir: str | None = None
    status: bool = True
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    drain_s: float = 10.0

    def __post_init__(self) -> None:
        for name in ("batch_size", "max_queue"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        for name, zero_ok in (
            ("flush_s", True),
            ("timeout_s", False),
            ("retry_initial_s", False),
            ("retry_max_s", False),
            ("drain_s", True),
        ):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
                raise ValueError(f"{name} must be a number of seconds {'>= 0' if zero_ok else '> 0'}, got {value!r}")
        if self.retry_max_s < self.retry_initial_s:
            raise ValueError(f"retry_max_s ({self.retry_max_s}) must be >= retry_initial_s ({self.retry_initial_s})")
        if self.spill_dir is not None and not self.spill_dir.strip():
            raise ValueError(f"spill_dir must be a folder path or null, got {self.spill_dir!r}")
        for key, value in self.headers.items():
            if not _HEADER_NAME.fullmatch(key):
                raise ValueError(f"headers: {key!r} is not a valid HTTP header name")
            if key.lower() in _SET_BY_SINK:
                raise ValueError(f"headers: {key} is set by the sink; remove it")
            if "\r" in value or "\n" in value:
                raise ValueError(f"headers: the value of {key} must be a one-line string")


class WebhookSink:
    """POSTs records as JSON arrays from a sender thread; a record is never lost, only delayed.

    ``emit`` only queues the record (in memory; on disk when memory is full) and returns at once.
    The sender thread POSTs up to ``batch_size`` records per request (body: ``[record.to_json(),
    ...]``, ``Content-Type: application/json``), a partial batch once its oldest record waited
    ``flush_s``. The answer decides:

    - 2xx: delivered.
    - no answer (connection error, timeout), 5xx, 408, 429: the endpoint is down. The batch is
      appended to the spill file (JSON Lines, fsynced) and retried from there with backoff. While
      the spill file holds records, newer records go through it too, so order is kept; once the
      endpoint answers, the spill file is replayed in order, then the memory queue follows.
    - any other answer (4xx; 3xx, as redirects are not followed): the batch is rejected for good,
      appended to the rejected file, logged as an error and counted in ``rejected``.

    When ``max_queue`` records wait in memory, ``emit`` moves them and the new one to the spill
    file (written to the OS at once, fsynced by ``flush``). Order is kept, except that a batch in
    flight at that moment goes after them if its POST fails.

    Files, in ``spill_dir``, named by a hash of the full URL so that two webhooks never mix:
    ``webhook-HASH.jsonl`` (the spill), ``.offset`` (bytes of the spill already delivered, replaced
    atomically after each delivered batch), ``.rejected.jsonl``, and ``.lock`` (one sink per spill:
    a second sink with the same URL and ``spill_dir`` raises SinkError). A spill file left by an
    earlier run is replayed first. User info in the URL (``https://user:pw@host/hook``) is sent
    as HTTP Basic authentication; credentials appear in no name, log, error or file name.

    Delivery is exactly-once while the process runs: a record is sent again only when the
    endpoint failed before answering its batch. After a crash, the batch that was being replayed
    from the spill file is sent again, so receivers should drop duplicates by the event's ``id``.
    A process that dies without ``close()`` loses what was only in memory: while the endpoint is
    up, the batch in flight and the records of the last ``flush_s``; while it is down, the records
    that came since the last retry or ``flush()`` (both move the memory queue to the spill file).

    ``close()`` stops accepting records and delivers for up to ``drain_s`` (plus the request in
    flight, at most ``timeout_s``), then appends what is left to the spill file, fsyncs it and logs
    how many records wait there for the next run.

    Usage (what ``--webhook URL`` builds)::

        sink = WebhookSink("https://hooks.example.com/mer",
                           WebhookSink.Config(headers={"Authorization": "Bearer ${MER_TOKEN}"}))
        sink.emit(event)  # returns at once
        sink.close()      # delivers, or keeps the rest on disk for the next run

    Attributes:
        name: ``webhook:`` and the URL without credentials.
        spill_path, rejected_path: the spill and rejected files.
        delivered, spilled, rejected: records delivered, ever written to the spill, rejected.
        failures: failed POST attempts (the endpoint was down).
        last_error: the latest failure in words (without credentials), or ``None``.
    """

    Config = WebhookConfig

    def __init__(self, target: str, config: WebhookConfig | None = None) -> None:
        self.config = config or WebhookConfig()
        self._url, auth = _post_url(target)
        self.name = f"webhook:{redact_url(target)}"
        self._headers = _headers(self.config.headers, auth)
        self.delivered = 0
        self.spilled = 0
        self.rejected = 0
        self.failures = 0
        self.last_error: str | None = None
        folder = Path(self.config.spill_dir or cache_dir() / "webhook-spill")
        stem = "webhook-" + hashlib.sha256(target.encode()).hexdigest()[:16]
        self.spill_path = folder.expanduser() / f"{stem}.jsonl"
        self.rejected_path = self.spill_path.with_name(f"{stem}.rejected.jsonl")
        self._offset_path = self.spill_path.with_name(f"{stem}.offset")
        self._lock_fd: int | None = self._lock(self.spill_path.with_name(f"{stem}.lock"))
        self._cond = threading.Condition()
        self._queue: deque[tuple[float, str]] = deque()  # (time.monotonic() of emit, JSON text)
        self._inflight: list[str] = []  # the memory batch being POSTed
        self._spill_fd: int | None = None
        try:
            self._offset, self._spill_count = self._recover()
        except OSError as e:
            os.close(self._lock_fd)
            raise SinkError(f"{self.name}: cannot read the spill file {self.spill_path}: {e.strerror}") from e
        self._closed = False
        self._abandon = False
        self._opener = urllib.request.build_opener(_NoRedirect())
        if self._spill_count:
            log.info(
                "%s: replaying %d records left by an earlier run in %s", self.name, self._spill_count, self.spill_path
            )
        self._thread = threading.Thread(target=self._run, name="webhook-sender", daemon=True)
        self._thread.start()

    # -- the caller's side -------------------------------------------------------------------

    def emit(self, record: Record) -> None:
        if isinstance(record, Status) and not self.config.status:
            return
        line = json.dumps(record.to_json(), separators=(",", ":"))
        with self._cond:
            if self._closed:
                raise SinkError(f"{self.name} is closed")
            if len(self._queue) >= self.config.max_queue:
                self._spill([text for _, text in self._queue] + [line], sync=False)
                self._queue.clear()
            else:
                self._queue.append((time.monotonic(), line))
            self._cond.notify_all()

    def flush(self) -> None:
        """Fsync the spill file; while it holds records, move the memory queue into it first."""
        with self._cond:
            if self._spill_count and self._queue:
                self._move_queue(sync=False)
            if self._spill_fd is not None:
                os.fsync(self._spill_fd)

    def pending(self) -> int:
        with self._cond:
            return len(self._queue) + len(self._inflight) + self._spill_count

    def close(self) -> None:
        with self._cond:
            if self._lock_fd is None:
                return
            self._closed = True
            self._cond.notify_all()
        self._thread.join(self.config.drain_s)
        with self._cond:
            self._abandon = True
            self._cond.notify_all()
        self._thread.join()
        with self._cond:
            left = self._inflight + [text for _, text in self._queue]
            if left:
                self._spill(left, sync=True)
                self._inflight = []
                self._queue.clear()
            if self._spill_fd is not None:
                os.fsync(self._spill_fd)
                os.close(self._spill_fd)
                self._spill_fd = None
            os.close(self._lock_fd)
            self._lock_fd = None
            waiting = self._spill_count
        if waiting:
            log.warning(
                "%s: %d records wait in %s; the next run with this webhook sends them first",
                self.name,
                waiting,
                self.spill_path,
            )

    # -- files (called with self._cond held, except during __init__) -----------------------

    def _lock(self, path: Path) -> int:
        """Create the spill folder and hold ``path``'s lock, so one sink at a time uses the spill."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise SinkError(
                f"{self.name}: cannot write in the spill folder {path.parent}: {e.strerror}; "
                "set sinks.webhook.spill_dir to a writable folder"
            ) from e
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise SinkError(
                    f"{self.name}: another sink (in this or another process) is using the spill "
                    f"files in {path.parent}; give each its own sinks.webhook.spill_dir"
                ) from None
        return fd

    def _recover(self) -> tuple[int, int]:
        """Replay offset and number of undelivered records of a spill file left by an earlier run.

        An incomplete last line (the machine stopped while writing it) is cut off, with a warning.
        """
        if not self.spill_path.exists():
            self._offset_path.unlink(missing_ok=True)
            return 0, 0
        with open(self.spill_path, "r+b") as fh:
            size = fh.seek(0, os.SEEK_END)
            offset = self._read_offset(size)
            fh.seek(offset)
            count, end, pos = 0, offset, offset
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                if b"\n" in chunk:
                    count += chunk.count(b"\n")
                    end = pos + chunk.rindex(b"\n") + 1
                pos += len(chunk)
            if end < size:
                log.warning(
                    "%s: cutting an incomplete last record (%d bytes) off %s", self.name, size - end, self.spill_path
                )
                fh.truncate(end)
        if count == 0:
            self._discard_spill()
            return 0, 0
        return offset, count

    def _read_offset(self, size: int) -> int:
        try:
            text = self._offset_path.read_text()
        except FileNotFoundError:
            return 0
        with contextlib.suppress(ValueError):
            offset = int(text)
            if 0 <= offset <= size:
                return offset
        log.warning(
            "%s: the replay offset in %s is unreadable; replaying %s from its start (receivers drop duplicates by id)",
            self.name,
            self._offset_path,
            self.spill_path,
        )
        return 0

    def _spill(self, lines: list[str], sync: bool) -> None:
        """Append ``lines`` to the spill file, all or none of them (OSError when the disk fails)."""
        if self._spill_fd is None:
            self._spill_fd = os.open(self.spill_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fd = self._spill_fd
        start = os.fstat(fd).st_size
        try:
            view = memoryview("".join(text + "\n" for text in lines).encode())
            while view:
                view = view[os.write(fd, view) :]
            if sync:
                os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            raise
        self._spill_count += len(lines)
        self.spilled += len(lines)

    def _move_queue(self, sync: bool) -> None:
        self._spill([text for _, text in self._queue], sync)
        self._queue.clear()

    def _read_spill(self) -> tuple[list[str], int]:
        """Up to ``batch_size`` complete lines of the spill from the offset, and the offset after them."""
        lines: list[str] = []
        end = self._offset
        with contextlib.suppress(FileNotFoundError), open(self.spill_path, "rb") as fh:
            fh.seek(end)
            while len(lines) < self.config.batch_size:
                raw = fh.readline()
                if not raw.endswith(b"\n"):
                    break
                lines.append(raw[:-1].decode("utf-8", "replace"))
                end += len(raw)
        return lines, end

    def _commit(self, end: int, n: int) -> None:
        """The ``n`` spilled records up to byte ``end`` are delivered: persist the offset."""
        if self._spill_count == n:
            self._discard_spill()
        else:
            with atomic_path(self._offset_path, fsync=True) as tmp:
                tmp.write_text(str(end))
            self._offset = end
        self._spill_count -= n

    def _discard_spill(self) -> None:
        """Everything spilled is delivered: delete the spill file, then its offset."""
        if self._spill_fd is not None:
            os.close(self._spill_fd)
            self._spill_fd = None
        self.spill_path.unlink(missing_ok=True)
        self._offset_path.unlink(missing_ok=True)
        self._offset = 0

    def _reject(self, lines: list[str], answer: str) -> None:
        with open(self.rejected_path, "ab") as fh:
            fh.write("".join(text + "\n" for text in lines).encode())
            fh.flush()
            os.fsync(fh.fileno())
        self.rejected += len(lines)
        log.error(
            "%s refused a batch of %d records for good (%s); they are kept in %s (%d rejected so far)",
            self.name,
            len(lines),
            answer,
            self.rejected_path,
            self.rejected,
        )

    # -- the sender thread -------------------------------------------------------------------

    def _run(self) -> None:
        streak = 0  # failed attempts in a row
        while True:
            hint: float | None = None
            try:
                batch = self._take()
                if batch is None:
                    return
                lines, end = batch
                outcome, answer, hint = self._post(lines)
                self._settle(lines, end, outcome, answer)
            except OSError as e:  # the spill folder failed (disk full, removed): keep records in memory
                with self._cond:
                    self._queue.extendleft((time.monotonic(), text) for text in reversed(self._inflight))
                    self._inflight = []
                outcome = "down"
                self.last_error = f"cannot write in {self.spill_path.parent}: {e.strerror or e}"
                log.error("%s: %s; retrying", self.name, self.last_error)
            if outcome != "down":
                if streak:
                    log.info("%s answers again after %d failed attempts", self.name, streak)
                streak = 0
                continue
            streak += 1
            if streak == 1:
                log.warning(
                    "%s is down (%s); records wait in %s, retrying every %.1f s at most",
                    self.name,
                    self.last_error,
                    self.spill_path,
                    self.config.retry_max_s,
                )
            pause = min(self.config.retry_max_s, self.config.retry_initial_s * 2 ** min(streak - 1, 60))
            pause *= random.uniform(0.5, 1.0)
            if hint is not None:
                pause = min(self.config.retry_max_s, max(pause, hint))
            with self._cond:
                self._cond.wait_for(lambda: self._abandon, timeout=pause)

    def _take(self) -> tuple[list[str], int | None] | None:
        """The next batch and, for one read from the spill, the offset after it; ``None``: stop."""
        cfg = self.config
        with self._cond:
            while not self._abandon:
                if self._spill_count:
                    if self._queue:
                        self._move_queue(sync=True)
                    lines, end = self._read_spill()
                    if lines:
                        return lines, end
                    log.error("%s: %s lost the %d records counted in it", self.name, self.spill_path, self._spill_count)
                    self._spill_count = 0
                    self._discard_spill()
                elif self._queue:
                    due = self._queue[0][0] + cfg.flush_s
                    if len(self._queue) >= cfg.batch_size or self._closed or time.monotonic() >= due:
                        n = min(cfg.batch_size, len(self._queue))
                        self._inflight = [self._queue.popleft()[1] for _ in range(n)]
                        return self._inflight, None
                    self._cond.wait(due - time.monotonic())
                elif self._closed:
                    return None
                else:
                    self._cond.wait()
            return None

    def _post(self, lines: list[str]) -> tuple[Outcome, str, float | None]:
        """POST one batch: the outcome, the answer in words, and the wait the server asked for (s)."""
        body = ("[" + ",".join(lines) + "]").encode()
        request = urllib.request.Request(self._url, data=body, headers=self._headers, method="POST")
        try:
            with self._opener.open(request, timeout=self.config.timeout_s) as response:
                response.read()
            return "ok", f"HTTP {response.status}", None
        except urllib.error.HTTPError as e:
            answer = f"HTTP {e.code} {e.reason}"
            if e.code >= 500 or e.code in (408, 429):
                return "down", answer, _retry_after(e.headers)
            if 300 <= e.code < 400:
                answer += f", a redirect to {redact_url(e.headers.get('Location', '?'))}: use that URL"
            return "rejected", answer + _body_of(e), None
        except Exception as e:
            reason = e.reason if isinstance(e, urllib.error.URLError) else e
            return "down", f"no answer: {str(reason) or type(reason).__name__}", None

    def _settle(self, lines: list[str], end: int | None, outcome: Outcome, answer: str) -> None:
        """Account for a POSTed batch (``end``: its spill offset, ``None`` for a memory batch)."""
        with self._cond:
            if outcome == "down":
                self.failures += 1
                self.last_error = answer
                if end is None:
                    self._spill(lines, sync=True)
            elif outcome == "rejected":
                self.last_error = answer
                self._reject(lines, answer)
                if end is not None:
                    self._commit(end, len(lines))
            else:
                if end is not None:
                    self._commit(end, len(lines))
                self.delivered += len(lines)
            if end is None:
                self._inflight = []


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Makes a redirect an error: following one would turn the POST into a GET without the batch."""

    def redirect_request(
        self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str, headers: Message, newurl: str
    ) -> None:
        return None


def _post_url(target: str) -> tuple[str, dict[str, str]]:
    """The URL to POST to (without user info) and the Basic authentication header its user info asks for."""
    shown = re.sub(r"[^/@]*@", "***@", redact_url(target), count=1)  # also when target is no URL
    if not target:
        raise SinkError(f"the webhook target is empty; {_EXPECTED}")
    if not target.isascii() or any(c.isspace() or not c.isprintable() for c in target):
        raise SinkError(
            f"the webhook target {shown!r} contains spaces, control or non-ASCII characters; "
            f"{_EXPECTED} (percent-encode them; write an international host name in punycode)"
        )
    try:
        parts = urlsplit(target)
        port = parts.port
    except ValueError:
        raise SinkError(
            f"the webhook target {shown!r} is not a valid URL (check the host and port); {_EXPECTED}"
        ) from None
    if parts.scheme.lower() not in ("http", "https"):
        raise SinkError(f"the webhook target {shown!r} is not http or https; {_EXPECTED}")
    if not parts.hostname or port == 0:
        raise SinkError(f"the webhook target {shown!r} needs a host (and a port other than 0); {_EXPECTED}")
    auth: dict[str, str] = {}
    if "@" in parts.netloc:
        user_pass = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
        auth["Authorization"] = "Basic " + base64.b64encode(user_pass.encode()).decode()
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")), auth


def _headers(configured: dict[str, str], auth: dict[str, str]) -> dict[str, str]:
    """The request headers: ours, the URL's authentication, then the configured ones expanded."""
    headers = {"User-Agent": f"realtime-mer/{__version__}", **auth}
    for key, value in configured.items():
        if auth and key.lower() == "authorization":
            raise SinkError(
                "the webhook URL has user info and sinks.webhook.headers has Authorization too; keep one of them"
            )
        headers[key] = _expand(value, key)
    headers["Content-Type"] = "application/json"
    return headers


def _expand(value: str, header: str) -> str:
    """``value`` with ``${NAME}`` replaced by environment variables (:func:`~realtime_mer.config.expand_env`)."""
    try:
        expanded = expand_env(value, f"sinks.webhook.headers.{header}")
    except ConfigError as e:
        raise SinkError(str(e)) from None
    if "\r" in expanded or "\n" in expanded or not expanded.isascii():
        raise SinkError(f"webhook header {header} must be one line of ASCII once environment variables are expanded")
    return expanded


def _retry_after(headers: Message | None) -> float | None:
    """The ``Retry-After`` seconds of an answer (``None`` when absent or given as a date)."""
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _body_of(error: urllib.error.HTTPError) -> str:
    """The start of an error answer's body (the server's reason), for the log."""
    try:
        text = error.read(300).decode("utf-8", "replace").strip()
    except (OSError, HTTPException):
        text = ""
    finally:
        error.close()
    return f": {' '.join(text.split())}" if text else ""
