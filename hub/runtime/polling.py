"""Polling connectors at runtime: cursors in Redis, one poll at a time per instance, the
scheduler (one active, by a Redis lock) and backfills.

A poll stores what it found through the same store-and-enqueue path as webhooks (so the
provider's ids are deduplicated), then saves the next cursor: a crash between the two
repeats a poll, never skips one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import redis

from hub.connector.base import PollingConnector, PollResult
from hub.errors import HubError
from hub.runtime import keys
from hub.runtime.broker import encode_message
from hub.runtime.context import Runtime
from hub.runtime.eventlog import EventLog, now_ms
from hub.runtime.intake import store_polled
from hub.settings import HubConfig

__all__ = ["CursorStore", "Scheduler", "poll_connector", "run_poll"]

log = logging.getLogger(__name__)

#: Seconds a poll's provider API calls may take before they count as transient failures.
POLL_TIMEOUT = 30.0
_LOCK_MS = 5 * 60 * 1000


class CursorStore:
    """JSON cursors by connector instance id, in Redis (they survive restarts and reloads)."""

    def __init__(self, client: redis.Redis) -> None:
        self.client: Any = client

    def load(self, instance_id: str) -> Any:
        raw = self.client.get(keys.cursor(instance_id))
        return None if raw is None else json.loads(raw)

    def save(self, instance_id: str, cursor: Any) -> None:
        self.client.set(keys.cursor(instance_id), json.dumps(cursor, default=str))


def run_poll(connector: PollingConnector[Any, Any], cursor: Any) -> PollResult[Any]:
    """Run one `poll` with a fresh `httpx.AsyncClient` (sync boundary for the workers)."""

    async def go() -> PollResult[Any]:
        async with httpx.AsyncClient(timeout=POLL_TIMEOUT) as client:
            return await connector.poll(cursor, client)

    return asyncio.run(go())


def poll_connector(runtime: Runtime, instance_id: str) -> None:
    """The `poll_connector` actor: poll one instance from its cursor. Never raises."""
    client: Any = runtime.client
    connector = runtime.connector(instance_id)
    if not isinstance(connector, PollingConnector):
        log.warning("poll for %s: not a configured polling connector", instance_id)
        return
    token = os.urandom(8).hex()
    if not client.set(keys.poll_lock(instance_id), token, nx=True, px=_LOCK_MS):
        return  # another worker is polling this instance right now
    state = keys.poll_state(instance_id)
    try:
        cursors = CursorStore(client)
        cursor = cursors.load(instance_id)
        if cursor is None:
            cursor = connector.initial_cursor(datetime.now(UTC) - connector.interval)
        result = run_poll(connector, cursor)
        stored = store_polled(client, instance_id, connector.name, result.events)
        cursors.save(instance_id, result.next_cursor)
        new = sum(1 for s in stored if not s.duplicate)
        client.hset(state, mapping={"last_run": now_ms(), "last_error": "", "last_events": new})
        if result.more:
            _enqueue_poll(client, instance_id)
    except HubError as exc:
        client.hset(state, mapping={"last_run": now_ms(), "last_error": str(exc)})
        log.warning("poll of %s failed: %s", instance_id, type(exc).__name__)
    except Exception as exc:
        client.hset(state, mapping={"last_run": now_ms(), "last_error": f"{type(exc).__name__}: {exc}"})
        log.exception("poll of %s failed unexpectedly", instance_id)
    finally:
        if client.get(keys.poll_lock(instance_id)) == token.encode():
            client.delete(keys.poll_lock(instance_id))


def _enqueue_poll(client: Any, instance_id: str) -> None:
    msg_id, body = encode_message("poll_connector", keys.POLLS_QUEUE, (instance_id,))
    pipe = client.pipeline(transaction=False)
    pipe.hset(f"dramatiq:{keys.POLLS_QUEUE}.msgs", msg_id, body)
    pipe.rpush(f"dramatiq:{keys.POLLS_QUEUE}", msg_id)
    pipe.execute()


# Renew the lock only if we still hold it.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0
"""


class Scheduler:
    """Enqueues each polling instance's poll at its interval; purges the event log by
    retention. Only the holder of the Redis lock acts, so any number may run."""

    def __init__(
        self, config: HubConfig, client: redis.Redis, *, tick: float = 1.0, lock_ms: int = 15_000
    ) -> None:
        self.config = config
        self.client: Any = client
        self.tick = tick
        self.lock_ms = lock_ms
        self.token = os.urandom(8).hex()
        self._renew = client.register_script(_RENEW)
        self._last_purge: float | None = None

    def is_leader(self) -> bool:
        """Take or keep the scheduler lock; True while this scheduler holds it."""
        return bool(self._renew(keys=[keys.scheduler_lock()], args=[self.token, self.lock_ms]))

    def polling_instances(self) -> dict[str, timedelta]:
        intervals = {}
        for instance_id, instance in self.config.connectors.items():
            if issubclass(instance.cls, PollingConnector):
                seconds = float(getattr(instance.settings, "poll_interval", 300))
                intervals[instance_id] = timedelta(seconds=seconds)
        return intervals

    def run_once(self) -> list[str]:
        """One tick: if leader, enqueue due polls (returns their instance ids)."""
        if not self.is_leader():
            return []
        now = now_ms()
        enqueued = []
        for instance_id, interval in self.polling_instances().items():
            due = self.client.hget(keys.poll_state(instance_id), "next_due")
            if due is None or int(due) <= now:
                self.client.hset(
                    keys.poll_state(instance_id), "next_due", now + int(interval.total_seconds() * 1000)
                )
                _enqueue_poll(self.client, instance_id)
                enqueued.append(instance_id)
        if self._last_purge is None or time.monotonic() - self._last_purge > 3600:
            self._last_purge = time.monotonic()
            cutoff = now - int(self.config.hub.retention_days * 86_400_000)
            removed = EventLog(self.client).purge_older_than(cutoff)
            if removed:
                log.info(
                    "retention: removed %d events older than %s days", removed, self.config.hub.retention_days
                )
        return enqueued

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.run_once()
            except redis.RedisError as exc:
                log.warning("scheduler: broker unavailable (%s)", type(exc).__name__)
            stop.wait(self.tick)
        if self.client.get(keys.scheduler_lock()) == self.token.encode():
            self.client.delete(keys.scheduler_lock())


def backfill(
    connector: PollingConnector[Any, Any],
    instance_id: str,
    client: redis.Redis,
    since: datetime,
    progress: Callable[[int, int, Any], None],
) -> int:
    """Poll from `since` until caught up, storing events as they come; returns how many new.

    Runs beside live polling (its own cursor); delivery ids dedupe what both see.
    """
    cursor = connector.initial_cursor(since)
    total_new = pages = 0
    while True:
        result = run_poll(connector, cursor)
        stored = store_polled(client, instance_id, connector.name, result.events)
        total_new += sum(1 for s in stored if not s.duplicate)
        pages += 1
        progress(pages, total_new, result.next_cursor)
        cursor = result.next_cursor
        if not result.more:
            return total_new
