"""Unique webhooks from the shipped fixtures: each one a new buyer, respondent or invitee
(its own email and source ids), with the CRM objects it must produce.

Four sources, round robin: Shopify orders and customers, Typeform responses, Calendly
bookings. What each must produce is computed with the hub's own mapping of the payload
(as `tests/integration/test_pipeline.py` does) and the HubSpot adapter's key functions.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hub.connector.base import RawRequest, SourceEvent, WebhookConnector
from hub.destinations.hubspot.keys import activity_key, deal_key
from hub.settings import HubConfig

__all__ = ["FLOWS", "SECRETS", "SOURCES", "Expected", "Webhook", "make_webhooks"]

#: Connector instance -> (type, signing secret).
SECRETS = {
    "shop": ("shopify", "shop-secret"),
    "forms": ("typeform", "typeform-secret"),
    "cal": ("calendly", "calendly-secret"),
}

#: Flow name -> (trigger, actions): what the hub writes to the CRM for each source.
FLOWS = {
    "orders": ("shop.orders/create", ("upsert_contact", "upsert_deal", "add_activity")),
    "customers": ("shop.customers/create", ("upsert_contact", "add_activity")),
    "forms": ("forms.form_response", ("upsert_contact", "upsert_deal", "add_activity")),
    "bookings": ("cal.invitee.created", ("upsert_contact", "upsert_deal", "add_activity")),
}


def _order(data: dict[str, Any], n: int, email: str) -> None:
    order_id = 6_100_000_000_000 + n
    data.update(
        id=order_id,
        admin_graphql_api_id=f"gid://shopify/Order/{order_id}",
        name=f"#C{n}",
        order_number=100_000 + n,
        email=f" {email.upper()} ",
    )
    if "contact_email" in data:
        data["contact_email"] = email
    customer = data.get("customer")
    if customer:
        customer["id"] = 7_100_000_000_000 + n
        customer["email"] = email
        customer["admin_graphql_api_id"] = f"gid://shopify/Customer/{customer['id']}"
        if customer.get("default_address"):
            customer["default_address"]["customer_id"] = customer["id"]


def _customer(data: dict[str, Any], n: int, email: str) -> None:
    customer_id = 7_200_000_000_000 + n
    data.update(
        id=customer_id, email=email.title(), admin_graphql_api_id=f"gid://shopify/Customer/{customer_id}"
    )
    for address in [*data.get("addresses", ()), data.get("default_address") or {}]:
        if address:
            address["customer_id"] = customer_id


def _form(data: dict[str, Any], n: int, email: str) -> None:
    data["event_id"] = f"01CHAOS{n:019d}"
    data["form_response"]["token"] = f"chaos{n:027x}"
    for answer in data["form_response"]["answers"]:
        if answer.get("type") == "email":
            answer["email"] = email


def _booking(data: dict[str, Any], n: int, email: str) -> None:
    payload = data["payload"]
    payload["uri"] = f"{payload['scheduled_event']['uri']}/invitees/chaos-{n:012d}"
    payload["email"] = f"  {email} "


@dataclass(frozen=True)
class Source:
    instance_id: str
    event_type: str
    fixtures: tuple[str, ...]
    vary: Callable[[dict[str, Any], int, str], None]
    domain: str


SOURCES: tuple[Source, ...] = (
    Source(
        "shop",
        "orders/create",
        ("orders_create/jp_tanaka_jpy", "orders_create/us_minimal_voided"),
        _order,
        "shop.chaos.example",
    ),
    Source(
        "shop",
        "customers/create",
        ("customers_create/us_api_2025_no_consent", "customers_create/newsletter_email_only"),
        _customer,
        "customers.chaos.example",
    ),
    Source(
        "forms",
        "form_response",
        (
            "form_response/jp_first_last_national_phone_jpy",
            "form_response/other_refs_name_only_fallback_by_type",
        ),
        _form,
        "forms.chaos.example",
    ),
    Source(
        "cal",
        "invitee.created",
        ("invitee_created/full_name_only_utm", "invitee_created/japanese_paid_jpy"),
        _booking,
        "cal.chaos.example",
    ),
)


@dataclass(frozen=True)
class Expected:
    """The HubSpot records one event must leave: a contact (by email), deals and notes (by
    the unique `crmhub_external_id`), each exactly once."""

    email: str
    deal_keys: tuple[str, ...]
    note_keys: tuple[str, ...]


@dataclass(frozen=True)
class Webhook:
    """One provider delivery to send (and re-send, as providers do, until answered 200)."""

    index: int
    instance_id: str
    connector: type[WebhookConnector[Any]]
    event_type: str
    data: dict[str, Any]
    expected: Expected

    @property
    def secret(self) -> str:
        return SECRETS[self.instance_id][1]

    def request(self, *, at: datetime) -> RawRequest:
        """The signed request (Calendly signs the time, so a retry is signed afresh)."""
        return self.connector.sample_request(self.event_type, self.data, self.secret, at=at)


def _fixture(connector: type[Any], name: str) -> dict[str, Any]:
    path = connector.fixtures_dir() / f"{name}.json"
    return dict(json.loads(path.read_text(encoding="utf-8")))


def _expected(config: HubConfig, source: Source, data: dict[str, Any], actions: tuple[str, ...]) -> Expected:
    instance = config.connectors[source.instance_id]
    mapper = instance.mappings.get(source.event_type)
    bundle = mapper.map(
        SourceEvent(source.event_type, "chaos", datetime.now(UTC), data), connector=source.instance_id
    )
    (contact,) = bundle.contacts
    deals = tuple(k for d in bundle.deals if (k := deal_key(d, None))) if "upsert_deal" in actions else ()
    notes = tuple(activity_key(a, None) for a in bundle.activities) if "add_activity" in actions else ()
    if (
        not contact.email
        or any(k.startswith("hash:") for k in notes)
        or ("upsert_deal" in actions and len(deals) != len(bundle.deals))
    ):
        raise ValueError(f"{source.instance_id}.{source.event_type}: a fixture without stable keys")
    return Expected(contact.email, deals, notes)


def make_webhooks(config: HubConfig, count: int, *, run_id: str) -> list[Webhook]:
    """`count` distinct webhooks, cycling through the sources and their fixtures."""
    actions_of = {trigger: actions for trigger, actions in FLOWS.values()}
    templates = []
    for source in SOURCES:
        connector = config.connectors[source.instance_id].cls
        assert issubclass(connector, WebhookConnector)
        actions = actions_of[f"{source.instance_id}.{source.event_type}"]
        for name in source.fixtures:
            templates.append((source, connector, _fixture(connector, name), actions))
    webhooks = []
    for n in range(count):
        source, connector, template, actions = templates[n % len(templates)]
        data = copy.deepcopy(template)
        source.vary(data, n, f"chaos.{run_id}.{n}@{source.domain}")
        webhooks.append(
            Webhook(
                n,
                source.instance_id,
                connector,
                source.event_type,
                data,
                _expected(config, source, data, actions),
            )
        )
    return webhooks
