"""Calendly (API v2) webhooks: invitee bookings and cancellations.

Provider facts are in shared/reference/sources.md, section 7 (Calendly):

- `Calendly-Webhook-Signature: t=<unix>,v1=<hex>`, the hex HMAC-SHA256 of `"<t>.<raw body>"`
  under the subscription's signing key; the timestamp is signed, so stale deliveries are
  rejected (Calendly's own sample tolerance is ~3 minutes).
- The body is `{event, created_at, created_by, payload}` where `payload` is the invitee.
- A reschedule fires `invitee.canceled` and `invitee.created` for two different invitee
  URIs, so the dedupe id is the event type plus `payload.uri`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import Field

from hub import (
    PayloadError,
    RawRequest,
    SourceEvent,
    WebhookConnector,
    WebhookSettings,
    signatures,
)

__all__ = ["CalendlyConnector", "CalendlySettings"]

SIGNATURE_HEADER = "Calendly-Webhook-Signature"
INVITEE_CREATED = "invitee.created"
INVITEE_CANCELED = "invitee.canceled"


class CalendlySettings(WebhookSettings):
    """Settings of one Calendly webhook subscription."""

    api_base_url: str | None = Field(
        default="https://api.calendly.com",
        description="Base URL of the Calendly API v2 (point it at a stub in tests).",
    )
    # Calendly's documented sample tolerance is ~3 minutes (shared/reference/sources.md §7).
    timestamp_tolerance: float = Field(
        default=180,
        gt=0,
        description="Seconds the signed `t=` timestamp may be old before a delivery is stale.",
    )


class CalendlyConnector(WebhookConnector[CalendlySettings]):
    """Receives Calendly `invitee.created` / `invitee.canceled` webhooks."""

    name: ClassVar[str] = "calendly"
    category: ClassVar[str] = "calendars"
    events: ClassVar[tuple[str, ...]] = (INVITEE_CREATED, INVITEE_CANCELED)
    settings_model: ClassVar[type[CalendlySettings]] = CalendlySettings
    signature_header: ClassVar[str] = SIGNATURE_HEADER
    signs_timestamp: ClassVar[bool] = True

    def verify(self, request: RawRequest) -> None:
        """Check the `t=…,v1=…` signature over `"<t>.<raw body>"` and the timestamp's age.

        Raises:
            SignatureError: the header is missing or malformed, no signing key matches,
                or the signed timestamp is older than `timestamp_tolerance` seconds.
        """
        signatures.verify_timestamped_hmac(
            request.body,
            request.header(SIGNATURE_HEADER),
            self.settings.secret_bytes(),
            now=request.received_at,
            tolerance=self.settings.timestamp_tolerance,
            header=SIGNATURE_HEADER,
        )

    def parse(self, request: RawRequest) -> list[SourceEvent]:
        """One event per delivery: type `event`, id `"<event>:<payload.uri>"`, data the body.

        Raises:
            PayloadError: the body is not a JSON object with an `event` name, or an
                invitee event lacks its `payload.uri` or a valid `created_at`.
        """
        body = request.json()
        if not isinstance(body, dict):
            raise PayloadError("expected a JSON object with `event` and `payload`")
        event_type = body.get("event")
        if not isinstance(event_type, str) or not event_type.strip():
            raise PayloadError("the body has no `event` name")
        handled = event_type in self.events
        payload = body.get("payload")
        uri = payload.get("uri") if isinstance(payload, dict) else None
        if isinstance(uri, str) and uri.strip():
            event_id = f"{event_type}:{uri.strip()}"
        elif handled:
            raise PayloadError(f"{event_type} body has no `payload.uri` (the invitee URI)")
        else:
            # An event we do not map may carry no URI: a digest of the body is stable
            # across Calendly's retries of the same delivery.
            event_id = f"{event_type}:sha256:{hashlib.sha256(request.body).hexdigest()}"
        occurred_at = _parse_time(body.get("created_at"))
        if occurred_at is None:
            if handled:
                raise PayloadError(f"{event_type} body has no valid `created_at` timestamp")
            occurred_at = request.received_at.astimezone(UTC)
        return [SourceEvent(type=event_type, id=event_id, occurred_at=occurred_at, data=body)]

    @classmethod
    def sample_request(
        cls, event_type: str, data: Mapping[str, Any], secret: str, *, at: datetime
    ) -> RawRequest:
        """The POST Calendly would send for the webhook body `data`, signed with `t=` = `at`.

        The request's `received_at` is left as now: a receiver stamps its own arrival time.
        """
        body_obj = dict(data)
        body_obj.setdefault("event", event_type)
        if body_obj["event"] != event_type:
            raise ValueError(f"data is a {body_obj['event']!r} body, not {event_type!r}")
        body = json.dumps(body_obj, ensure_ascii=False, separators=(",", ":")).encode()
        timestamp = int(at.timestamp())
        digest = signatures.hmac_sha256(secret.encode(), f"{timestamp}.".encode() + body).hex()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            SIGNATURE_HEADER: f"t={timestamp},v1={digest}",
        }
        return RawRequest(method="POST", body=body, headers=headers)


def _parse_time(value: Any) -> datetime | None:
    """An ISO 8601 timestamp as aware UTC (Calendly sends `…T12:00:00.000000Z`), or None."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        # Calendly documents its times as UTC; a bare timestamp is read as UTC.
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        return None
