"""Typeform webhooks: verify `Typeform-Signature`, turn a delivery into one source event.

Provider facts (signature scheme, payload fields, dedupe id) are in
`shared/reference/sources.md`, section 5 "Typeform"; the signature scheme was re-checked
against typeform.com/developers/webhooks/secure-your-webhooks/:

- `Typeform-Signature: sha256=<base64(HMAC-SHA256(secret, raw body))>`; no timestamp is
  signed, so replays are caught by deduplicating on the body's `event_id`.
- One delivery carries one event: `{event_id, event_type, form_response{...}}`. Typeform
  sends `form_response` (a completed submission) and, if subscribed, `form_response_partial`;
  any type is passed on as is and the runtime ignores types without a mapping.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import Field

from hub import (
    PayloadError,
    RawRequest,
    SignatureError,
    SourceEvent,
    WebhookConnector,
    WebhookSettings,
    signatures,
)

__all__ = ["TypeformConnector", "TypeformSettings"]

#: The header Typeform puts the signature in, and the scheme prefix of its value.
SIGNATURE_HEADER = "Typeform-Signature"
_PREFIX = "sha256="
#: A base64 SHA-256 digest: 32 bytes -> 44 characters.
_DIGEST_BYTES = 32


class TypeformSettings(WebhookSettings):
    """One Typeform webhook: its secret(s) and, optionally, which forms to accept."""

    api_base_url: str = Field(
        default="https://api.typeform.com",
        description="Base URL of the Typeform API (EU-hosted accounts use their region's host).",
    )
    form_ids: frozenset[str] = Field(
        default=frozenset(),
        description=(
            "Form ids (`form_response.form_id`) to accept; responses from other forms are "
            "acknowledged and dropped. Empty accepts every form signed with the secret."
        ),
    )


class TypeformConnector(WebhookConnector[TypeformSettings]):
    """Receives Typeform `form_response` webhooks (one submission per delivery)."""

    name: ClassVar[str] = "typeform"
    category: ClassVar[str] = "forms"
    events: ClassVar[tuple[str, ...]] = ("form_response",)
    settings_model: ClassVar[type[TypeformSettings]] = TypeformSettings
    signature_header: ClassVar[str] = SIGNATURE_HEADER
    signs_timestamp: ClassVar[bool] = False

    def verify(self, request: RawRequest) -> None:
        """Check `Typeform-Signature` against every configured secret, in constant time.

        Raises:
            SignatureError: the header is missing, not `sha256=<base64 of 32 bytes>`, or
                matches no configured secret.
        """
        provided = request.header(SIGNATURE_HEADER)
        if provided is not None and provided.strip():
            _check_shape(provided.strip())
        signatures.verify_hmac(
            request.body,
            provided,
            self.settings.secret_bytes(),
            encoding="base64",
            header=SIGNATURE_HEADER,
            prefix=_PREFIX,
        )

    def parse(self, request: RawRequest) -> list[SourceEvent]:
        """One event per delivery: type `event_type`, id `event_id`, data the whole body.

        `occurred_at` is `form_response.submitted_at` (else `landed_at` for a partial
        response, else the time the request was received), in UTC.

        Raises:
            PayloadError: the body is not JSON, not an object, or lacks `event_id`/`event_type`.
        """
        body = request.json()
        if not isinstance(body, dict):
            raise PayloadError("expected a JSON object with event_id, event_type, form_response")
        event_id = body.get("event_id")
        event_type = body.get("event_type")
        if not isinstance(event_id, str) or not event_id:
            raise PayloadError("Typeform delivery has no event_id (the deduplication key)")
        if not isinstance(event_type, str) or not event_type:
            raise PayloadError("Typeform delivery has no event_type")
        response = body.get("form_response")
        if response is not None and not isinstance(response, dict):
            raise PayloadError("form_response is not a JSON object")
        response = response or {}
        if self.settings.form_ids and response.get("form_id") not in self.settings.form_ids:
            return []
        occurred_at = _occurred_at(response, request.received_at)
        return [SourceEvent(type=event_type, id=event_id, occurred_at=occurred_at, data=body)]

    @classmethod
    def sample_request(
        cls, event_type: str, data: Mapping[str, Any], secret: str, *, at: datetime
    ) -> RawRequest:
        """The POST Typeform would send for the webhook body `data`, signed with `secret`.

        `data` is the whole webhook body; `event_type` fills `event_type` if it is absent.
        Typeform signs no timestamp, so `at` only sets when the request was received.
        """
        payload = dict(data)
        payload.setdefault("event_type", event_type)
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        digest = signatures.hmac_sha256(secret.encode(), body)
        headers = {
            "Content-Type": "application/json",
            # The User-Agent value is as widely reported, not confirmed on typeform.com.
            "User-Agent": "Typeform Webhooks",
            SIGNATURE_HEADER: _PREFIX + base64.b64encode(digest).decode("ascii"),
        }
        return RawRequest(method="POST", body=body, headers=headers, received_at=at)


def _check_shape(value: str) -> None:
    """Reject a header that cannot be `sha256=<base64 HMAC-SHA256>` before comparing."""
    if not value.startswith(_PREFIX):
        raise SignatureError(
            f"malformed {SIGNATURE_HEADER}: expected 'sha256=<base64 HMAC-SHA256 of the body>'"
        )
    try:
        raw = base64.b64decode(value[len(_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(
            f"malformed {SIGNATURE_HEADER}: the value after 'sha256=' is not base64"
        ) from None
    if len(raw) != _DIGEST_BYTES:
        raise SignatureError(
            f"malformed {SIGNATURE_HEADER}: expected a {_DIGEST_BYTES}-byte SHA-256 digest, "
            f"got {len(raw)} bytes"
        )


def _occurred_at(response: Mapping[str, Any], received_at: datetime) -> datetime:
    """`submitted_at`, else `landed_at`, else `received_at`, as an aware UTC datetime."""
    for key in ("submitted_at", "landed_at"):
        value = response.get(key)
        if value in (None, ""):
            continue
        if not isinstance(value, str):
            raise PayloadError(f"form_response.{key} is not an ISO 8601 string")
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise PayloadError(f"form_response.{key} is not an ISO 8601 time: {value!r}") from None
        if parsed.tzinfo is None:  # Typeform sends UTC with `Z`; a bare time is taken as UTC.
            return parsed.replace(tzinfo=UTC)
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            raise PayloadError(f"form_response.{key} is out of range: {value[:40]!r}") from None
    if received_at.tzinfo is None:
        return received_at.replace(tzinfo=UTC)
    return received_at.astimezone(UTC)
