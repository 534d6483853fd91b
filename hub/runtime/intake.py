"""Store-and-enqueue for the ingress: one pipelined round trip, idempotent per delivery.

For each source event of a verified request, one Lua script call checks the provider's
delivery id (`SET NX`, kept 7 days), stores the raw request in the event log and pushes a
`process_event` message onto dramatiq's queue exactly as `RedisBroker.enqueue` does. All
calls of one request go in one pipeline: one round trip, then the hub answers 200.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from hub.connector.base import RawRequest, SourceEvent
from hub.runtime import keys
from hub.runtime.broker import encode_message

__all__ = ["Intake", "StoredEvent", "new_event_id"]

_STORE_AND_ENQUEUE = """
local existing = redis.call('GET', KEYS[1])
if existing then return {0, existing} end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('HSET', KEYS[2], unpack(ARGV, 6))
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[5], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[7], ARGV[4], ARGV[5])
redis.call('RPUSH', KEYS[6], ARGV[4])
redis.call('HINCRBY', KEYS[8], 'received', 1)
return {1, ARGV[1]}
"""

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


class Intake:
    """Async store-and-enqueue used by the ingress."""

    def __init__(self, client: aioredis.Redis, *, dedupe_ttl: int = keys.DEDUPE_TTL_SECONDS) -> None:
        self.client = client
        self.dedupe_ttl = dedupe_ttl
        self._script = client.register_script(_STORE_AND_ENQUEUE)

    async def store(
        self, connector_id: str, connector_type: str, request: RawRequest, events: list[SourceEvent]
    ) -> list[StoredEvent]:
        """Store each event with the raw request and enqueue it; duplicates are not re-queued."""
        received = int(request.received_at.timestamp() * 1000)
        headers = json.dumps({k: v for k, v in request.headers.items() if k not in _DROPPED_HEADERS})
        query = json.dumps(dict(request.query))
        queue = f"dramatiq:{keys.EVENTS_QUEUE}"
        pipe = self.client.pipeline(transaction=False)
        ids = []
        for event in events:
            event_id = new_event_id()
            ids.append((event_id, event.id))
            redis_id, message = encode_message("process_event", keys.EVENTS_QUEUE, (event_id,))
            fields: list[Any] = [
                "connector",
                connector_id,
                "connector_type",
                connector_type,
                "status",
                "received",
                "received_at",
                received,
                "updated_at",
                received,
                "source_id",
                event.id,
                "source_type",
                event.type,
                "method",
                request.method,
                "body",
                request.body,
                "headers",
                headers,
                "query",
                query,
                "attempts",
                0,
            ]
            await self._script(
                keys=[
                    keys.dedupe(connector_id, event.id),
                    keys.event(event_id),
                    keys.events_index(),
                    keys.events_by_status("received"),
                    keys.events_by_connector(connector_id),
                    queue,
                    f"{queue}.msgs",
                    keys.counters(),
                ],
                args=[event_id, self.dedupe_ttl, received, redis_id, message, *fields],
                client=pipe,
            )
        results = await pipe.execute()
        stored = []
        for (_event_id, source_id), (created, existing) in zip(ids, results, strict=True):
            stored_id = existing.decode() if isinstance(existing, bytes) else str(existing)
            stored.append(StoredEvent(stored_id, source_id, duplicate=not created))
        return stored
