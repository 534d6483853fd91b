"""Shopify webhooks: verify `X-Shopify-Hmac-Sha256`, turn one delivery into one source event.

Provider facts are in shared/reference/sources.md, section 1 (Shopify). The quirks this
module relies on:

- The signature is base64(HMAC-SHA256(app client secret, raw body)). No timestamp is
  signed, so a replay cannot be told from a retry: the hub deduplicates on
  `X-Shopify-Webhook-Id` (one per delivery, kept across Shopify's retries).
- The event type (`orders/create`) travels in the `X-Shopify-Topic` header, never in the
  body. The body is the full REST resource (an order, a customer).
- Body timestamps carry the shop's UTC offset (`2024-05-01T10:00:00+09:00`);
  `X-Shopify-Triggered-At` is UTC with nanoseconds.
- A rotated client secret can take up to an hour to reach every delivery, so every
  configured secret is accepted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import Field, field_validator

from hub import (
    ConnectorSettings,
    PayloadError,
    RawRequest,
    SignatureError,
    SourceEvent,
    WebhookConnector,
    WebhookSettings,
    signatures,
)

__all__ = ["ShopifyConnector", "ShopifySettings"]

#: Header names, as documented in shopify.dev/docs/apps/build/webhooks/delivery-structure.
SIGNATURE_HEADER = "X-Shopify-Hmac-Sha256"
TOPIC_HEADER = "X-Shopify-Topic"
WEBHOOK_ID_HEADER = "X-Shopify-Webhook-Id"
EVENT_ID_HEADER = "X-Shopify-Event-Id"
TRIGGERED_AT_HEADER = "X-Shopify-Triggered-At"
SHOP_DOMAIN_HEADER = "X-Shopify-Shop-Domain"
API_VERSION_HEADER = "X-Shopify-API-Version"

#: What `sample_request` sends as the shop and the payload's API version.
SAMPLE_SHOP_DOMAIN = "crmhub-demo.myshopify.com"
SAMPLE_API_VERSION = "2025-07"

_SHA256_BYTES = 32
_SAMPLE_NAMESPACE = uuid.UUID("8f3c1d2e-5b7a-4c1e-9d3f-6a2b0c4e8f10")


class ShopifySettings(WebhookSettings):
    """Settings of one Shopify connector instance (`secret` is the app's client secret)."""

    api_base_url: str | None = Field(
        default=None,
        description=(
            "Admin API base URL of one shop, e.g. https://example.myshopify.com/admin/api/"
            "2025-07. Shopify API hosts are per shop, so there is no global default; the "
            "webhook path does not call the API."
        ),
    )
    shop_domain: str | None = Field(
        default=None,
        description=(
            "Only map deliveries whose X-Shopify-Shop-Domain is this shop "
            "(example.myshopify.com); others are acknowledged and ignored. Unset: every "
            "shop the app is installed on."
        ),
    )

    @field_validator("shop_domain")
    @classmethod
    def _normalise_shop_domain(cls, value: str | None) -> str | None:
        if value is None:
            return None
        domain = value.strip().lower().removeprefix("https://").removeprefix("http://")
        domain = domain.rstrip("/")
        if not domain or "/" in domain:
            raise ValueError("expected a shop domain such as 'example.myshopify.com'")
        return domain


class ShopifyConnector(WebhookConnector[ShopifySettings]):
    """Receives Shopify order and customer webhooks (HTTPS delivery, HMAC-signed)."""

    name: ClassVar[str] = "shopify"
    category: ClassVar[str] = "ecommerce"
    events: ClassVar[tuple[str, ...]] = (
        "orders/create",
        "orders/updated",
        "orders/paid",
        "customers/create",
        "customers/update",
    )
    settings_model: ClassVar[type[ConnectorSettings]] = ShopifySettings
    signature_header: ClassVar[str] = SIGNATURE_HEADER
    signs_timestamp: ClassVar[bool] = False

    def verify(self, request: RawRequest) -> None:
        """Raise `SignatureError` unless `X-Shopify-Hmac-Sha256` signs the raw body."""
        provided = request.header(SIGNATURE_HEADER)
        if provided is not None and provided.strip() and not _is_base64_digest(provided):
            raise SignatureError(
                f"malformed {SIGNATURE_HEADER}: expected the base64 of a 32-byte HMAC-SHA256"
            )
        signatures.verify_hmac(
            request.body,
            provided,
            self.settings.secret_bytes(),
            encoding="base64",
            header=SIGNATURE_HEADER,
        )

    def parse(self, request: RawRequest) -> list[SourceEvent]:
        """One event per delivery: type = topic, id = webhook id, data = the resource.

        Raises `PayloadError` without a topic header or with a body that is not a JSON
        object. A delivery for another shop than `shop_domain` gives no events.
        """
        topic = (request.header(TOPIC_HEADER) or "").strip()
        if not topic:
            raise PayloadError(f"missing {TOPIC_HEADER} header: cannot tell which event this is")
        body = request.json()
        if not isinstance(body, dict):
            raise PayloadError(
                f"expected a JSON object for {topic}, got a JSON {type(body).__name__}"
            )
        if not self._is_configured_shop(request):
            return []
        return [
            SourceEvent(
                type=topic,
                id=_delivery_id(request, topic, body),
                occurred_at=_occurred_at(request, body),
                data=body,
            )
        ]

    @classmethod
    def sample_request(
        cls, event_type: str, data: Mapping[str, Any], secret: str, *, at: datetime
    ) -> RawRequest:
        """The HTTPS delivery Shopify would POST for the resource `data` under `event_type`."""
        at = _as_utc(at)
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
        digest = base64.b64encode(signatures.hmac_sha256(secret.encode(), body)).decode()
        fingerprint = f"{event_type}|{at.isoformat()}|{hashlib.sha256(body).hexdigest()}"
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Shopify-Captain-Hook",
            TOPIC_HEADER: event_type,
            SIGNATURE_HEADER: digest,
            SHOP_DOMAIN_HEADER: SAMPLE_SHOP_DOMAIN,
            API_VERSION_HEADER: SAMPLE_API_VERSION,
            WEBHOOK_ID_HEADER: str(uuid.uuid5(_SAMPLE_NAMESPACE, "webhook|" + fingerprint)),
            EVENT_ID_HEADER: str(uuid.uuid5(_SAMPLE_NAMESPACE, "event|" + fingerprint)),
            TRIGGERED_AT_HEADER: at.isoformat().replace("+00:00", "Z"),
        }
        return RawRequest(method="POST", body=body, headers=headers, received_at=at)

    def _is_configured_shop(self, request: RawRequest) -> bool:
        expected = self.settings.shop_domain
        if expected is None:
            return True
        return (request.header(SHOP_DOMAIN_HEADER) or "").strip().lower() == expected


