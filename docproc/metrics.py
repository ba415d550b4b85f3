"""Prometheus metrics that stay right with any number of API and worker processes, on any number of hosts.

- What processes count (jobs finished, tokens, time in queue, run time, read speed, ingestion, webhook
  deliveries) goes to the broker's Redis as it happens (one HINCRBY per value), so every process adds to one
  shared count; nothing is lost when a process exits.
- What is a state (jobs by status and task, queue depth, worker heartbeats) is read from the database and
  Redis when /metrics is scraped.
Both are read by `SharedCollector` at scrape time, from whichever API process answers. HTTP request metrics
(prometheus-fastapi-instrumentator) are the answering API process's own.
"""

import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from docproc.broker import redis_client
from docproc.db import session_scope
from docproc.models import Job
from docproc.settings import get_settings

log = logging.getLogger(__name__)

PREFIX = "docproc:metrics:"
HEARTBEATS = "docproc:worker-heartbeats"


def _field(labels: Sequence[str], part: str = "") -> str:
    return json.dumps([*labels, part])


class SharedCounter:
    """A counter every process adds to, kept in Redis."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str] = ()) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        _write(lambda pipe: pipe.hincrbyfloat(PREFIX + self.name, _field(self._values(labels)), amount))

    def _values(self, labels: dict[str, str]) -> list[str]:
        return [str(labels[name]) for name in self.labelnames]

    def collect(self, stored: dict[str, float]) -> Metric:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for field, value in stored.items():
            *labels, _ = json.loads(field)
            family.add_metric(labels, value)
        return family


class SharedHistogram(SharedCounter):
    """A histogram every process observes into, kept in Redis (one field per bucket, plus sum and count)."""

    def __init__(
        self, name: str, documentation: str, buckets: Sequence[float], labelnames: Sequence[str] = ()
    ) -> None:
        super().__init__(name, documentation, labelnames)
        self.buckets = tuple(float(bound) for bound in buckets)

    def observe(self, value: float, **labels: str) -> None:
        values = self._values(labels)
        bucket = next((str(b) for b in self.buckets if value <= b), "+Inf")

        def write(pipe: "redis.client.Pipeline") -> None:
            pipe.hincrbyfloat(PREFIX + self.name, _field(values, f"le={bucket}"), 1)
            pipe.hincrbyfloat(PREFIX + self.name, _field(values, "sum"), value)

        _write(write)

    def collect(self, stored: dict[str, float]) -> Metric:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        per_labels: dict[tuple[str, ...], dict[str, float]] = defaultdict(dict)
        for field, value in stored.items():
            *labels, part = json.loads(field)
            per_labels[tuple(labels)][part] = value
        for labels, parts in per_labels.items():
            cumulative, buckets = 0.0, []
            for bound in [*map(str, self.buckets), "+Inf"]:
                cumulative += parts.get(f"le={bound}", 0.0)
                buckets.append((bound, cumulative))
            family.add_metric(list(labels), buckets, parts.get("sum", 0.0))
        return family


def _write(command: Callable[["redis.client.Pipeline"], object]) -> None:
    """Metrics never fail the work they describe: with Redis away, the value is dropped and logged."""
    try:
        with redis_client().pipeline(transaction=False) as pipe:
            command(pipe)
            pipe.execute()
    except redis.RedisError:
        log.warning("a metric was not recorded: Redis is unavailable")


SECONDS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 12 * 3600)
TOKENS_PER_S = (10, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 25_000, 50_000, 100_000)

JOBS_FINISHED = SharedCounter(
    "docproc_jobs_finished", "Jobs that ended, by task and status.", ["task", "status"]
)
QUEUE_SECONDS = SharedHistogram(
    "docproc_job_queue_seconds", "Time from submit to a worker's first claim.", SECONDS, ["task"]
)
RUN_SECONDS = SharedHistogram(
    "docproc_job_run_seconds", "Time from a worker's first claim to the end of the job.", SECONDS, ["task"]
)
TOKENS_READ = SharedCounter(
    "docproc_document_tokens_read", "Document tokens read by jobs that ended.", ["task"]
)
TOKENS_GENERATED = SharedCounter("docproc_tokens_generated", "Tokens generated by succeeded jobs.", ["task"])
PREFILL_TOKENS_PER_S = SharedHistogram(
    "docproc_prefill_tokens_per_second",
    "Reading (prefill) speed of each job that read its document.",
    TOKENS_PER_S,
)
PREFILL_TOKENS = SharedCounter("docproc_prefill_tokens", "Tokens read while jobs read their documents.")
PREFILL_SECONDS = SharedCounter("docproc_prefill_seconds", "Seconds jobs spent reading their documents.")
INGESTED_PAGES = SharedCounter("docproc_ingested_pages", "Pages of accepted uploads.", ["content_type"])
INGESTION_FAILURES = SharedCounter("docproc_ingestion_failures", "Refused uploads, by error code.", ["code"])
# Fed by webhook delivery (outcome: delivered, retrying, failed, ...).
WEBHOOK_DELIVERIES = SharedCounter(
    "docproc_webhook_deliveries", "Webhook delivery attempts, by outcome.", ["outcome"]
)

SHARED: tuple[SharedCounter, ...] = (
    JOBS_FINISHED,
    QUEUE_SECONDS,
    RUN_SECONDS,
    TOKENS_READ,
    TOKENS_GENERATED,
    PREFILL_TOKENS_PER_S,
    PREFILL_TOKENS,
    PREFILL_SECONDS,
    INGESTED_PAGES,
    INGESTION_FAILURES,
    WEBHOOK_DELIVERIES,
)


def heartbeat(worker_id: str) -> None:
    """A worker is alive: called every DOCPROC_WORKER_HEARTBEAT_S by each worker."""
    _write(lambda pipe: pipe.hset(HEARTBEATS, worker_id, time.time()))


def forget_worker(worker_id: str) -> None:
    _write(lambda pipe: pipe.hdel(HEARTBEATS, worker_id))


class SharedCollector(Collector):
    """Reads the shared counters and the current state at scrape time. A part whose source is away is left
    out of that scrape (and logged) rather than failing the whole scrape."""

    def __init__(self, queues: Sequence[str]) -> None:
        self.queues = tuple(queues)

    def collect(self) -> Iterator[Metric]:
        try:
            yield from self._from_redis()
        except redis.RedisError:
            log.warning("metrics from Redis left out of this scrape: Redis is unavailable")
        try:
            yield self._jobs()
        except Exception:  # the database may be briefly away
            log.exception("job metrics left out of this scrape")

    def _from_redis(self) -> Iterator[Metric]:
        client = redis_client()
        with client.pipeline(transaction=False) as pipe:
            for metric in SHARED:
                pipe.hgetall(PREFIX + metric.name)
            for queue in self.queues:
                pipe.llen(queue)
            pipe.hgetall(HEARTBEATS)
            replies = pipe.execute()
        for metric, stored in zip(SHARED, replies, strict=False):
            yield metric.collect({field.decode(): float(value) for field, value in stored.items()})
        depth = GaugeMetricFamily("docproc_queue_depth", "Messages waiting on each queue.", labels=["queue"])
        for queue, length in zip(self.queues, replies[len(SHARED) :], strict=False):
            depth.add_metric([queue], length)
        yield depth
        beats = [float(value) for value in replies[-1].values()]
        now = time.time()
        fresh_within = 3 * get_settings().worker_heartbeat_s
        age = GaugeMetricFamily(
            "docproc_worker_heartbeat_age_seconds",
            "Seconds since the newest worker heartbeat (NaN: none yet).",
        )
        age.add_metric([], now - max(beats) if beats else float("nan"))
        yield age
        alive = GaugeMetricFamily(
            "docproc_workers_alive", f"Workers whose last heartbeat is under {fresh_within:g} s old."
        )
        alive.add_metric([], sum(now - beat < fresh_within for beat in beats))
        yield alive

    def _jobs(self) -> Metric:
        family = GaugeMetricFamily(
            "docproc_jobs", "Jobs in the database, by status and task.", labels=["status", "task"]
        )
        with session_scope() as session:
            for status, task, count in session.execute(
                select(Job.status, Job.task, func.count()).group_by(Job.status, Job.task)
            ):
                family.add_metric([status.value, task], count)
        return family
