"""Prometheus metrics of every feed and stage (prometheus-client), served on ``/metrics``.

The metric names are a public interface (dashboards and alerts are built on them):

=========================================================  =====================================================
``realtime_mer_frames_total{stream}``                      frames read from the source (dropped ones included)
``realtime_mer_processed_frames_total{stream}``            frames through the face/EVM/spotting path
``realtime_mer_dropped_frames_total{stream}``              frames a live source dropped because processing lagged
``realtime_mer_bad_frames_total{stream}``                  frames that did not decode (skipped)
``realtime_mer_failed_frames_total{stream}``               frames a stage failed on (skipped)
``realtime_mer_reconnects_total{stream}``                  successful reconnections
``realtime_mer_stream_state{stream,state}``                1 for the feed's current state, 0 for the others
``realtime_mer_stream_fps{stream,direction}``              measured rate: ``in`` (read) and ``processed``
``realtime_mer_faces{stream}``                             faces in the last processed frame
``realtime_mer_queue_depth{queue}``                        items waiting: ``capture:<stream>``, ``events``,
                                                           ``sink:<sink>`` (a webhook's queue and spill)
``realtime_mer_events_total{stream,kind,label}``           events emitted (``label="none"`` when unlabelled)
``realtime_mer_stage_seconds{stream,stage}``               histogram: per frame ``face``, ``evm``, ``spot``;
                                                           per event ``input``, ``engine``
``realtime_mer_event_latency_seconds{stream}``             histogram: capture of the offset frame -> emission
``realtime_mer_recognition_errors_total{model}``           events sent unlabelled because recognition failed
``realtime_mer_sink_failures_total{sink}``                 records a sink could not take after its retries
``realtime_mer_worker_restarts_total{worker}``             worker processes restarted (``--backend ray``)
=========================================================  =====================================================

Stream names never hold credentials (RTSP URLs are redacted). Counters of the capture threads are
read when ``/metrics`` is scraped, so the hot path pays nothing for them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .errors import UserError
from .types import FEED_STATES, FeedState

log = logging.getLogger(__name__)

STAGE_BUCKETS = (1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0)
LATENCY_BUCKETS = (5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class FeedSnapshot:
    """One feed's counters and state at a scrape (see the table in the module docstring)."""

    frames: int
    processed: int
    dropped: int
    bad_frames: int
    failed_frames: int
    reconnects: int
    state: FeedState | None
    queued: int
    fps_in: float | None
    fps_processed: float | None
    faces: int
    frames_with_face: int = 0


