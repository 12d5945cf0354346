"""Prometheus metrics of one app, in a registry of its own (never the global one).

Request counts and latencies are counted as requests pass; task counts, queue
depth, throughput and captured credits are read from the store at scrape time,
so every API process reports the same system-wide numbers.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import Collector

from upres.clock import Clock, utc_now
from upres.domain.chunks import ChunkStatus
from upres.domain.records import Backlog, MeasuredThroughput
from upres.domain.tasks import TaskStatus
from upres.errors import DatabaseUnavailable, StorageUnavailable, UpresError

METRICS_CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


_THROUGHPUT = "upres_throughput_megapixels_per_second"
_THROUGHPUT_HELP = (
    "Measured upscaling speed (output megapixels per second), by factor and network"
    " (network empty: measured before networks were told apart)"
)
# A long task's work waits as chunks (pending), not as a pending task: scale on both.
_CHUNKS = "upres_chunks"
_CHUNKS_HELP = "Chunks of running tasks by status"
_WAITING = "upres_oldest_pending_seconds"
_WAITING_HELP = "How long the oldest pending task or chunk has waited for a worker"
_WORKER_FPS = "upres_worker_frames_per_second"
_WORKER_FPS_HELP = "Frames per second of each worker running a task or a chunk now"
_WORKER_MPX = "upres_worker_megapixels_per_second"
_WORKER_MPX_HELP = "Output megapixels per second of each worker running a task or a chunk now"
_GPU_MEMORY = "upres_gpu_memory_bytes"
_GPU_MEMORY_HELP = "Memory of each GPU of this machine (nvidia-smi), used and total"
_NVIDIA_SMI_TIMEOUT_S = 2.0


class StatusCounts(Protocol):
    def count_by_status(self) -> Mapping[TaskStatus, int]:
        """How many tasks are in each status (every status present, 0 when none)."""
        ...


class StoreStats(StatusCounts, Protocol):
    """What the metrics read from the system of record at scrape time."""

    def measured_throughputs(self) -> Sequence[MeasuredThroughput]:
        """Every network's measured speed at each factor."""
        ...

    def count_chunks_by_status(self) -> Mapping[ChunkStatus, int]:
        """How many chunks of running tasks are in each status."""
        ...

    def credits_captured_total(self) -> float:
        """Credits captured by completed tasks, all accounts together."""
        ...

    def backlog(self) -> Backlog:
        """The oldest pending work, and each busy worker's speed."""
        ...


