"""The dramatiq broker, configured for safety (see shared/reference/dramatiq-on-redis.md).

dramatiq's Redis broker only requeues a dead worker's messages inside its dispatch
script, on a random roll (0.1 % of commands): measured, ~14 minutes after a SIGKILL. That
maintenance only covers the queue the command was for, so a clock shared by all queues is
not enough either (the chaos run saw a delivery queue wait 54 s while the events queue
took every turn). Every worker therefore runs a `MaintenanceTicker`: every
`MAINTENANCE_INTERVAL` s it runs maintenance on each queue (a no-op `requeue` command with
maintenance on), which also keeps the process's heartbeat fresh while its consumers are
busy. With the 15 s heartbeat timeout a killed worker's messages come back within ~16 s.
dramatiq's own retries are off: the hub schedules retries itself (`hub.runtime.retry`),
keeps the final error, and never lets a rate-limit wait burn a retry.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterable
from typing import Any

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import AgeLimit, Callbacks, Pipelines, ShutdownNotifications

__all__ = [
    "HEARTBEAT_TIMEOUT_MS",
    "MAINTENANCE_INTERVAL",
    "MaintenanceTicker",
    "TimedMaintenanceRedisBroker",
    "encode_message",
    "make_broker",
]

log = logging.getLogger(__name__)

#: A worker that has not polled for this long is presumed dead; its messages are requeued.
HEARTBEAT_TIMEOUT_MS = 15_000
#: Seconds between maintenance runs (requeue of dead workers' messages) per process.
MAINTENANCE_INTERVAL = 0.5


class TimedMaintenanceRedisBroker(RedisBroker):
    """A RedisBroker whose maintenance runs only when `maintain` asks for it (every worker's
    `MaintenanceTicker` does, on a clock), never on dramatiq's random roll.

    Overrides the private `_should_do_maintenance` hook (pinned by a contract test).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self._forced = threading.local()

    def _should_do_maintenance(self, command: str) -> int:
        return 1 if getattr(self._forced, "on", False) else 0

    def maintain(self, queue_name: str) -> None:
        """Run maintenance on `queue_name` now: requeue the unacked messages dead workers
        hold from it (a `requeue` of no message ids, with maintenance on)."""
        self._forced.on = True
        try:
            self.do_requeue(queue_name)
        finally:
            self._forced.on = False


class MaintenanceTicker:
    """A daemon thread that runs `broker.maintain` on every queue every `interval` s."""

    def __init__(
        self,
        broker: TimedMaintenanceRedisBroker,
        queues: Iterable[str],
        *,
        interval: float = MAINTENANCE_INTERVAL,
    ) -> None:
        self.broker = broker
        self.queues = sorted(set(queues))
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="maintenance", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for queue in self.queues:
                try:
                    self.broker.maintain(queue)
                except Exception as exc:  # Redis restarting: the next tick tries again
                    log.debug("maintenance of %s failed: %s", queue, type(exc).__name__)


def make_broker(url: str) -> TimedMaintenanceRedisBroker:
    """A broker on `url` (`redis://…` or `unix://…`) with the hub's middleware, set as global."""
    client = redis.Redis.from_url(url, max_connections=1000)
    # No TimeLimit: it interrupts an actor at any point, and a message whose actor raised is
    # acked, i.e. lost. Every wait in an actor is bounded by its own timeout instead (HTTP
    # timeouts, the rate governor's max wait, the identity lock's wait).
    middleware = [AgeLimit(), ShutdownNotifications(), Callbacks(), Pipelines()]
    broker = TimedMaintenanceRedisBroker(
        client=client,
        heartbeat_timeout=HEARTBEAT_TIMEOUT_MS,
        middleware=middleware,
    )
    dramatiq.set_broker(broker)
    return broker


def encode_message(actor_name: str, queue_name: str, args: tuple[Any, ...]) -> tuple[str, bytes]:
    """A dramatiq message for `actor_name` on `queue_name`, as (redis message id, bytes).

    Lets the ingress enqueue inside its own Lua script (one round trip) exactly as
    `RedisBroker.enqueue` would: same encoding, a fresh `redis_message_id`.
    """
    redis_id = str(uuid.uuid4())
    message: dramatiq.Message[Any] = dramatiq.Message(
        queue_name=queue_name,
        actor_name=actor_name,
        args=args,
        kwargs={},
        options={"redis_message_id": redis_id},
    )
    return redis_id, message.encode()
