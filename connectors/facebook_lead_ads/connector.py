"""Meta (Facebook/Instagram) Lead Ads: `leadgen` page webhooks, then the lead from Graph.

Provider facts are in `shared/reference/sources.md`, section 13 "Meta (Facebook/Instagram)
Lead Ads":

- Subscribing the callback URL is a `GET ?hub.mode=subscribe&hub.verify_token=…&
  hub.challenge=…`; we echo the challenge when the token is ours (`handshake`).
- Deliveries are signed `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw
  body)>`. Meta signs the body with unicode *escaped* (`\\u00e9`), so the HMAC is computed
  over `request.body` as received, never over a re-serialisation. No timestamp is signed.
- A notification `{object: "page", entry[{id, time, changes[{field, value}]}]}` may batch
  several pages and changes; a `leadgen` change carries ids only (`leadgen_id`, `page_id`,
  `form_id`, `ad_id`, `adgroup_id`, `created_time` in epoch seconds). Delivery is at least
  once, so `leadgen_id` is the dedupe id; `fetch` reads the lead itself from Graph.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import Field, SecretStr

from connectors.facebook_lead_ads import graph
from hub import (
    HandshakeResponse,
    PayloadError,
    PermanentDeliveryError,
    RawRequest,
    SignatureError,
    SourceEvent,
    WebhookConnector,
    WebhookSettings,
    signatures,
)

__all__ = ["FacebookLeadAdsConnector", "FacebookLeadAdsSettings"]

#: The signature header and its scheme prefix.
SIGNATURE_HEADER = "X-Hub-Signature-256"
_PREFIX = "sha256="
_HEX_DIGEST = re.compile(r"^[0-9a-fA-F]{64}$")
#: The mapping key of a lead, and the change `field` that announces one.
LEADGEN = "leadgen"
#: Epoch values above this are milliseconds, not seconds (year 5138 in seconds).
_MILLIS_THRESHOLD = 100_000_000_000
#: Page id used by `sample_request` when the lead object does not name its page.
_SAMPLE_PAGE_ID = "100000000000001"


class FacebookLeadAdsSettings(WebhookSettings):
    """One Meta app's `leadgen` webhook (`secret` is the app secret) and the token to read leads."""

    api_base_url: str = Field(
        default="https://graph.facebook.com",
        description="Base URL of the Meta Graph API (point it at a stub in tests).",
    )
    graph_version: str = Field(
        default="v21.0",
        pattern=r"^v[0-9]+\.[0-9]+$",
        description="Graph API version used to read leads, e.g. `v21.0`.",
    )
    verify_token: SecretStr = Field(
        description=(
            "The Verify Token typed into the app's Webhooks settings; Meta sends it back in "
            "`hub.verify_token` when the callback URL is subscribed."
        ),
    )
    page_access_token: SecretStr = Field(
        description=(
            "A Page (or system user) access token with `leads_retrieval`, used to read each "
            "lead. Sent as a bearer header, never in a URL."
        ),
    )
    send_appsecret_proof: bool = Field(
        default=True,
        description=(
            "Send `appsecret_proof` (HMAC of the token under the first app secret) with Graph "
            "calls; required when the app has 'Require App Secret' switched on."
        ),
    )


