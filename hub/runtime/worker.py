"""A worker process: dramatiq actors for `process_event` and each destination, plus the retry pump
and the maintenance ticker.

SIGTERM (or Ctrl-C) stops taking new messages, lets in-flight ones finish, returns the
prefetched ones to the queue, and exits 0.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import dramatiq
import redis

from hub.runtime import keys
from hub.runtime.broker import MaintenanceTicker, make_broker
from hub.runtime.context import Runtime
from hub.runtime.delivery import deliver
from hub.runtime.polling import poll_connector
from hub.runtime.processing import process_event
from hub.runtime.retry import RetryPump
from hub.settings import HubConfig

__all__ = ["declare_actors", "run_worker"]

log = logging.getLogger(__name__)


#: Longest wait between two tries while the Redis-compatible server is unreachable.
REDIS_WAIT_CAP = 5.0


def until_redis_answers(fn: Callable[[], None]) -> None:
    """Run `fn`; while the server is unreachable, wait and run it again.

    dramatiq acks a message whose actor raised (the hub runs without its Retries
    middleware), so an actor must never raise: a delivery whose bookkeeping hits a dead
    connection would be lost. The message stays un-acked in Redis while we wait; if this
    worker dies meanwhile, maintenance gives it to another worker. Every actor is idempotent
    (statuses, receipts, upserts), so running it again is safe.
    """
    delay = 0.25
    while True:
        try:
            fn()
            return
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError, OSError) as exc:
            log.warning("Redis unreachable (%s); retrying in %.1f s", type(exc).__name__, delay)
            time.sleep(delay)
            delay = min(delay * 2, REDIS_WAIT_CAP)


def declare_actors(broker: Any, runtime: Runtime) -> tuple[set[str], set[str]]:
    """Register the actors on `broker`; returns (event and poll queues, delivery queues)."""

    def process_event_actor(event_id: str) -> None:
        until_redis_answers(lambda: process_event(runtime, event_id))

    dramatiq.actor(actor_name="process_event", queue_name=keys.EVENTS_QUEUE, broker=broker)(
        process_event_actor
    )

    def poll_connector_actor(instance_id: str) -> None:
        until_redis_answers(lambda: poll_connector(runtime, instance_id))

    dramatiq.actor(actor_name="poll_connector", queue_name=keys.POLLS_QUEUE, broker=broker)(
        poll_connector_actor
    )
    delivery_queues = set()
    for destination_id in runtime.config.destinations:
        queue = keys.delivery_queue(destination_id)

        def deliver_actor(payload: str, attempt: int = 0) -> None:
            until_redis_answers(lambda: deliver(runtime, payload, attempt))

        dramatiq.actor(actor_name=queue, queue_name=queue, broker=broker)(deliver_actor)
        delivery_queues.add(queue)
    return {keys.EVENTS_QUEUE, keys.POLLS_QUEUE}, delivery_queues


def run_worker(
    config: HubConfig,
    url: str,
    *,
    threads: int = 8,
    delivery_threads: int = 32,
    role: str = "all",
    stop: threading.Event | None = None,
    drain_timeout: float = 30.0,
) -> None:
    """Run one worker process until SIGTERM/SIGINT (or `stop` is set).

    Deliveries get their own (larger) thread pool: a delivery thread mostly waits, for its
    batch to fill or for the CRM's rate limit, and many waiting threads make full batches.
    `role`: `all`, or only `events` (mapping, flows, polls) or only `deliveries`.
    """
    if role not in ("all", "events", "deliveries"):
        raise ValueError(f"unknown worker role {role!r}: use all, events or deliveries")
    broker = make_broker(url)
    # One connection per thread at most: the default pool (100) is smaller than the threads.
    client = redis.Redis.from_url(url, max_connections=threads + delivery_threads + 64)
    runtime = Runtime(config, client)
    event_queues, delivery_queues = declare_actors(broker, runtime)
    pump = RetryPump(client)
    ticker = MaintenanceTicker(broker, event_queues | delivery_queues)
    if stop is None:
        stop = threading.Event()
    if threading.current_thread() is threading.main_thread() and not stop.is_set():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    workers = []
    if role != "deliveries":
        workers.append(
            dramatiq.Worker(broker, queues=event_queues, worker_threads=threads, worker_timeout=250)
        )
    if delivery_queues and role != "events":
        workers.append(
            dramatiq.Worker(
                broker, queues=delivery_queues, worker_threads=delivery_threads, worker_timeout=250
            )
        )
    for worker in workers:
        worker.start()
    pump.start()
    ticker.start()
    consumed = (event_queues if role != "deliveries" else set()) | (
        delivery_queues if role != "events" else set()
    )
    log.info(
        "worker started (%s): %d + %d delivery threads on %s",
        role,
        threads,
        delivery_threads,
        ", ".join(sorted(consumed)),
    )
    try:
        stop.wait()
    finally:
        log.info("worker draining in-flight messages (up to %.0f s)", drain_timeout)
        pump.stop()
        for worker in workers:
            worker.stop(timeout=int(drain_timeout * 1000))
        ticker.stop()  # after the drain: it keeps this process's heartbeat fresh meanwhile
        runtime.close()
        broker.close()
