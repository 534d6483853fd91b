"""The event log in Redis: every inbound event, its raw request, status, mapping version, error.

Statuses: `received` -> `ignored` (no flow matched) | `mapped` (deliveries queued) ->
`delivered` | `failed` (will be retried, or needs a fix and `crmhub events replay`) | `dead`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis

from hub.redaction import redact
from hub.runtime import keys

__all__ = ["STATUSES", "EventLog", "EventRecord", "now_ms"]

STATUSES = ("received", "ignored", "mapped", "delivered", "failed", "dead")


def now_ms() -> int:
    return int(time.time() * 1000)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


@dataclass(frozen=True)
class EventRecord:
    """One event as the log holds it (the raw body only when asked for)."""

    id: str
    connector: str
    connector_type: str
    status: str
    received_at: int
    updated_at: int
    source_id: str
    source_type: str
    mapping_version: str = ""
    error: str = ""
    attempts: int = 0
    results: dict[str, Any] = field(default_factory=dict)
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    method: str = "POST"
    occurred_at: str = ""

    @classmethod
    def from_hash(cls, event_id: str, data: Mapping[bytes, bytes]) -> EventRecord:
        get = {k.decode(): v for k, v in data.items()}
        results = {
            k.removeprefix("result:"): json.loads(v) for k, v in get.items() if k.startswith("result:")
        }
        return cls(
            id=event_id,
            connector=_text(get.get("connector")),
            connector_type=_text(get.get("connector_type")),
            status=_text(get.get("status")),
            received_at=int(get.get("received_at") or 0),
            updated_at=int(get.get("updated_at") or 0),
            source_id=_text(get.get("source_id")),
            source_type=_text(get.get("source_type")),
            mapping_version=_text(get.get("mapping_version")),
            error=_text(get.get("error")),
            attempts=int(get.get("attempts") or 0),
            results=results,
            body=get.get("body"),
            headers=json.loads(get.get("headers") or b"{}"),
            query=json.loads(get.get("query") or b"{}"),
            method=_text(get.get("method")) or "POST",
            occurred_at=_text(get.get("occurred_at")),
        )

    def summary(self) -> dict[str, Any]:
        """The JSON-able view used by the CLI and the admin API (no body, no headers)."""
        return {
            "id": self.id,
            "connector": self.connector,
            "type": self.source_type,
            "status": self.status,
            "received_at": _iso(self.received_at),
            "updated_at": _iso(self.updated_at),
            "source_id": self.source_id,
            "mapping_version": self.mapping_version,
            "attempts": self.attempts,
            "error": self.error,
            "results": self.results,
        }


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z") if ms else ""


class EventLog:
    """Sync access to the event log, for workers and the CLI."""

    def __init__(self, client: redis.Redis) -> None:
        self.client: Any = client

    def get(self, event_id: str, *, with_body: bool = True) -> EventRecord | None:
        data = self.client.hgetall(keys.event(event_id))
        if not data:
            return None
        record = EventRecord.from_hash(event_id, data)
        return record if with_body else _without_body(record)

    def set_status(self, event_id: str, status: str, **fields: Any) -> None:
        """Set the status (moving the id between status indexes) and other fields."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        now = now_ms()
        key = keys.event(event_id)
        old = self.client.hget(key, "status")
        pipe = self.client.pipeline(transaction=True)
        mapping: dict[str, Any] = {"status": status, "updated_at": now}
        mapping.update({k: v for k, v in fields.items() if v is not None})
        if mapping.get("error"):
            mapping["error"] = redact(str(mapping["error"]))
        pipe.hset(key, mapping=mapping)
        if old is not None and old.decode() != status:
            pipe.zrem(keys.events_by_status(old.decode()), event_id)
        pipe.zadd(keys.events_by_status(status), {event_id: now})
        pipe.execute()

    def update(self, event_id: str, **fields: Any) -> None:
        self.client.hset(keys.event(event_id), mapping={k: v for k, v in fields.items() if v is not None})

    def record_result(self, event_id: str, destination: str, result: Mapping[str, Any]) -> None:
        self.client.hset(keys.event(event_id), f"result:{destination}", json.dumps(result, default=str))

    def add_pending(self, event_id: str, count: int) -> int:
        return int(self.client.hincrby(keys.event(event_id), "pending", count))

    def query(
        self,
        *,
        status: str | None = None,
        connector: str | None = None,
        limit: int = 50,
        newest_first: bool = True,
    ) -> list[EventRecord]:
        """Events filtered by status and/or connector instance, newest first."""
        index = (
            keys.events_by_status(status)
            if status
            else (keys.events_by_connector(connector) if connector else keys.events_index())
        )
        ids = self._ids(index, newest_first=newest_first)
        records: list[EventRecord] = []
        for event_id in ids:
            record = self.get(event_id, with_body=False)
            if record is None:
                continue
            if connector and record.connector != connector:
                continue
            if status and record.status != status:
                continue
            records.append(record)
            if len(records) >= limit:
                break
        return records

    def _ids(self, index: str, *, newest_first: bool) -> Iterable[str]:
        batch, start = 500, 0
        while True:
            chunk = (self.client.zrevrange if newest_first else self.client.zrange)(
                index, start, start + batch - 1
            )
            if not chunk:
                return
            yield from (c.decode() for c in chunk)
            start += batch

    def counts(self) -> dict[str, int]:
        """How many events hold each status."""
        pipe = self.client.pipeline(transaction=False)
        for status in STATUSES:
            pipe.zcard(keys.events_by_status(status))
        return dict(zip(STATUSES, (int(n) for n in pipe.execute()), strict=True))

    def purge_older_than(self, cutoff_ms: int) -> int:
        """Delete events received before `cutoff_ms` (retention); returns how many."""
        removed = 0
        while True:
            ids = self.client.zrangebyscore(keys.events_index(), "-inf", cutoff_ms, start=0, num=500)
            if not ids:
                return removed
            self.delete([i.decode() for i in ids])
            removed += len(ids)

    def delete(self, event_ids: list[str]) -> None:
        """Remove events from the log and every index."""
        pipe = self.client.pipeline(transaction=False)
        for event_id in event_ids:
            pipe.hmget(keys.event(event_id), "connector", "status")
        metas = pipe.execute()
        pipe = self.client.pipeline(transaction=True)
        for event_id, (connector, status) in zip(event_ids, metas, strict=True):
            pipe.delete(keys.event(event_id))
            pipe.zrem(keys.events_index(), event_id)
            if connector:
                pipe.zrem(keys.events_by_connector(connector.decode()), event_id)
            if status:
                pipe.zrem(keys.events_by_status(status.decode()), event_id)
        pipe.execute()


def _without_body(record: EventRecord) -> EventRecord:
    from dataclasses import replace

    return replace(record, body=None, headers={}, query={})


def new_dlq_id() -> str:
    """A time-sortable id for a dead letter."""
    import os

    return f"{now_ms():013x}{os.urandom(4).hex()}"
