"""What every capture source is: the protocol, its errors, the capture config and URL redaction."""

from __future__ import annotations

from typing import Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np

from ..config import settings
from ..errors import UserError

# Query parameters whose values are secrets (matched case-insensitively as substrings).
_SECRET_KEYS = ("pass", "pwd", "token", "secret", "key", "auth", "sig", "user")


class SourceError(UserError):
    """A source cannot be opened or its stream broke; the message says what was tried and what to do."""


class BadFrame(Exception):
    """One frame could not be decoded; the source is still usable and the next read may succeed."""


@settings
class CaptureConfig:
    """How sources open and how the capture thread hands frames on.

    Attributes:
        queue_size: frames held between the capture thread and its consumer. A live source drops
            the oldest when full; a file source waits. The default (32, about a second at 30 fps)
            absorbs the burst an RTSP server sends on connecting and short processing hiccups, so
            frames are dropped only when processing falls behind for good.
        queue_mb: cap of the queue in megabytes of images (large frames hold fewer).
        open_timeout_s: network sources: seconds to wait for the server to answer when opening.
        read_timeout_s: network sources: seconds a read may block before the stream counts as broken.
        probe_s: network sources: seconds of stream FFmpeg analyses on opening (FFmpeg's
            ``analyzeduration``). Shorter opens and reconnects faster; too short may miss the
            parameters of a stream that sends them late.
        backoff_initial_s: first wait before reconnecting a live source that broke, seconds.
        backoff_max_s: cap of the exponential backoff, seconds.
        backoff_jitter: each wait is scaled by a random factor in ``[1 - jitter, 1]``.
        max_reconnect_attempts: failed reconnect attempts in a row before giving up; ``None`` retries
            for ever.
        backoff_reset_s: a session must deliver frames for this long (s) before the backoff and
            the attempt count start again from the beginning, so a feed that keeps breaking right
            after it connects (a flapping camera, a truncated file) is retried less and less often.
        stall_s: a running feed that delivers no frame for this long is ``stalled`` (a dead source,
            told apart from back-pressure: a file source waiting for room in its queue never stalls).
    """

    queue_size: int = 32
    queue_mb: float = 128.0
    open_timeout_s: float = 5.0
    read_timeout_s: float = 5.0
    probe_s: float = 0.5
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    backoff_jitter: float = 0.25
    max_reconnect_attempts: int | None = None
    backoff_reset_s: float = 10.0
    stall_s: float = 2.0

    def __post_init__(self) -> None:
        if self.queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {self.queue_size}")
        for name in (
            "queue_mb",
            "open_timeout_s",
            "read_timeout_s",
            "probe_s",
            "backoff_initial_s",
            "backoff_max_s",
            "backoff_reset_s",
            "stall_s",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive seconds, got {getattr(self, name)}")
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError(
                f"backoff_max_s ({self.backoff_max_s}) is below backoff_initial_s ({self.backoff_initial_s})"
            )
        if not 0 <= self.backoff_jitter < 1:
            raise ValueError(f"backoff_jitter must be in [0, 1), got {self.backoff_jitter}")
        if self.max_reconnect_attempts is not None and self.max_reconnect_attempts < 0:
            raise ValueError(f"max_reconnect_attempts must be >= 0 or null, got {self.max_reconnect_attempts}")


class Source(Protocol):
    """A stream of BGR images. Used by one thread at a time: open, read until None, close.

    Attributes:
        name: the stream id put in every Frame (credentials removed).
        live: True for sources that run on their own clock (camera, RTSP, synthetic): the capture
            thread drops frames rather than waiting, and reconnects them when they break.
        nominal_fps: the rate the source announces, known after ``open``; ``None`` if it announces none.

    A source that decodes compressed video may also have ``keyframe``: whether the image the last
    ``read`` returned was a keyframe (:attr:`realtime_mer.types.Frame.key`); without it no frame is
    (:func:`read_keyframe`).
    """

    name: str
    live: bool
    nominal_fps: float | None

    def open(self) -> None:
        """Open (or reopen) the stream; raises SourceError saying what was tried and what to do."""
        ...

    def read(self) -> tuple[np.ndarray, float | None] | None:
        """The next ``(H, W, 3)`` uint8 BGR image and its media time in s (the presentation time;
        ``None``: use the capture clock), or ``None`` at the end of the stream. Raises BadFrame for
        one undecodable frame and SourceError when the stream broke."""
        ...

    def close(self) -> None:
        """Release the stream; safe to call twice or before ``open``."""
        ...


def read_keyframe(source: Source) -> bool:
    """Whether the image ``source.read()`` returned last was a keyframe (False for a source that
    does not say, such as a camera's raw frames)."""
    return bool(getattr(source, "keyframe", False))


def redact_url(url: str) -> str:
    """``url`` without secrets: user info becomes ``***`` and secret-looking query values ``***``.

    ``rtsp://admin:pw@cam:554/live?token=x&ch=1`` -> ``rtsp://***@cam:554/live?token=***&ch=1``.
    The user info is found on the raw text (everything before the last ``@`` ahead of the path),
    so a password holding ``#`` or ``?``, which a URL parser would take for a fragment or a query,
    is hidden too.
    """
    scheme, sep, rest = url.partition("://")
    if sep:
        authority = rest.split("/", 1)[0]
        if "@" in authority:
            url = f"{scheme}://***@{rest[authority.rindex('@') + 1 :]}"
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if any(s in k.lower() for s in _SECRET_KEYS) else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