class FacebookLeadAdsConnector(WebhookConnector[FacebookLeadAdsSettings]):
    """Receives Meta Lead Ads `leadgen` notifications and fetches each lead from Graph."""

    name: ClassVar[str] = "facebook_lead_ads"
    category: ClassVar[str] = "ads"
    events: ClassVar[tuple[str, ...]] = (LEADGEN,)
    settings_model: ClassVar[type[FacebookLeadAdsSettings]] = FacebookLeadAdsSettings
    fetches: ClassVar[bool] = True
    signature_header: ClassVar[str] = SIGNATURE_HEADER
    signs_timestamp: ClassVar[bool] = False

    def handshake(self, request: RawRequest) -> HandshakeResponse | None:
        """Answer Meta's subscription check: echo `hub.challenge` if `hub.verify_token` is ours.

        Returns None for anything but a GET carrying `hub.mode`.

        Raises:
            SignatureError: the mode is not `subscribe`, or the token is missing or wrong.
            PayloadError: the token matches but there is no `hub.challenge` to echo.
        """
        if request.method.upper() != "GET":
            return None
        mode = request.query.get("hub.mode")
        if mode is None:
            return None
        if mode != "subscribe":
            raise SignatureError(f"unsupported hub.mode {mode[:20]!r}: expected 'subscribe'")
        provided = request.query.get("hub.verify_token")
        if not provided:
            raise SignatureError("missing hub.verify_token in the subscription request")
        expected = self.settings.verify_token.get_secret_value()
        if not hmac.compare_digest(provided.encode(), expected.encode()):
            raise SignatureError("hub.verify_token does not match the configured verify_token")
        challenge = request.query.get("hub.challenge")
        if not challenge:
            raise PayloadError("missing hub.challenge in the subscription request")
        return HandshakeResponse(status=200, body=challenge.encode(), content_type="text/plain")

    def verify(self, request: RawRequest) -> None:
        """Check `X-Hub-Signature-256` against every configured app secret, in constant time.

        Raises:
            SignatureError: the header is missing, not `sha256=<64 hex digits>`, or matches
                no configured secret.
        """
        provided = request.header(SIGNATURE_HEADER)
        if provided is not None and provided.strip().startswith(_PREFIX):
            digest = provided.strip()[len(_PREFIX) :]
            if not _HEX_DIGEST.match(digest):
                raise SignatureError(
                    f"malformed {SIGNATURE_HEADER}: expected sha256= and 64 hex digits"
                )
        signatures.verify_hmac(
            request.body,
            provided,
            self.settings.secret_bytes(),
            encoding="hex",
            header=SIGNATURE_HEADER,
            prefix=_PREFIX,
        )

    def parse(self, request: RawRequest) -> list[SourceEvent]:
        """One `leadgen` event per leadgen change, id = `leadgen_id`, data = the change value.

        Changes of other fields (the app may subscribe the page to more than `leadgen`) are
        skipped. An empty list means nothing to fetch.

        Raises:
            PayloadError: the body is not JSON, not a page notification, or a leadgen change
                has no usable `leadgen_id`.
        """
        body = request.json()
        if not isinstance(body, dict) or not isinstance(body.get("entry"), list):
            raise PayloadError("expected a webhook notification object with an 'entry' list")
        events: list[SourceEvent] = []
        for entry in body["entry"]:
            if not isinstance(entry, dict):
                raise PayloadError("every item of 'entry' must be an object")
            changes = entry.get("changes", [])
            if not isinstance(changes, list):
                raise PayloadError("'entry[].changes' must be a list")
            for change in changes:
                if isinstance(change, dict) and change.get("field") == LEADGEN:
                    events.append(self._leadgen_event(change.get("value"), entry, request))
        return events

    @staticmethod
    def _leadgen_event(value: Any, entry: Mapping[str, Any], request: RawRequest) -> SourceEvent:
        if not isinstance(value, dict):
            raise PayloadError("a leadgen change has no 'value' object")
        lead_id = value.get("leadgen_id")
        if isinstance(lead_id, bool) or not isinstance(lead_id, str | int):
            raise PayloadError("a leadgen change has no 'leadgen_id'")
        lead_id = str(lead_id).strip()
        if not graph.is_graph_id(lead_id):
            raise PayloadError("'leadgen_id' is not a Graph object id (digits only)")
        occurred_at = (
            _from_epoch(value.get("created_time"))
            or _from_epoch(entry.get("time"))
            or request.received_at.astimezone(UTC)
        )
        return SourceEvent(type=LEADGEN, id=lead_id, occurred_at=occurred_at, data=dict(value))

    async def fetch(self, event: SourceEvent, client: Any) -> SourceEvent:
        """Read the lead `event.id` from Graph; return it as the `leadgen` mapping input.

        `client` is the caller's `httpx.AsyncClient`.

        Raises:
            AuthDeliveryError: the page access token is invalid, expired or lacks permission.
            TransientDeliveryError: throttled (codes 4/17/32/613, 80000-80014), 5xx, network.
            PermanentDeliveryError: unknown lead (code 100) or another refusal.
        """
        if not graph.is_graph_id(event.id):
            raise PermanentDeliveryError(f"lead id {event.id[:40]!r} is not a Graph object id")
        settings = self.settings
        token = settings.page_access_token.get_secret_value()
        proof = None
        if settings.send_appsecret_proof:
            proof = graph.appsecret_proof(settings.secret_bytes()[0], token)
        lead = await graph.read_lead(
            client,
            url=graph.lead_url(settings.api_base_url, settings.graph_version, event.id),
            access_token=token,
            proof=proof,
            lead_id=event.id,
        )
        lead_id = str(lead.get("id") or event.id)
        occurred_at = graph.parse_created_time(lead.get("created_time")) or event.occurred_at
        return SourceEvent(
            type=LEADGEN, id=lead_id, occurred_at=occurred_at.astimezone(UTC), data=lead
        )

    @classmethod
    def stub_routes(
        cls, samples: list[tuple[str, Mapping[str, Any]]], settings: Mapping[str, Any]
    ) -> dict[str, Any]:
        """`GET /<graph version>/<lead id>` for each sample lead, as Graph returns it."""
        version = str(settings.get("graph_version") or "v21.0").strip("/")
        return {f"/{version}/{data['id']}": dict(data) for _, data in samples if data.get("id")}

    @classmethod
    def sample_request(
        cls, event_type: str, data: Mapping[str, Any], secret: str, *, at: datetime
    ) -> RawRequest:
        """The signed notification Meta would POST for the lead `data` (a Graph lead object).

        The body is compact JSON with non-ASCII escaped, as Meta sends it; both the SHA-256
        header and the legacy SHA-1 `X-Hub-Signature` are set.
        """
        if event_type != LEADGEN:
            raise ValueError(f"{cls.name} emits only {LEADGEN!r}, not {event_type!r}")
        created = graph.parse_created_time(data.get("created_time")) or at
        value: dict[str, Any] = {"leadgen_id": str(data.get("id") or "")}
        page_id = str(data.get("page_id") or _SAMPLE_PAGE_ID)
        value["page_id"] = page_id
        if data.get("form_id"):
            value["form_id"] = str(data["form_id"])
        if data.get("ad_id"):
            # Meta sends the ad id twice: `ad_id` and its legacy name `adgroup_id`.
            value["ad_id"] = str(data["ad_id"])
            value["adgroup_id"] = str(data["ad_id"])
        value["created_time"] = int(created.timestamp())
        notification = {
            "object": "page",
            "entry": [
                {
                    "id": page_id,
                    "time": int(at.timestamp()),
                    "changes": [{"field": LEADGEN, "value": value}],
                }
            ],
        }
        body = json.dumps(notification, ensure_ascii=True, separators=(",", ":")).encode()
        key = secret.encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "facebookexternalua",
            SIGNATURE_HEADER: _PREFIX + signatures.hmac_sha256(key, body).hex(),
            "X-Hub-Signature": "sha1=" + hmac.new(key, body, hashlib.sha1).hexdigest(),
        }
        return RawRequest(method="POST", body=body, headers=headers, received_at=at)


def _from_epoch(value: Any) -> datetime | None:
    """Epoch seconds (or milliseconds), as int or numeric string, -> aware UTC; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if not isinstance(value, int | float) or value <= 0:
        return None
    seconds = value / 1000 if value > _MILLIS_THRESHOLD else value
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None