class Metrics:
    """The metrics of one run, in their own registry (several runs in one process do not mix).

    >>> m = Metrics()
    >>> m.events.labels(stream="cam", kind="micro", label="positive").inc()
    >>> b"realtime_mer_events_total" in m.exposition()
    True
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events = Counter("realtime_mer_events", "Events emitted", ["stream", "kind", "label"], registry=r)
        self.stage = Histogram(
            "realtime_mer_stage_seconds",
            "Time per frame (face, evm, spot; window: the region CNN-LSTM's steps) or per event (input, engine)",
            ["stream", "stage"],
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.event_latency = Histogram(
            "realtime_mer_event_latency_seconds",
            "From the capture of an event's offset frame to its emission",
            ["stream"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.recognition_errors = Counter(
            "realtime_mer_recognition_errors",
            "Events sent unlabelled because recognition failed",
            ["model"],
            registry=r,
        )
        self.sink_failures = Counter(
            "realtime_mer_sink_failures", "Records a sink could not take after its retries", ["sink"], registry=r
        )
        self.worker_restarts = Counter(
            "realtime_mer_worker_restarts", "Worker processes restarted after they died", ["worker"], registry=r
        )
        self._feeds: dict[str, Callable[[], FeedSnapshot]] = {}
        self._queues: dict[str, Callable[[], int]] = {}
        self._lock = threading.Lock()
        r.register(_Live(self))
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def watch_feed(self, stream: str, snapshot: Callable[[], FeedSnapshot]) -> None:
        """Read ``snapshot()`` for ``stream``'s counters at every scrape."""
        with self._lock:
            self._feeds[stream] = snapshot

    def unwatch_feed(self, stream: str) -> None:
        """Stop reporting ``stream`` (a feed removed from a running monitor)."""
        with self._lock:
            self._feeds.pop(stream, None)

    def watch_queue(self, queue: str, depth: Callable[[], int]) -> None:
        """Report ``depth()`` as ``realtime_mer_queue_depth{queue=...}`` at every scrape."""
        with self._lock:
            self._queues[queue] = depth

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format, as ``/metrics`` serves them."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)

    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Serve ``/metrics`` on ``host:port`` (``port`` 0: any free port) from a daemon thread; the port."""
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as e:
            raise UserError(
                f"cannot serve metrics on {host}:{port}: {e.strerror}; choose another --metrics-port"
            ) from e
        bound = int(self._server.server_address[1])
        log.info("metrics on http://%s:%d/metrics", host, bound)
        return bound

    def close(self) -> None:
        """Stop serving; safe to call twice."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def scrape(url: str, timeout: float = 5.0) -> dict[str, float]:
    """Every sample served at ``url`` (a ``/metrics`` page), keyed ``name{label="value",...}`` with the
    labels in name order, e.g. ``realtime_mer_reconnects_total{stream="lobby"}``."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(url, timeout=timeout).read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = float(sample.value)
    return out


class _Live(Collector):
    """Reads the feeds' counters and the queue depths when scraped."""

    def __init__(self, metrics: Metrics) -> None:
        self.m = metrics

    def describe(self) -> Iterator[Metric]:
        return iter(())  # a collector of varying label sets: nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        with self.m._lock:
            feeds = dict(self.m._feeds)
            queues = dict(self.m._queues)
        counters = {
            "frames": CounterMetricFamily("realtime_mer_frames", "Frames read from the source", labels=["stream"]),
            "processed": CounterMetricFamily(
                "realtime_mer_processed_frames", "Frames through the signal path", labels=["stream"]
            ),
            "dropped": CounterMetricFamily(
                "realtime_mer_dropped_frames", "Frames dropped because processing lagged", labels=["stream"]
            ),
            "bad_frames": CounterMetricFamily(
                "realtime_mer_bad_frames", "Frames that did not decode", labels=["stream"]
            ),
            "failed_frames": CounterMetricFamily(
                "realtime_mer_failed_frames", "Frames a stage failed on", labels=["stream"]
            ),
            "reconnects": CounterMetricFamily("realtime_mer_reconnects", "Successful reconnections", labels=["stream"]),
        }
        state = GaugeMetricFamily(
            "realtime_mer_stream_state", "1 for the feed's current state", labels=["stream", "state"]
        )
        fps = GaugeMetricFamily("realtime_mer_stream_fps", "Measured frame rate", labels=["stream", "direction"])
        faces = GaugeMetricFamily("realtime_mer_faces", "Faces in the last processed frame", labels=["stream"])
        depth = GaugeMetricFamily("realtime_mer_queue_depth", "Items waiting in a queue", labels=["queue"])
        for stream, snapshot in feeds.items():
            s = snapshot()
            for key, family in counters.items():
                family.add_metric([stream], getattr(s, key))
            for name in FEED_STATES:
                state.add_metric([stream, name], 1.0 if s.state == name else 0.0)
            for direction, value in (("in", s.fps_in), ("processed", s.fps_processed)):
                if value is not None:
                    fps.add_metric([stream, direction], value)
            faces.add_metric([stream], s.faces)
            depth.add_metric([f"capture:{stream}"], s.queued)
        for queue, fn in queues.items():
            depth.add_metric([queue], fn())
        yield from counters.values()
        yield from (state, fps, faces, depth)
