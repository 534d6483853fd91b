"""Cluster-wide metrics kept in Redis, rendered for Prometheus by any ingress process.

Counters and the latency histogram are Redis hashes, so every worker and ingress process
adds to the same numbers and one scrape of `/metrics` sees the whole hub.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from hub.runtime import keys
from hub.runtime.eventlog import STATUSES

__all__ = ["LATENCY_BUCKETS", "RedisMetricsCollector", "incr", "latency_bucket", "observe_latency"]

#: End-to-end latency buckets, seconds (webhook received -> written to the destination).
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)
_COUNTERS = {
    "received": "Webhook events accepted and stored",
    "duplicates": "Deliveries acknowledged again but not processed twice",
    "processed": "Events processed by a worker (mapped, ignored or failed)",
    "delivered": "Deliveries written to a destination",
    "failed": "Failed attempts (each retry counts)",
    "dead": "Deliveries dead-lettered",
}


def incr(client: redis.Redis | Any, name: str, amount: int = 1) -> None:
    """Add to a cluster-wide counter (pass a pipeline to batch it)."""
    client.hincrby(keys.counters(), name, amount)


def latency_bucket(seconds: float) -> str:
    """The histogram field a latency falls in (`le:<bound>` or `le:+Inf`)."""
    bucket = next((b for b in LATENCY_BUCKETS if seconds <= b), None)
    return f"le:{bucket if bucket is not None else '+Inf'}"


def observe_latency(client: redis.Redis | Any, seconds: float) -> None:
    """Record one end-to-end latency in the histogram."""
    pipe: Any = client.pipeline(transaction=False)
    pipe.hincrby(keys.latency(), latency_bucket(seconds), 1)
    pipe.hincrbyfloat(keys.latency(), "sum", seconds)
    pipe.hincrby(keys.latency(), "count", 1)
    pipe.execute()


class RedisMetricsCollector(Collector):
    """Renders the Redis-held metrics (and live queue depths) on each scrape."""

    def __init__(self, client: redis.Redis, queues: list[str]) -> None:
        self.client = client
        self.queues = queues

    def collect(self) -> Iterator[Any]:
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(keys.counters())
        pipe.hgetall(keys.latency())
        for queue in self.queues:
            pipe.llen(f"dramatiq:{queue}")
        pipe.zcard(keys.retry_schedule())
        pipe.zcard(keys.dlq_index())
        for status in STATUSES:
            pipe.zcard(keys.events_by_status(status))
        try:
            results = pipe.execute()
        except redis.RedisError:
            return
        counters = {k.decode(): int(v) for k, v in results[0].items()}
        for name, doc in _COUNTERS.items():
            yield CounterMetricFamily(f"crmhub_{name}", doc, value=counters.get(name, 0))
        rejected = CounterMetricFamily("crmhub_rejected", "Webhooks rejected", labels=["reason"])
        for key, value in counters.items():
            if key.startswith("rejected:"):
                rejected.add_metric([key.removeprefix("rejected:")], value)
        yield rejected
        latency = {k.decode(): float(v) for k, v in results[1].items()}
        cumulative, buckets = 0.0, []
        for bound in LATENCY_BUCKETS:
            cumulative += latency.get(f"le:{bound}", 0)
            buckets.append((str(bound), cumulative))
        buckets.append(("+Inf", cumulative + latency.get("le:+Inf", 0)))
        yield HistogramMetricFamily(
            "crmhub_end_to_end_latency_seconds",
            "Webhook received to written at the destination",
            buckets=buckets,
            sum_value=latency.get("sum", 0.0),
        )
        depth = GaugeMetricFamily("crmhub_queue_depth", "Messages waiting per queue", labels=["queue"])
        for queue, size in zip(self.queues, results[2 : 2 + len(self.queues)], strict=True):
            depth.add_metric([queue], int(size))
        rest = results[2 + len(self.queues) :]
        depth.add_metric(["retry-scheduled"], int(rest[0]))
        yield depth
        yield GaugeMetricFamily("crmhub_dead_letters", "Dead-lettered deliveries held", value=int(rest[1]))
        events = GaugeMetricFamily("crmhub_events", "Events in the log by status", labels=["status"])
        for status, count in zip(STATUSES, rest[2:], strict=True):
            events.add_metric([status], int(count))
        yield events
