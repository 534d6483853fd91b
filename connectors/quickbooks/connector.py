"""QuickBooks Online source connector: signed id-only webhooks, then a fetch per entity.

Provider facts (signature, both notification formats, entity fields, rate limits) are in
shared/reference/sources.md §10:

- `intuit-signature` is base64(HMAC-SHA256(key = the app's webhook verifier token, not
  the OAuth client secret; message = the raw body)). No timestamp is signed, so replays
  are caught by deduplicating on the event id, not by age.
- Notifications come in the legacy `eventNotifications` shape or as a CloudEvents array;
  both are parsed (see `notifications.py`).
- `fetch` reads `/v3/company/{realmId}/{entity}/{id}` with an OAuth 2.0 bearer token and
  refreshes it once on a 401 (see `api.py`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import Field, SecretStr

from connectors.quickbooks.api import QuickBooksSession
from connectors.quickbooks.notifications import parse_notification
from hub import (
    ConnectorSettings,
    PayloadError,
    RawRequest,
    SourceEvent,
    WebhookConnector,
    WebhookSettings,
    signatures,
)

__all__ = ["QuickBooksConnector", "QuickBooksSettings"]

#: The header Intuit signs every notification with.
SIGNATURE_HEADER = "intuit-signature"
#: Realm used by `sample_request` when the sample object does not say which company it is in.
SAMPLE_REALM_ID = "9341453050298464"


class QuickBooksApiSettings(ConnectorSettings):
    """The OAuth 2.0 and API settings shared by the webhook and the polling connectors."""

    api_base_url: str = Field(
        default="https://quickbooks.api.intuit.com",
        description=(
            "QuickBooks Online API base URL; https://sandbox-quickbooks.api.intuit.com for a "
            "sandbox company."
        ),
    )
    client_id: str = Field(min_length=1, description="OAuth 2.0 client id of the Intuit app.")
    client_secret: SecretStr = Field(description="OAuth 2.0 client secret of the Intuit app.")
    refresh_token: SecretStr = Field(
        description="OAuth 2.0 refresh token of the connected company (Intuit rotates it)."
    )
    access_token: SecretStr | None = Field(
        default=None,
        description="A current access token, if you have one; otherwise one is fetched.",
    )
    token_url: str = Field(
        default="https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer",
        description="Intuit's OAuth 2.0 token endpoint (refresh_token grant).",
    )
    minor_version: int = Field(
        default=75, ge=1, description="The `minorversion` query parameter of API reads."
    )


class QuickBooksSettings(QuickBooksApiSettings, WebhookSettings):
    """One QuickBooks app connected to one company. `secret` is the webhook verifier token."""

    realm_id: str | None = Field(
        default=None,
        description=(
            "The company (realmId) these tokens belong to. Intuit notifies an app about every "
            "connected company; notifications about others are dropped. Unset: keep all."
        ),
    )


class QuickBooksConnector(WebhookConnector[QuickBooksSettings]):
    """QuickBooks Online customers, invoices and payments, fetched after each notification."""

    name: ClassVar[str] = "quickbooks"
    category: ClassVar[str] = "accounting"
    events: ClassVar[tuple[str, ...]] = ("Customer", "Invoice", "Payment")
    settings_model: ClassVar[type[QuickBooksSettings]] = QuickBooksSettings
    fetches: ClassVar[bool] = True
    signature_header: ClassVar[str] = SIGNATURE_HEADER
    signs_timestamp: ClassVar[bool] = False

    def __init__(self, settings: QuickBooksSettings, *, instance_id: str | None = None) -> None:
        super().__init__(settings, instance_id=instance_id)
        access = settings.access_token
        self._session = QuickBooksSession(
            api_base_url=settings.api_base_url,
            token_url=settings.token_url,
            client_id=settings.client_id,
            client_secret=settings.client_secret.get_secret_value(),
            refresh_token=settings.refresh_token.get_secret_value(),
            access_token=access.get_secret_value() if access is not None else None,
            minor_version=settings.minor_version,
        )

    def verify(self, request: RawRequest) -> None:
        """Check `intuit-signature` (base64 HMAC-SHA256 of the raw body) under any secret."""
        signatures.verify_hmac(
            request.body,
            request.header(SIGNATURE_HEADER),
            self.settings.secret_bytes(),
            encoding="base64",
            header=SIGNATURE_HEADER,
        )

    def parse(self, request: RawRequest) -> list[SourceEvent]:
        """One id-only event per changed entity; its type is the entity name (`Invoice`).

        With `realm_id` set, entities of other companies are dropped: this instance's
        tokens could not read them.
        """
        events = parse_notification(request.json(), received_at=request.received_at)
        realm_id = self.settings.realm_id
        if realm_id is None:
            return events
        return [e for e in events if e.data.get("realmId") == realm_id]

    async def fetch(self, event: SourceEvent, client: Any) -> SourceEvent:
        """GET the entity the event names; its data becomes the API response.

        A deleted entity cannot be read, so its event is returned unchanged (it holds no
        object, so its mapping produces nothing).
        """
        if event.data.get("deleted"):
            return event
        realm_id, entity_id = event.data.get("realmId"), event.data.get("id")
        if not realm_id or not entity_id:
            raise PayloadError(f"event {event.id} has no realmId or id to fetch")
        body = await self._session.get_entity(client, str(realm_id), event.type, str(entity_id))
        return SourceEvent(type=event.type, id=event.id, occurred_at=event.occurred_at, data=body)

    @classmethod
    def stub_routes(
        cls, samples: list[tuple[str, Mapping[str, Any]]], settings: Mapping[str, Any]
    ) -> dict[str, Any]:
        """`GET /v3/company/<realm>/<entity>/<id>` for each sample, as the API returns it."""
        routes: dict[str, Any] = {}
        for event_type, data in samples:
            entity = data.get(event_type)
            if isinstance(entity, Mapping) and entity.get("Id"):
                realm_id = str(data.get("realmId") or SAMPLE_REALM_ID)
                routes[f"/v3/company/{realm_id}/{event_type.lower()}/{entity['Id']}"] = dict(data)
        return routes

    @classmethod
    def sample_request(
        cls, event_type: str, data: Mapping[str, Any], secret: str, *, at: datetime
    ) -> RawRequest:
        """The CloudEvents notification Intuit would POST about the fetched object `data`."""
        entity = data.get(event_type)
        if not isinstance(entity, Mapping) or not entity.get("Id"):
            raise ValueError(f"sample data has no {event_type}.Id to notify about")
        when = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
        realm_id = str(data.get("realmId") or SAMPLE_REALM_ID)
        entity_id = str(entity["Id"])
        operation = "created" if str(entity.get("SyncToken", "0")) == "0" else "updated"
        stamp = when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        source = base64.b64encode(hashlib.sha256(realm_id.encode()).digest()).decode()
        notification = {
            "specversion": "1.0",
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"qbo/{realm_id}/{event_type}/"
                                 f"{entity_id}/{stamp}")),
            "source": f"intuit.{source}",
            "type": f"qbo.{event_type.lower()}.{operation}.v1",
            "datacontenttype": "application/json",
            "time": stamp,
            "intuitentityid": entity_id,
            "intuitaccountid": realm_id,
            "data": {},
        }
        body = json.dumps([notification], separators=(",", ":")).encode()
        signature = base64.b64encode(signatures.hmac_sha256(secret.encode(), body)).decode()
        return RawRequest(
            method="POST",
            body=body,
            headers={"Content-Type": "application/json", SIGNATURE_HEADER: signature},
            received_at=when,
        )
