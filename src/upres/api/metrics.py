"""Prometheus metrics of one app, in a registry of its own (never the global one).

Request counts and latencies are counted as requests pass; task counts, queue
depth, throughput and captured credits are read from the store at scrape time,
so every API process reports the same system-wide numbers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import Collector

from upres.domain.chunks import ChunkStatus
from upres.domain.tasks import Factor, TaskStatus
from upres.services.tasks import ThroughputSource

METRICS_CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


_THROUGHPUT = "upres_throughput_megapixels_per_second"
# A long task's work waits as chunks (pending), not as a pending task: scale on both.
_CHUNKS = "upres_chunks"
_CHUNKS_HELP = "Chunks of running tasks by status"


class StatusCounts(Protocol):
    def count_by_status(self) -> Mapping[TaskStatus, int]:
        """How many tasks are in each status (every status present, 0 when none)."""
        ...


class StoreStats(StatusCounts, ThroughputSource, Protocol):
    """What the metrics read from the system of record at scrape time."""

    def count_chunks_by_status(self) -> Mapping[ChunkStatus, int]:
        """How many chunks of running tasks are in each status."""
        ...

    def credits_captured_total(self) -> float:
        """Credits captured by completed tasks, all accounts together."""
        ...


class _StoreCollector(Collector):
    def __init__(self, stats: StoreStats) -> None:
        self._stats = stats

    def describe(self) -> list[Metric]:
        """The families without values, so registering does not query the store."""
        return [
            GaugeMetricFamily("upres_tasks", "Tasks by status", labels=["status"]),
            GaugeMetricFamily("upres_queue_depth", "Tasks waiting for a worker"),
            GaugeMetricFamily(_CHUNKS, _CHUNKS_HELP, labels=["status"]),
            GaugeMetricFamily(_THROUGHPUT, "Upscaling speed", labels=["factor"]),
            CounterMetricFamily("upres_credits_captured", "Credits captured"),
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

    def _throughput(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            _THROUGHPUT,
            "Measured upscaling speed (output megapixels per second), by factor",
            labels=["factor"],
        )
        for factor in Factor:
            speed = self._stats.throughput(factor)
            if speed is not None:
                family.add_metric([str(int(factor))], speed)
        return family


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
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def watch_store(self, stats: StoreStats) -> Collector:
        """Report ``stats`` at every scrape, until ``unwatch``."""
        collector = _StoreCollector(stats)
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

    def observe_submission(self, *, factor: int, credits_reserved: float) -> None:
        self._submitted.labels(factor=str(factor)).inc()
        self._reserved.inc(credits_reserved)

    def render(self) -> bytes:
        """Prometheus text exposition of everything above."""
        return generate_latest(self.registry)
