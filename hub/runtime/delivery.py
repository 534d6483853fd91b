"""`deliver`: write one flow's output to one destination, then record the outcome.

Outcomes, by error class (each adapter classifies its CRM's answers into these):
- success: receipts and results recorded, the event is `delivered` once all its flows are;
- `RateLimited`: the account's budget is used up: re-queued after the wait, no attempt used;
- `TransientDeliveryError` (5xx, timeouts, unexpected errors): exponential backoff with
  jitter, honouring Retry-After, until `hub.max_age_hours`, then dead-lettered;
- `PermanentDeliveryError` (the CRM refused the data): dead-lettered with the CRM's message;
- `AuthDeliveryError` (credentials refused): the destination is paused, its deliveries wait
  (no attempts used) and the reason shows in `crmhub events`; resumes on new credentials.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from hub.delivery.governor import RateLimited
from hub.delivery.pause import clear_pause, pause, pause_reason, take_probe
from hub.errors import AuthDeliveryError, PermanentDeliveryError, TransientDeliveryError
from hub.redaction import redact
from hub.runtime import keys, metrics
from hub.runtime.context import Runtime
from hub.runtime.eventlog import new_dlq_id, now_ms
from hub.runtime.retry import schedule_retry

__all__ = ["PAUSED_RECHECK", "deliver"]

log = logging.getLogger(__name__)

#: Seconds between re-checks of a delivery waiting on a paused destination.
PAUSED_RECHECK = 30.0


def deliver(runtime: Runtime, payload_text: str, attempt: int) -> None:
    """Deliver one flow's output to its destination. Never raises."""
    payload = json.loads(payload_text)
    destination_id = payload["destination"]
    writer = runtime.writer(destination_id)
    if writer is None:
        _dead(runtime, payload_text, payload, f"destination {destination_id!r} is not configured")
        return
    account = writer.destination.account_key()
    reason = pause_reason(runtime.client, account)
    probing = False
    if reason is not None:
        if not take_probe(runtime.client, account):
            _wait(
                runtime, payload_text, payload, attempt, f"{destination_id} paused: {reason}", PAUSED_RECHECK
            )
            return
        probing = True
    try:
        ids = writer.apply(payload)
    except RateLimited as exc:
        metrics.incr(runtime.client, "rate_limited")
        _wait(runtime, payload_text, payload, attempt, str(exc), exc.retry_after or 1.0)
    except PermanentDeliveryError as exc:
        _dead(runtime, payload_text, payload, f"refused by {destination_id}: {exc}")
    except AuthDeliveryError as exc:
        message = f"credentials refused ({exc}); fix them and restart, or `crmhub destinations resume`"
        pause(runtime.client, account, message)
        log.warning("destination %s paused: credentials refused", destination_id)
        _wait(runtime, payload_text, payload, attempt, f"{destination_id} paused: {message}", PAUSED_RECHECK)
    except TransientDeliveryError as exc:
        _retry(runtime, payload_text, payload, attempt, str(exc), exc.retry_after)
    except Exception as exc:
        log.warning(
            "delivery of event %s to %s failed: %s", payload["event_id"], destination_id, type(exc).__name__
        )
        _retry(runtime, payload_text, payload, attempt, f"{type(exc).__name__}: {exc}", None)
    else:
        if probing:
            clear_pause(runtime.client, account)
        _delivered(runtime, payload, ids)


# Record one successful delivery in one round trip: the result, one fewer pending delivery,
# `delivered` once none is pending (unless another flow dead-lettered it), the counters and
# the latency bucket. KEYS: event, status index prefix, counters, latency.
# ARGV: result field, result JSON, now ms, latency bucket field, latency seconds.
_DELIVERED = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local remaining = redis.call('HINCRBY', KEYS[1], 'pending', -1)
local status = redis.call('HGET', KEYS[1], 'status')
if remaining <= 0 and status and status ~= 'dead' and status ~= 'delivered' then
  redis.call('HSET', KEYS[1], 'status', 'delivered', 'updated_at', ARGV[3], 'error', '')
  redis.call('ZREM', KEYS[2] .. status, ARGV[6])
  redis.call('ZADD', KEYS[2] .. 'delivered', ARGV[3], ARGV[6])
end
redis.call('HINCRBY', KEYS[3], 'delivered', 1)
redis.call('HINCRBY', KEYS[4], ARGV[4], 1)
redis.call('HINCRBYFLOAT', KEYS[4], 'sum', ARGV[5])
redis.call('HINCRBY', KEYS[4], 'count', 1)
return remaining
"""


def _delivered(runtime: Runtime, payload: Mapping[str, Any], ids: Mapping[str, Any]) -> None:
    event_id = payload["event_id"]
    now = now_ms()
    seconds = max(0.0, (now - int(payload["received_at"])) / 1000)
    script = runtime.scripts.get("delivered")
    if script is None:
        script = runtime.scripts["delivered"] = runtime.client.register_script(_DELIVERED)
    script(
        keys=[keys.event(event_id), keys.events_by_status(""), keys.counters(), keys.latency()],
        args=[
            f"result:{payload['destination']}",
            json.dumps({"ok": True, "ids": ids}, default=str),
            now,
            metrics.latency_bucket(seconds),
            seconds,
            event_id,
        ],
    )


def _requeue(
    runtime: Runtime, payload_text: str, payload: Mapping[str, Any], attempt: int, delay: float
) -> None:
    queue = keys.delivery_queue(payload["destination"])
    schedule_retry(runtime.client, queue, queue, (payload_text, attempt), delay)


def _wait(
    runtime: Runtime, payload_text: str, payload: Mapping[str, Any], attempt: int, why: str, delay: float
) -> None:
    """Re-queue without using an attempt (rate limit, paused destination), up to max age."""
    age = now_ms() - int(payload["received_at"])
    if age > runtime.max_age_ms:
        _dead(runtime, payload_text, payload, f"gave up after {age / 3_600_000:.1f} h waiting: {why}")
        return
    runtime.log.set_status(payload["event_id"], "failed", error=f"{why} (waiting {delay:.0f} s)")
    _requeue(runtime, payload_text, payload, attempt, delay)


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
    _requeue(runtime, payload_text, payload, attempt + 1, delay)


def _dead(runtime: Runtime, payload_text: str, payload: Mapping[str, Any], reason: str) -> None:
    event_id, destination_id = payload["event_id"], payload["destination"]
    item_id = new_dlq_id()
    now = now_ms()
    reason = redact(reason)
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
