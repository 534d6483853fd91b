"""Store-and-enqueue: one pipelined round trip, idempotent per provider delivery id.

For each source event, one Lua script call checks the provider's delivery id (`SET NX`,
kept 7 days), stores the event in the event log and pushes a `process_event` message onto
dramatiq's queue exactly as `RedisBroker.enqueue` does. All calls of one request (or one
poll) go in one pipeline: one round trip, then the hub answers 200.

Webhook events keep the raw request (the worker re-parses it); polled events keep their
data as JSON with `method = POLL`.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aioredis

from hub.connector.base import RawRequest, SourceEvent
from hub.runtime import keys
from hub.runtime.broker import encode_message
from hub.runtime.pipelined_script import NoScriptError, PipelinedScript

__all__ = ["POLL_METHOD", "Backpressure", "Intake", "StoredEvent", "new_event_id", "store_polled"]

#: The `method` recorded for events that came from a poll rather than a webhook.
POLL_METHOD = "POLL"

_STORE_AND_ENQUEUE = PipelinedScript("""
local existing = redis.call('GET', KEYS[1])
if existing then return {0, existing} end
if redis.call('LLEN', KEYS[6]) >= tonumber(ARGV[6]) then return {-1, ''} end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('HSET', KEYS[2], unpack(ARGV, 7))
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[5], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[7], ARGV[4], ARGV[5])
redis.call('RPUSH', KEYS[6], ARGV[4])
redis.call('HINCRBY', KEYS[8], 'received', 1)
return {1, ARGV[1]}
""")

#: Request headers never stored (hop-by-hop, credentials, noise).
_DROPPED_HEADERS = frozenset(
    "authorization cookie connection host content-length keep-alive transfer-encoding "
    "upgrade proxy-authorization te trailer accept-encoding".split()
)


def new_event_id() -> str:
    """A time-sortable unique id: ms timestamp + 8 random bytes, hex."""
    return f"{int(time.time() * 1000):013x}{os.urandom(8).hex()}"


@dataclass(frozen=True)
class StoredEvent:
    event_id: str
    source_id: str
    duplicate: bool


class Backpressure(Exception):
    """The queue is over `hub.max_queue_depth` (or the AOF fsync did not happen): answer 503."""


def _queue_calls(
    pipe: Any,
    connector_id: str,
    connector_type: str,
    events: list[SourceEvent],
    received: int,
    stored: dict[str, Any],
    dedupe_ttl: int,
    max_depth: int,
) -> list[tuple[str, str, Any]]:
    """Queue one script call per event on `pipe`; returns (event id, source id, call result)."""
    queue = f"dramatiq:{keys.EVENTS_QUEUE}"
    calls = []
    for event in events:
        event_id = new_event_id()
        redis_id, message = encode_message("process_event", keys.EVENTS_QUEUE, (event_id,))
        fields: dict[str, Any] = {
            "connector": connector_id,
            "connector_type": connector_type,
            "status": "received",
            "received_at": received,
            "updated_at": received,
            "source_id": event.id,
            "source_type": event.type,
            "attempts": 0,
            **stored,
        }
        if stored.get("method") == POLL_METHOD:
            fields["body"] = json.dumps(event.data, default=str)
            fields["occurred_at"] = event.occurred_at.isoformat()
        flat = [item for pair in fields.items() for item in pair]
        result = _STORE_AND_ENQUEUE.queue(
            pipe,
            [
                keys.dedupe(connector_id, event.id),
                keys.event(event_id),
                keys.events_index(),
                keys.events_by_status("received"),
                keys.events_by_connector(connector_id),
                queue,
                f"{queue}.msgs",
                keys.counters(),
            ],
            [event_id, dedupe_ttl, received, redis_id, message, max_depth, *flat],
        )
        calls.append((event_id, event.id, result))
    return calls


def _results(calls: list[tuple[str, str, Any]], results: list[Any]) -> list[StoredEvent]:
    stored = []
    if any(int(created) < 0 for created, _ in results):
        raise Backpressure("the event queue is over hub.max_queue_depth")
    for (_event_id, source_id, _), (created, existing) in zip(calls, results, strict=True):
        stored_id = existing.decode() if isinstance(existing, bytes) else str(existing)
        stored.append(StoredEvent(stored_id, source_id, duplicate=not created))
    return stored


class Intake:
    """Async store-and-enqueue used by the ingress."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        dedupe_ttl: int = keys.DEDUPE_TTL_SECONDS,
        max_depth: int = 100_000,
        strict: bool = False,
    ) -> None:
        self.client = client
        self.dedupe_ttl = dedupe_ttl
        self.max_depth = max_depth
        self.strict = strict

    async def store(
        self, connector_id: str, connector_type: str, request: RawRequest, events: list[SourceEvent]
    ) -> list[StoredEvent]:
        """Store each event with the raw request and enqueue it; duplicates are not re-queued."""
        stored = {
            "method": request.method,
            "body": request.body,
            "headers": json.dumps({k: v for k, v in request.headers.items() if k not in _DROPPED_HEADERS}),
            "query": json.dumps(dict(request.query)),
        }
        received = int(request.received_at.timestamp() * 1000)
        try:
            return await self._send(connector_id, connector_type, events, received, stored)
        except NoScriptError:  # first call since the server started: load it, send again
            await _STORE_AND_ENQUEUE.aload(self.client)
            return await self._send(connector_id, connector_type, events, received, stored)

    async def _send(
        self,
        connector_id: str,
        connector_type: str,
        events: list[SourceEvent],
        received: int,
        stored: dict[str, Any],
    ) -> list[StoredEvent]:
        pipe = self.client.pipeline(transaction=False)
        calls = _queue_calls(
            pipe, connector_id, connector_type, events, received, stored, self.dedupe_ttl, self.max_depth
        )
        if self.strict:
            # durability: strict: the same round trip waits until the AOF is fsynced locally.
            pipe.execute_command("WAITAOF", 1, 0, 2000)
        results = await pipe.execute()
        if self.strict:
            fsynced = results.pop()
            if not fsynced or int(fsynced[0]) < 1:
                raise Backpressure("the event store did not confirm the AOF fsync in time")
        return _results(calls, results)


def store_polled(
    client: redis.Redis, connector_id: str, connector_type: str, events: list[SourceEvent]
) -> list[StoredEvent]:
    """Store and enqueue events found by a poll (sync, one round trip)."""
    if not events:
        return []

    def send() -> list[StoredEvent]:
        pipe = client.pipeline(transaction=False)
        calls = _queue_calls(
            pipe,
            connector_id,
            connector_type,
            events,
            int(time.time() * 1000),
            {"method": POLL_METHOD},
            keys.DEDUPE_TTL_SECONDS,
            2**62,
        )
        return _results(calls, pipe.execute())

    try:
        return send()
    except NoScriptError:
        _STORE_AND_ENQUEUE.load(client)
        return send()
