"""Many feeds over many processes and machines: ``realtime-mer monitor --backend ray``.

The feeds are sharded over worker processes, Ray actors (:class:`StreamShard`). Each runs the
in-process path of its feeds (capture thread, :class:`~realtime_mer.pipeline.StreamProcessor`,
worker thread), and keeps what they spot, and their changes of state, in an outbox. The driver
(:class:`RayPipeline`) polls the outboxes, recognizes the intervals of all feeds in batches in
one recognizer actor (:class:`RecognizerActor`), and hands every record to the sinks, which live
in the driver only: each record reaches them once.

A worker process that dies is restarted by Ray. The driver counts the restart
(``realtime_mer_worker_restarts_total``) and gives the feeds back to the new process:

- a live feed (camera, RTSP, replay, demo) goes on from its last frame number and session, as
  after a reconnection; what the dead process had not handed over (at most one poll, 50 ms, of
  intervals, and the movements in progress) is lost, as the frames of an outage are;
- a file starts again from its beginning and the events already delivered are skipped, so the
  events are those of a run that was never interrupted.

Feeds are added and removed while it runs as in-process (a streams file edited, or SIGHUP).
Ray is optional (``pip install 'realtime-mer[cluster]'``); it starts a local cluster unless
``address`` names one to join, whose nodes must have realtime-mer installed and the files.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .config import ConfigError
from .errors import UserError
from .feeds import SourceSpec, display_name
from .metrics import FeedSnapshot, Metrics
from .pipeline import (
    EventStage,
    FeedRunner,
    PipelineConfig,
    RunSummary,
    Spotted,
    StreamProcessor,
    StreamSummary,
    StreamWorker,
    check_source,
    health_line,
    merge_config,
    prepare,
    stage_observer,
)
from .recognize import Recognition, RecognizeConfig, Recognizer
from .sinks import FrameSink
from .types import FeedPosition, Status, utc_iso

log = logging.getLogger(__name__)

__all__ = ["RayPipeline", "RecognizerActor", "ShardReport", "StreamShard", "require_ray"]

POLL_S = 0.05  # how often the driver collects every shard's outbox
OUTBOX = 256  # records a shard holds before its feeds wait for the driver
COUNTERS = ("frames", "processed", "frames_with_face", "dropped", "bad_frames", "failed_frames", "reconnects")


RAY_MISSING = "--backend ray needs Ray: pip install 'realtime-mer[cluster]'"


def require_ray() -> Any:
    """The ``ray`` module, or a UserError that says how to install it."""
    try:
        import ray
    except ImportError:
        raise UserError(RAY_MISSING) from None
    return ray


@dataclass
class FeedReport:
    """One feed's state in a shard's report: its counters, where its numbering stands, its stage
    times since the last report (``(stage, seconds)``), and its summary once it has ended."""

    snapshot: FeedSnapshot
    position: FeedPosition
    stages: list[tuple[str, float]]
    summary: StreamSummary | None = None


@dataclass
class ShardReport:
    """What a shard hands the driver at a poll: its incarnation (a new one after Ray restarted the
    process), its node and ``time.monotonic()`` there (the driver moves the records' capture times
    of another node onto its own clock), the records after the acknowledged sequence number, and
    its feeds."""

    incarnation: str
    pid: int
    node: str
    clock: float
    records: list[tuple[int, Spotted | Status]]
    feeds: dict[str, FeedReport]


class _Feed:
    """A feed inside a shard: capture thread, processor and worker thread."""

    def __init__(self, spec: SourceSpec, config: PipelineConfig, resume: FeedPosition, shard: StreamShard) -> None:
        from .capture import CaptureThread

        source, cfg = check_source(spec, config)
        self.stream = source.name
        self.stages: list[tuple[str, float]] = []
        self.capture = CaptureThread(source, cfg.capture, resume).add_listener(shard.put)
        processor = StreamProcessor(
            source.name,
            cfg,
            lambda: self.capture.stats().rate,
            self._observe,
            magnify=StreamProcessor.needs_magnified(cfg),  # no frame sinks in a worker: EVM only to spot on
        )
        self.worker = StreamWorker(self.capture, processor, shard.put)
        self.worker.start()
        self.capture.start(open_now=False)

    def _observe(self, stage: str, seconds: float) -> None:
        self.stages.append((stage, seconds))

    def report(self) -> FeedReport:
        stages, self.stages = self.stages, []
        ended = not self.worker.is_alive()
        summary = None
        if ended:
            summary = self.worker.summary
            summary.state = self.capture.state
            summary.error = None if self.capture.error is None else str(self.capture.error)
        return FeedReport(self.worker.snapshot(), self.capture.position(), stages, summary)


class StreamShard:
    """A worker process's feeds (a Ray actor: ``ray.remote(StreamShard)``).

    Args:
        config: the run's pipeline config (recognition is the driver's: it is not loaded here).
        log_level: the run's log level.
    """

    def __init__(self, config: PipelineConfig, log_level: str = "INFO") -> None:
        from .process import bound_malloc_arenas, setup_logging

        setup_logging(log_level)
        bound_malloc_arenas()
        self.config = replace(config, recognize=replace(config.recognize, model=None))
        self.incarnation = uuid.uuid4().hex[:12]
        self.node = _node_id()
        self.feeds: dict[str, _Feed] = {}
        self._ended: dict[str, FeedReport] = {}  # feeds removed, reported at the next poll
        self._outbox: deque[tuple[int, Spotted | Status]] = deque()
        self._seq = 0
        self._room = threading.Condition()
        self._stopping = False
        prepare(self.config)

    def put(self, record: Spotted | Status) -> None:
        """Queue a record for the driver (from the feeds' threads); waits while the outbox is full,
        so a driver that lags slows the feeds, and nothing is lost."""
        with self._room:
            if isinstance(record, Spotted):  # status changes are rare and must never block a capture thread
                self._room.wait_for(lambda: len(self._outbox) < OUTBOX or self._stopping)
            self._seq += 1
            self._outbox.append((self._seq, record))
            self._room.notify_all()

    def add(self, spec: SourceSpec, resume: FeedPosition | None = None) -> str:
        """Start a feed (a live one numbering its frames from ``resume``); its stream id."""
        feed = _Feed(spec, merge_config(self.config, spec.settings), resume or FeedPosition(), self)
        self.feeds[feed.stream] = feed
        return feed.stream

    def remove(self, stream: str) -> None:
        """Stop a feed and flush its tracks; its last report goes out with the next poll."""
        feed = self.feeds.pop(stream, None)
        if feed is not None:
            feed.worker.close()
            self._ended[stream] = feed.report()

    def poll(self, ack: int, wait_s: float = 0.0) -> ShardReport:
        """The records after sequence number ``ack`` (the ones up to it are dropped: the driver has
        them), and every feed's report; a feed that ended is reported once more, then forgotten.
        Waits up to ``wait_s`` for a record, so that one is handed on as soon as it is made."""
        with self._room:
            self._room.wait_for(lambda: bool(self._outbox) and self._outbox[-1][0] > ack, timeout=wait_s)
        now = time.monotonic()
        feeds = dict(self._ended)
        self._ended.clear()
        for stream, feed in list(self.feeds.items()):
            feed.capture.check_stall(now)
            feeds[stream] = report = feed.report()
            if report.summary is not None:
                del self.feeds[stream]
        with self._room:
            while self._outbox and self._outbox[0][0] <= ack:
                self._outbox.popleft()
            records = list(self._outbox)
            self._room.notify_all()
        return ShardReport(self.incarnation, os.getpid(), self.node, time.monotonic(), records, feeds)

    def stop(self, ack: int) -> ShardReport:
        """Stop every feed, flushing its tracks; the last report."""
        with self._room:
            self._stopping = True
            self._room.notify_all()
        for feed in self.feeds.values():
            feed.capture.stop(timeout=0)
        for stream in list(self.feeds):
            self.remove(stream)
        return self.poll(ack)


def _node_id() -> str:
    """The Ray node this process runs on."""
    import ray

    return str(ray.get_runtime_context().get_node_id())


class RecognizerActor:
    """The run's recognizer in a process of its own (``ray.remote(RecognizerActor)``): the intervals
    of every feed of every worker are recognized here, in the batches the driver forms."""

    def __init__(self, config: RecognizeConfig, face_size: tuple[int, int], log_level: str = "INFO") -> None:
        from .process import setup_logging

        setup_logging(log_level)
        self.recognizer = Recognizer(config)
        self.recognizer.warm_up(face_size)

    def name(self) -> str:
        return self.recognizer.name

    def classify(self, items: Sequence[Any]) -> list[Recognition]:
        """``items``: :class:`~realtime_mer.types.IntervalCrops`, or ``(onset, apex)`` crop pairs
        (what ``Spotted.recognition_input`` gives)."""
        return self.recognizer.classify(items)


class _RemoteRecognizer:
    """The driver's handle of a :class:`RecognizerActor`, with what :class:`EventStage` uses of a
    :class:`~realtime_mer.recognize.Recognizer`."""

    def __init__(self, ray: Any, actor: Any, config: RecognizeConfig) -> None:
        self.ray, self.actor, self.config = ray, actor, config
        self.name = ray.get(actor.name.remote())

    def classify(self, items: Sequence[Any]) -> list[Recognition]:
        result: list[Recognition] = self.ray.get(self.actor.classify.remote(list(items)))
        return result

    def close(self) -> None:
        self.ray.kill(self.actor)


@dataclass
class _FeedState:
    """The driver's view of one feed: its shard, last report and what earlier processes counted."""

    spec: SourceSpec
    shard: int
    report: FeedReport | None = None
    base: dict[str, int] = field(default_factory=dict)  # counters of the feed's earlier worker processes
    restarts: int = 0  # worker restarts the feed went through
    delivered: set[tuple[Any, ...]] = field(default_factory=set)  # a file's events sent to the sinks

    def snapshot(self) -> FeedSnapshot:
        if self.report is None:
            return FeedSnapshot(0, 0, 0, 0, 0, 0, "connecting", 0, None, None, 0)
        s = self.report.snapshot
        return replace(s, **{k: getattr(s, k) + self.base.get(k, 0) for k in COUNTERS})


@dataclass
class _Shard:
    actor: Any
    name: str
    incarnation: str | None = None
    pid: int | None = None
    ack: int = 0
    pending: Any = None  # the poll in flight
    down_since: float | None = None


class RayPipeline(FeedRunner):
    """:class:`~realtime_mer.pipeline.Pipeline` with the feeds in ``workers`` Ray actors; same use.

    Args:
        specs, config, sinks, metrics, monitor, health_s, reload, reload_s: as for ``Pipeline``
            (frame sinks, the overlay video and the dashboard, run in-process only).
        workers: worker processes (default: one per CPU of the cluster, at most one per feed).
        address: a Ray cluster to join (``ray://...`` or ``host:port``); ``None`` starts a local one.
        log_level: the workers' log level.
    """

    def __init__(
        self,
        specs: Sequence[SourceSpec],
        config: PipelineConfig,
        sinks: Sequence[Any] = (),
        *,
        metrics: Metrics | None = None,
        monitor: bool = True,
        health_s: float = 0.0,
        reload: Callable[[], Sequence[SourceSpec] | None] | None = None,
        reload_s: float = 2.0,
        workers: int | None = None,
        address: str | None = None,
        log_level: str = "INFO",
    ) -> None:
        self.ray = require_ray()
        super().__init__(
            specs, config, sinks, metrics=metrics, monitor=monitor, health_s=health_s, reload=reload, reload_s=reload_s
        )
        if any(isinstance(s, FrameSink) for s in sinks):
            raise ConfigError("the overlay video and the dashboard run in-process only; drop --backend ray to use them")
        if workers is not None and workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {workers}")
        self.workers, self.address, self.log_level = workers, address, log_level
        self.shards: list[_Shard] = []
        self.feeds: dict[str, _FeedState] = {}  # the running feeds
        self.placement: dict[str, str] = {}  # every feed's worker, by stream id
        self._ended: list[StreamSummary] = []
        self._started_ray = False
        self.node = ""

    def worker_pids(self) -> dict[str, int | None]:
        """Each worker's process id (as last reported), by worker name."""
        return {s.name: s.pid for s in self.shards}

    # ---- run -----------------------------------------------------------------------------------

    def run(self, max_seconds: float | None = None) -> RunSummary:
        """Run until every feed ended, ``max_seconds`` passed since the feeds were started (Ray's
        start-up and the actors' are not counted), or :meth:`stop`; flush every record and sink; the
        summary (its ``exit_code`` tells failures)."""
        start = time.monotonic()
        for spec in self.specs:
            self._check(spec)
        recognizer: _RemoteRecognizer | None = None
        try:
            self._init_ray()
            recognizer = self._start_actors()
            self.stage = EventStage(self.record_sinks, recognizer, self.metrics, self.config.event_queue)  # type: ignore[arg-type]
            for sink in self.record_sinks:
                self.metrics.watch_queue(f"sink:{sink.name}", sink.pending)
            self.metrics.watch_queue("events", self.stage.pending.qsize)
            self.stage.start()
            for spec in self.specs:
                self._add(spec)
            self._wait(time.monotonic(), max_seconds)  # the feeds' time: a slow cluster start-up is not counted
        except KeyboardInterrupt:
            log.info("interrupted: flushing events")
        finally:
            self._shutdown(recognizer)
        streams = [*self._ended]
        stage = self.stage
        for s in streams:
            s.events = stage.per_stream[s.stream] if stage else 0
        return RunSummary(
            streams=streams,
            events=stage.count if stage else 0,
            seconds=time.monotonic() - start,
            sinks={
                s.name: {"delivered": s.delivered, "failed": s.failed, "pending": s.pending()}
                for s in self.record_sinks
            },
            recognition_errors=stage.recognition_errors if stage else 0,
        )

    def _check(self, spec: SourceSpec) -> None:
        """Settings always; files too when the cluster is this machine (a joined cluster's nodes
        read their own files)."""
        if self.address is None:
            check_source(spec, self.config)
        else:
            merge_config(self.config, spec.settings)

    def _init_ray(self) -> None:
        """Start a local Ray (or join ``address``) unless this process is in one already."""
        if not self.ray.is_initialized():
            try:
                self.ray.init(address=self.address, include_dashboard=False, logging_level=logging.WARNING)
            except ConnectionError as e:
                raise UserError(
                    f"cannot join the Ray cluster at {self.address}: {e}. Check the address (ray status on the "
                    "head node shows it); a cluster with token authentication (the default from Ray 2.59) also "
                    "needs RAY_AUTH_MODE=token here, and its token in RAY_AUTH_TOKEN or ~/.ray/auth_token"
                ) from None
            self._started_ray = True
        self.node = _node_id()

    def _start_actors(self) -> _RemoteRecognizer | None:
        """The recognizer actor (warmed up) and the worker actors, each answering once."""
        ray = self.ray
        cpus = float(ray.cluster_resources().get("CPU", 1.0))
        n = self.workers or max(1, min(len(self.specs), int(cpus)))
        share = min(1.0, cpus / (n + 1))  # scheduling only: every worker fits however many CPUs there are
        shard_cls = ray.remote(StreamShard).options(
            max_restarts=-1, max_task_retries=0, num_cpus=share, scheduling_strategy="SPREAD"
        )
        self.shards = [_Shard(shard_cls.remote(self.config, self.log_level), f"worker-{k}") for k in range(n)]
        recognizer = None
        if self.config.recognize.model:
            actor = (
                ray.remote(RecognizerActor)
                .options(max_restarts=-1, max_task_retries=2, num_cpus=share)
                .remote(self.config.recognize, self.config.face.size, self.log_level)
            )
            recognizer = _RemoteRecognizer(ray, actor, self.config.recognize)
        for shard, report in zip(self.shards, ray.get([s.actor.poll.remote(0) for s in self.shards]), strict=True):
            shard.incarnation, shard.pid = report.incarnation, report.pid
        log.info("ray: %d worker process(es) on %d node(s)", n, len(ray.nodes()))
        return recognizer

    def _add(self, spec: SourceSpec, checked: Any = None, resume: FeedPosition | None = None) -> None:
        """Give a feed to the worker with the fewest feeds (``checked``: nothing to take over)."""
        name = display_name(spec)
        self._specs[name] = spec
        load = [sum(f.shard == k for f in self.feeds.values()) for k in range(len(self.shards))]
        k = load.index(min(load))
        self.feeds[name] = state = _FeedState(spec, k)
        self.shards[k].actor.add.remote(spec, resume)
        self.metrics.watch_feed(name, state.snapshot)
        self.placement[name] = self.shards[k].name
        log.info("%s: on %s", name, self.shards[k].name)

    def _wait(self, start: float, max_seconds: float | None) -> None:
        next_health = start + self.health_s
        self._next_reload = self.reload_s
        while self.feeds:
            now = time.monotonic()
            if not self._go_on(now, start, max_seconds):
                return
            self._poll_all(POLL_S)
            if self.health_s and now >= next_health:
                for name, f in self.feeds.items():
                    shard = self.shards[f.shard].name
                    events = self.stage.per_stream[name] if self.stage else 0
                    log.info("%s | %s", health_line(name, f.snapshot(), events), shard)
                next_health = now + self.health_s

    def _poll_all(self, timeout: float = 0.0) -> None:
        """Collect the shards' reports, waiting up to ``timeout`` for the first. One poll is in flight
        per shard; a shard answers it as soon as it has a record, or after ``POLL_S``."""
        ray = self.ray
        for shard in self.shards:
            if shard.pending is None:
                shard.pending = shard.actor.poll.remote(shard.ack, POLL_S)
        refs = [shard.pending for shard in self.shards]
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        for k, shard in enumerate(self.shards):
            if shard.pending not in ready:
                continue
            ref, shard.pending = shard.pending, None
            try:
                report = ray.get(ref)
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as e:  # died or restarting
                self._down(k, e)
                continue
            self._take(k, report)

    def _down(self, k: int, error: Exception) -> None:
        """A worker does not answer: its process died and Ray is restarting it."""
        shard = self.shards[k]
        if shard.down_since is None:
            shard.down_since = time.monotonic()
            log.warning("%s (pid %s) died; Ray restarts it: %s", shard.name, shard.pid, str(error).splitlines()[0])
            for name, f in self.feeds.items():
                if f.shard == k:
                    self._status(name, f, "reconnecting", f"{shard.name} died; restarting it")
        time.sleep(0.2)  # the poll is sent again next round

    def _take(self, k: int, report: ShardReport) -> None:
        """Hand a shard's records on and keep its feeds' reports; a new incarnation means Ray
        restarted the process: its feeds are given back to it."""
        shard = self.shards[k]
        if report.incarnation != shard.incarnation:
            self._restarted(k, report)
            return
        shard.down_since = None
        shift = time.monotonic() - report.clock if report.node != self.node else 0.0
        for seq, record in report.records:
            if seq <= shard.ack:
                continue
            shard.ack = seq
            if shift and isinstance(record, Spotted):  # captured on another machine: onto this clock
                record = replace(
                    record,
                    onset_captured=record.onset_captured + shift,
                    offset_captured=record.offset_captured + shift,
                    spotted_at=record.spotted_at + shift,
                )
            self._hand_on(record)
        for name, feed_report in report.feeds.items():
            f = self.feeds.get(name)
            if f is None or f.shard != k:
                continue
            f.report = feed_report
            observe = stage_observer(self.metrics, name)
            for stage, seconds in feed_report.stages:
                observe(stage, seconds)
            if feed_report.summary is not None:
                self._ended.append(self._summary(f, feed_report.summary))
                del self.feeds[name]
                self.metrics.unwatch_feed(name)

    def _hand_on(self, record: Spotted | Status) -> None:
        assert self.stage is not None
        if isinstance(record, Status):
            self.stage.put_status(record)
            return
        f = self.feeds.get(record.stream)
        key = (record.track, record.interval.onset, record.interval.apex, record.interval.offset, record.interval.kind)
        if f is not None and f.spec.kind == "video":  # a file is processed again after its worker died
            if key in f.delivered:
                return
            f.delivered.add(key)
        self.stage.pending.put(record)

    def _restarted(self, k: int, report: ShardReport) -> None:
        shard = self.shards[k]
        if shard.down_since is None:  # restarted between two polls
            self._down(k, RuntimeError("a new process answered"))
        assert shard.down_since is not None
        down = time.monotonic() - shard.down_since
        shard.incarnation, shard.pid, shard.ack, shard.down_since = report.incarnation, report.pid, 0, None
        log.warning("%s restarted (pid %d, %.1f s after it died); resuming its feeds", shard.name, report.pid, down)
        for f in list(self.feeds.values()):
            if f.shard != k:
                continue
            if f.report is not None:
                s = f.report.snapshot
                f.base = {c: getattr(s, c) + f.base.get(c, 0) for c in COUNTERS}
            f.restarts += 1
            resume = f.report.position if f.report is not None else None
            f.report = None
            shard.actor.add.remote(f.spec, resume)
        # counted once its feeds are handed back: whoever sees the count sees none of their old reports
        self.metrics.worker_restarts.labels(worker=shard.name).inc()

    def _status(self, name: str, f: _FeedState, state: Any, reason: str) -> None:
        assert self.stage is not None
        s = f.snapshot()
        pos = f.report.position if f.report else FeedPosition()
        self.stage.put_status(
            Status(
                name,
                state,
                s.state,
                reason,
                utc_iso(time.time()),
                max(pos.session - 1, 0),
                pos.index - 1,
                s.frames,
                s.dropped,
                s.bad_frames,
                s.reconnects,
            )
        )

    def _summary(self, f: _FeedState, summary: StreamSummary) -> StreamSummary:
        """The feed's summary over all its worker processes (a file's frames: those of its last
        pass, since it started again from the beginning)."""
        for c in ("dropped", "bad_frames", "failed_frames", "reconnects"):
            setattr(summary, c, getattr(summary, c) + f.base.get(c, 0))
        if f.spec.kind != "video":
            summary.frames += f.base.get("processed", 0)
            summary.frames_with_face += f.base.get("frames_with_face", 0)
        summary.worker_restarts = f.restarts
        return summary

    def _remove(self, stream: str) -> None:
        """Stop a feed in its worker and wait for its last records."""
        self._specs.pop(stream, None)
        f = self.feeds.get(stream)
        if f is not None:
            self.ray.get(self.shards[f.shard].actor.remove.remote(stream))
            self._poll_until_gone(stream)

    def _poll_until_gone(self, name: str, timeout: float = 30.0) -> None:
        """Poll until the removed feed's last report is in (its flushed records with it)."""
        deadline = time.monotonic() + timeout
        while name in self.feeds and time.monotonic() < deadline:
            self._poll_all()
            time.sleep(0.01)

    def _shutdown(self, recognizer: _RemoteRecognizer | None) -> None:
        ray = self.ray
        for shard in self.shards:
            if shard.pending is not None:  # its records come again in the last report
                try:
                    ray.get(shard.pending, timeout=30)
                except Exception:
                    pass
        stops = [shard.actor.stop.remote(shard.ack) for shard in self.shards]
        for k, (shard, ref) in enumerate(zip(self.shards, stops, strict=True)):
            try:
                self._take(k, ray.get(ref, timeout=120))
            except Exception as e:  # a worker that cannot stop loses only what it had not handed over
                log.error("%s could not stop cleanly: %s", shard.name, str(e).splitlines()[0])
        for name, f in list(self.feeds.items()):  # feeds whose last report never came
            summary = StreamSummary(name)
            if f.report is not None:
                summary = StreamSummary(name, state=f.report.snapshot.state)
            self._ended.append(self._summary(f, summary))
        self.feeds.clear()
        if self.stage is not None and self.stage.is_alive():
            self.stage.pending.put(None)
            self.stage.join()
        for sink in self.record_sinks:
            sink.close()
        if recognizer is not None:
            recognizer.close()
        for shard in self.shards:
            ray.kill(shard.actor)
        if self._started_ray:
            ray.shutdown()