class _StoreCollector(Collector):
    def __init__(self, stats: StoreStats, clock: Clock) -> None:
        self._stats = stats
        self._clock = clock

    def describe(self) -> list[Metric]:
        """The families without values, so registering does not query the store."""
        return [
            GaugeMetricFamily("upres_tasks", "Tasks by status", labels=["status"]),
            GaugeMetricFamily("upres_queue_depth", "Tasks waiting for a worker"),
            GaugeMetricFamily(_CHUNKS, _CHUNKS_HELP, labels=["status"]),
            GaugeMetricFamily(_THROUGHPUT, _THROUGHPUT_HELP, labels=["factor", "network"]),
            CounterMetricFamily("upres_credits_captured", "Credits captured"),
            GaugeMetricFamily(_WAITING, _WAITING_HELP, labels=["queue"]),
            GaugeMetricFamily(_WORKER_FPS, _WORKER_FPS_HELP, labels=["worker"]),
            GaugeMetricFamily(_WORKER_MPX, _WORKER_MPX_HELP, labels=["worker"]),
            GaugeMetricFamily(_GPU_MEMORY, _GPU_MEMORY_HELP, labels=["gpu", "kind"]),
        ]

    def collect(self) -> Iterator[Metric]:
        counts = self._stats.count_by_status()
        tasks = GaugeMetricFamily("upres_tasks", "Tasks by status", labels=["status"])
        for status in TaskStatus:
            tasks.add_metric([status.value], counts.get(status, 0))
        yield tasks
        yield GaugeMetricFamily(
            "upres_queue_depth",
            "Tasks waiting for a worker",
            value=counts.get(TaskStatus.PENDING, 0),
        )
        chunks = GaugeMetricFamily(_CHUNKS, _CHUNKS_HELP, labels=["status"])
        for chunk_status, count in self._stats.count_chunks_by_status().items():
            chunks.add_metric([chunk_status.value], count)
        yield chunks
        yield self._throughput()
        yield CounterMetricFamily(
            "upres_credits_captured",
            "Credits captured from completed tasks, all processes",
            value=self._stats.credits_captured_total(),
        )
        yield from self._backlog()
        yield gpu_memory(nvidia_smi_memory())

    def _backlog(self) -> Iterator[Metric]:
        backlog, now = self._stats.backlog(), self._clock()
        waiting = GaugeMetricFamily(_WAITING, _WAITING_HELP, labels=["queue"])
        for queue, since in (
            ("tasks", backlog.oldest_pending_task),
            ("chunks", backlog.oldest_pending_chunk),
        ):
            waiting.add_metric([queue], 0.0 if since is None else (now - since).total_seconds())
        yield waiting
        speeds = GaugeMetricFamily(_WORKER_FPS, _WORKER_FPS_HELP, labels=["worker"])
        for worker, fps in sorted(backlog.worker_fps.items()):
            speeds.add_metric([worker], fps)
        yield speeds
        megapixels = GaugeMetricFamily(_WORKER_MPX, _WORKER_MPX_HELP, labels=["worker"])
        for worker, mpx_per_s in sorted(backlog.worker_mpx_per_s.items()):
            megapixels.add_metric([worker], mpx_per_s)
        yield megapixels

    def _throughput(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily(_THROUGHPUT, _THROUGHPUT_HELP, labels=["factor", "network"])
        for measured in self._stats.measured_throughputs():
            family.add_metric([str(int(measured.factor)), measured.network], measured.mpix_per_s)
        return family


def nvidia_smi_memory() -> str:
    """nvidia-smi's CSV of each GPU's index and used and total memory (MiB);
    empty on a machine without it, or when it does not answer in time."""
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return ""
    query = ["--query-gpu=index,memory.used,memory.total", "--format=csv,noheader,nounits"]
    try:
        done = subprocess.run(
            [binary, *query],
            capture_output=True,
            text=True,
            timeout=_NVIDIA_SMI_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout if done.returncode == 0 else ""


def gpu_memory(csv: str) -> GaugeMetricFamily:
    """``nvidia_smi_memory``'s lines as bytes by GPU and kind; unreadable lines are skipped."""
    family = GaugeMetricFamily(_GPU_MEMORY, _GPU_MEMORY_HELP, labels=["gpu", "kind"])
    for line in csv.splitlines():
        fields = [field.strip() for field in line.split(",")]
        if len(fields) != 3 or not all(field.isdigit() for field in fields):
            continue
        gpu, used, total = fields
        family.add_metric([gpu, "used"], int(used) * 1024 * 1024)
        family.add_metric([gpu, "total"], int(total) * 1024 * 1024)
    return family


def dependency_of(exc: UpresError) -> str | None:
    """Which dependency an error says failed: ``database``, ``storage``, or None."""
    if isinstance(exc, DatabaseUnavailable):
        return "database"
    if isinstance(exc, StorageUnavailable):
        return "storage"
    return None


class ApiMetrics:
    """The metrics of one app; ``render`` is the /metrics body."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = Counter(
            "upres_http_requests",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "upres_http_request_duration_seconds",
            "HTTP request latency by route template",
            ["route"],
            registry=self.registry,
        )
        self._submitted = Counter(
            "upres_tasks_submitted",
            "Tasks accepted by this process, by upscale factor",
            ["factor"],
            registry=self.registry,
        )
        self._reserved = Counter(
            "upres_credits_reserved",
            "Credits reserved by tasks this process accepted",
            registry=self.registry,
        )
        self._dependency_errors = Counter(
            "upres_dependency_errors",
            "Requests this process answered 503 because the database or the storage failed",
            ["dependency"],
            registry=self.registry,
        )
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def watch_store(self, stats: StoreStats, clock: Clock = utc_now) -> Collector:
        """Report ``stats`` at every scrape, until ``unwatch``."""
        collector = _StoreCollector(stats, clock)
        self.registry.register(collector)
        return collector

    def unwatch(self, collector: Collector) -> None:
        self.registry.unregister(collector)

    def observe_request(self, *, method: str, route: str, status: int, duration_s: float) -> None:
        # The labelled children are remembered: looking them up costs more than counting.
        children = self._children.get((route, method, status))
        if children is None:
            children = self._children[(route, method, status)] = (
                self._requests.labels(route=route, method=method, status=str(status)),
                self._latency.labels(route=route),
            )
        children[0].inc()
        children[1].observe(duration_s)

    def observe_error(self, exc: UpresError) -> None:
        """Count an error answered to a client when a dependency caused it."""
        dependency = dependency_of(exc)
        if dependency is not None:
            self._dependency_errors.labels(dependency=dependency).inc()

    def observe_submission(self, *, factor: int, credits_reserved: float) -> None:
        self._submitted.labels(factor=str(factor)).inc()
        self._reserved.inc(credits_reserved)

    def render(self) -> bytes:
        """Prometheus text exposition of everything above."""
        return generate_latest(self.registry)
