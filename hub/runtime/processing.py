"""`process_event`: re-parse a stored request, fetch if needed, map, match flows, queue deliveries."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from typing import Any

import httpx

from hub.canonical import Bundle
from hub.connector.base import Connector, RawRequest, SourceEvent, WebhookConnector
from hub.errors import (
    AuthDeliveryError,
    HubError,
    MappingError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from hub.flows import Flow, matching_flows
from hub.runtime import keys, metrics
from hub.runtime.broker import encode_message
from hub.runtime.context import Runtime
from hub.runtime.eventlog import EventRecord, now_ms
from hub.runtime.intake import POLL_METHOD
from hub.runtime.retry import schedule_retry

__all__ = ["FETCH_TIMEOUT", "delivery_payload", "process_event"]

log = logging.getLogger(__name__)

#: Seconds a provider API fetch may take before it counts as a transient failure.
FETCH_TIMEOUT = 15.0
_DONE = ("ignored", "mapped", "delivered", "dead")


def process_event(runtime: Runtime, event_id: str) -> None:
    """Process one stored event. Never raises: every outcome lands in the event log."""
    record = runtime.log.get(event_id)
    if record is None:
        log.warning("event %s is no longer in the log (retention?); skipping", event_id)
        return
    if record.status in _DONE:
        return  # a redelivered message for an event already handled: nothing to do
    attempts = record.attempts + 1
    runtime.log.update(event_id, attempts=attempts)
    try:
        _process(runtime, record)
    except (MappingError, PermanentDeliveryError, AuthDeliveryError) as exc:
        _fail(runtime, event_id, str(exc))
    except TransientDeliveryError as exc:
        _retry_or_die(runtime, record, attempts, f"fetch failed: {exc}", exc.retry_after)
    except HubError as exc:
        _fail(runtime, event_id, str(exc))
    except Exception as exc:
        log.exception("event %s: unexpected error in connector %s", event_id, record.connector)
        _fail(runtime, event_id, f"internal error: {type(exc).__name__}: {exc}")
    finally:
        metrics.incr(runtime.client, "processed")


def _fail(runtime: Runtime, event_id: str, error: str) -> None:
    runtime.log.set_status(event_id, "failed", error=error)


def _retry_or_die(
    runtime: Runtime, record: EventRecord, attempts: int, error: str, retry_after: float | None
) -> None:
    if now_ms() - record.received_at > runtime.max_age_ms:
        runtime.log.set_status(record.id, "dead", error=f"gave up after {attempts} attempts: {error}")
        metrics.incr(runtime.client, "dead")
        return
    delay = runtime.backoff.delay(attempts - 1, retry_after)
    runtime.log.set_status(record.id, "failed", error=f"{error} (retry {attempts} in {delay:.1f} s)")
    metrics.incr(runtime.client, "failed")
    schedule_retry(runtime.client, "process_event", keys.EVENTS_QUEUE, (record.id,), delay)


def _source_event(runtime: Runtime, record: EventRecord) -> tuple[Connector[Any], SourceEvent]:
    connector = runtime.connector(record.connector)
    if connector is None:
        raise HubError(f"connector instance {record.connector!r} is not configured any more")
    if record.method == POLL_METHOD:
        occurred = record.occurred_at
        when = (
            datetime.fromisoformat(occurred)
            if occurred
            else datetime.fromtimestamp(record.received_at / 1000, tz=UTC)
        )
        return connector, SourceEvent(
            record.source_type, record.source_id, when, json.loads(record.body or b"{}")
        )
    if not isinstance(connector, WebhookConnector):
        raise HubError(f"connector {record.connector!r} does not receive webhooks")
    request = RawRequest(
        method=record.method,
        body=record.body or b"",
        headers=record.headers,
        query=record.query,
        received_at=datetime.fromtimestamp(record.received_at / 1000, tz=UTC),
    )
    for event in connector.parse(request):
        if event.id == record.source_id:
            return connector, event
    raise HubError(f"the stored request no longer yields source event {record.source_id!r}")


def _fetch(connector: WebhookConnector[Any], event: SourceEvent) -> SourceEvent:
    async def run() -> SourceEvent:
        async with httpx.AsyncClient(timeout=FETCH_TIMEOUT) as client:
            try:
                return await connector.fetch(event, client)
            except httpx.TimeoutException as exc:
                raise TransientDeliveryError(f"provider API timed out ({type(exc).__name__})") from None
            except httpx.TransportError as exc:
                raise TransientDeliveryError(f"provider API unreachable ({type(exc).__name__})") from None

    return asyncio.run(run())


def _process(runtime: Runtime, record: EventRecord) -> None:
    connector, event = _source_event(runtime, record)
    flows = matching_flows(tuple(runtime.config.flows), record.connector, event.type)
    if not flows:
        runtime.log.set_status(record.id, "ignored", error=f"no flow matches {record.connector}.{event.type}")
        return
    if isinstance(connector, WebhookConnector) and connector.fetches and record.method != POLL_METHOD:
        event = _fetch(connector, event)
    instance = runtime.config.connectors[record.connector]
    mapper = instance.mappings.get(event.type)
    if mapper is None:
        raise MappingError(
            f"no mapping for event type {event.type!r} of {record.connector}: "
            f"add mappings/{instance.type_name}/<event>.yaml or a config override"
        )
    runtime.log.update(record.id, mapping_version=mapper.version)
    bundle = mapper.map(event, connector=record.connector)
    accepted = [f for f in flows if f.accepts(bundle)]
    if not accepted or bundle.is_empty:
        reason = "the mapping produced nothing to deliver" if bundle.is_empty else "no flow condition held"
        runtime.log.set_status(record.id, "ignored", error=reason)
        return
    _queue_deliveries(runtime, record, bundle, accepted)


def delivery_payload(record_id: str, received_at: int, flow: Flow, bundle: Bundle) -> str:
    """The JSON a `deliver.<destination>` message carries (also what the DLQ keeps)."""
    return json.dumps(
        {
            "event_id": record_id,
            "received_at": received_at,
            "flow": flow.name,
            "destination": flow.to,
            "actions": list(flow.actions),
            "tags": sorted(flow.tags),
            "pipeline": flow.pipeline,
            "stage": flow.stage,
            "bundle": bundle.model_dump(mode="json"),
        }
    )


def _queue_deliveries(runtime: Runtime, record: EventRecord, bundle: Bundle, flows: list[Flow]) -> None:
    # Status, pending count and every delivery message in one MULTI: a crash can not leave
    # an event "mapped" with deliveries missing, or deliveries queued twice.
    pipe = runtime.client.pipeline(transaction=True)
    now = now_ms()
    key = keys.event(record.id)
    pipe.hset(key, mapping={"status": "mapped", "updated_at": now, "pending": len(flows), "error": ""})
    pipe.zrem(keys.events_by_status(record.status), record.id)
    pipe.zadd(keys.events_by_status("mapped"), {record.id: now})
    for flow in flows:
        queue = keys.delivery_queue(flow.to)
        payload = delivery_payload(record.id, record.received_at, flow, bundle)
        msg_id, body = encode_message(queue, queue, (payload, 0))
        pipe.hset(f"dramatiq:{queue}.msgs", msg_id, body)
        pipe.rpush(f"dramatiq:{queue}", msg_id)
    pipe.execute()