def _is_base64_digest(value: str) -> bool:
    try:
        return len(base64.b64decode(value.strip(), validate=True)) == _SHA256_BYTES
    except (binascii.Error, ValueError):
        return False


def _delivery_id(request: RawRequest, topic: str, body: Mapping[str, Any]) -> str:
    """`X-Shopify-Webhook-Id`; without it, topic + resource id + version, else a body hash.

    Shopify retries carry the original payload, so both fallbacks stay stable across them.
    """
    webhook_id = (request.header(WEBHOOK_ID_HEADER) or "").strip()
    if webhook_id:
        return webhook_id
    resource_id = body.get("id")
    if resource_id is not None and str(resource_id).strip():
        version = body.get("updated_at") or body.get("created_at") or ""
        return f"{topic}:{resource_id}:{version}"
    return f"{topic}:sha256:{hashlib.sha256(request.body).hexdigest()}"


def _occurred_at(request: RawRequest, body: Mapping[str, Any]) -> datetime:
    """When Shopify triggered the delivery, else the resource's last change, in UTC."""
    for value in (
        request.header(TRIGGERED_AT_HEADER),
        body.get("updated_at"),
        body.get("created_at"),
    ):
        parsed = _parse_time(value)
        if parsed is not None:
            return parsed
    return _as_utc(request.received_at)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return _as_utc(datetime.fromisoformat(value.strip()))
    except (ValueError, OverflowError):  # unreadable, or out of range once in UTC
        return None


def _as_utc(value: datetime) -> datetime:
    # A naive time is taken to be UTC, like the canonical model does.
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
