"""`deliver`: apply a flow's actions to one destination; classify failures; retry or dead-letter."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from hub.canonical import Bundle, Deal
from hub.destination import Destination
from hub.errors import AuthDeliveryError, PermanentDeliveryError, TransientDeliveryError
from hub.runtime import keys, metrics
from hub.runtime.context import Runtime
from hub.runtime.eventlog import new_dlq_id, now_ms
from hub.runtime.retry import schedule_retry

__all__ = ["apply_actions", "deliver"]

log = logging.getLogger(__name__)


def apply_actions(destination: Destination, payload: Mapping[str, Any]) -> dict[str, Any]:
    """Write the bundle's objects as the flow's actions say; returns the CRM ids."""
    bundle = Bundle.model_validate(payload["bundle"])
    actions = set(payload["actions"])
    tags = frozenset(payload.get("tags") or ())
    ids: dict[str, Any] = {}
    contact_id = company_id = deal_id = None
    needs_contact = actions & {"upsert_contact", "add_tags"} or (
        actions & {"upsert_deal", "add_activity"} and bundle.contacts
    )
    if needs_contact and bundle.contacts:
        contact = bundle.contacts[0]
        if tags and "upsert_contact" in actions:
            contact = contact.model_copy(update={"tags": contact.tags | tags})
        contact_id = destination.upsert_contact(contact)
        ids["contact"] = contact_id
        for extra in bundle.contacts[1:]:
            ids.setdefault("other_contacts", []).append(destination.upsert_contact(extra))
    if "upsert_company" in actions and bundle.companies:
        company_id = destination.upsert_company(bundle.companies[0])
        ids["company"] = company_id
        if contact_id is not None:
            destination.link_contact_company(contact_id, company_id)
    if "upsert_deal" in actions and bundle.deals:
        deal: Deal = bundle.deals[0]
        overrides = {k: payload[k] for k in ("pipeline", "stage") if payload.get(k)}
        if overrides:
            deal = deal.model_copy(update=overrides)
        deal_id = destination.upsert_deal(deal, contact_id=contact_id, company_id=company_id)
        ids["deal"] = deal_id
    if "add_activity" in actions:
        ids["activities"] = [
            destination.add_activity(a, contact_id=contact_id, deal_id=deal_id) for a in bundle.activities
        ]
    if "add_tags" in actions and tags and contact_id is not None:
        destination.add_tags(contact_id, sorted(tags))
    return ids


def deliver(runtime: Runtime, payload_text: str, attempt: int) -> None:
    """Deliver one flow's output to its destination. Never raises."""
    payload = json.loads(payload_text)
    event_id, destination_id = payload["event_id"], payload["destination"]
    destination = runtime.destination(destination_id)
    if destination is None:
        _dead(runtime, payload_text, payload, f"destination {destination_id!r} is not configured")
        return
    try:
        ids = apply_actions(destination, payload)
    except PermanentDeliveryError as exc:
        _dead(runtime, payload_text, payload, f"refused by {destination_id}: {exc}")
    except AuthDeliveryError as exc:
        _dead(runtime, payload_text, payload, f"credentials refused by {destination_id}: {exc}")
    except TransientDeliveryError as exc:
        _retry(runtime, payload_text, payload, attempt, str(exc), exc.retry_after)
    except Exception as exc:
        log.warning("delivery of event %s to %s failed: %s", event_id, destination_id, type(exc).__name__)
        _retry(runtime, payload_text, payload, attempt, f"{type(exc).__name__}: {exc}", None)
    else:
        _delivered(runtime, payload, ids)


def _delivered(runtime: Runtime, payload: Mapping[str, Any], ids: Mapping[str, Any]) -> None:
    event_id = payload["event_id"]
    runtime.log.record_result(event_id, payload["destination"], {"ok": True, "ids": ids})
    remaining = runtime.log.add_pending(event_id, -1)
    record = runtime.log.get(event_id, with_body=False)
    if remaining <= 0 and record is not None and record.status != "dead":
        runtime.log.set_status(event_id, "delivered", error="")
    metrics.incr(runtime.client, "delivered")
    metrics.observe_latency(runtime.client, max(0.0, (now_ms() - int(payload["received_at"])) / 1000))


def _retry(
    runtime: Runtime,
    payload_text: str,
    payload: Mapping[str, Any],
    attempt: int,
    error: str,
    retry_after: float | None,
) -> None:
    event_id, destination_id = payload["event_id"], payload["destination"]
    age = now_ms() - int(payload["received_at"])
    if age > runtime.max_age_ms:
        _dead(
            runtime,
            payload_text,
            payload,
            f"gave up after {attempt + 1} attempts over {age / 3_600_000:.1f} h: {error}",
        )
        return
    delay = runtime.backoff.delay(attempt, retry_after)
    runtime.log.set_status(
        event_id, "failed", error=f"{destination_id}: {error} (retry {attempt + 1} in {delay:.1f} s)"
    )
    metrics.incr(runtime.client, "failed")
    queue = keys.delivery_queue(destination_id)
    schedule_retry(runtime.client, queue, queue, (payload_text, attempt + 1), delay)


def _dead(runtime: Runtime, payload_text: str, payload: Mapping[str, Any], reason: str) -> None:
    event_id, destination_id = payload["event_id"], payload["destination"]
    item_id = new_dlq_id()
    now = now_ms()
    pipe = runtime.client.pipeline(transaction=True)
    pipe.hset(
        keys.dlq_item(item_id),
        mapping={
            "payload": payload_text,
            "reason": reason,
            "destination": destination_id,
            "event_id": event_id,
            "died_at": now,
            "flow": payload.get("flow") or "",
        },
    )
    pipe.zadd(keys.dlq_index(), {item_id: now})
    pipe.execute()
    runtime.log.add_pending(event_id, -1)
    runtime.log.set_status(event_id, "dead", error=reason)
    metrics.incr(runtime.client, "dead")
    log.warning("event %s dead-lettered for %s (%s)", event_id, destination_id, item_id)
