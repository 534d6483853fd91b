"""Shopify connector: HMAC verification, parsing, sample requests and the shipped mappings."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from connectors.shopify import ShopifyConnector, ShopifySettings
from hub import (
    Bundle,
    DealStatus,
    LifecycleStage,
    MappingError,
    MarketingConsent,
    PayloadError,
    RawRequest,
    SignatureError,
    SourceEvent,
    event_slug,
)
from hub.mapping import MappingSet
from hub.testing import ConnectorConformance

REPO = Path(__file__).resolve().parents[2]
MAPPINGS_DIR = REPO / "mappings" / "shopify"
FIXTURES = ShopifyConnector.fixtures_dir()
SECRET = "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"
OLD_SECRET = "shpss_previous_secret_before_rotation"
AT = datetime(2025, 4, 1, 0, 0, 5, tzinfo=UTC)
RECEIVED = datetime(2025, 4, 1, 0, 0, 6, tzinfo=UTC)

# One order body exactly as bytes on the wire: compact JSON with raw UTF-8.
ORDER_BODY = (
    '{"id":5820117467201,"name":"#1001","email":"hiroshi.tanaka@example.jp",'
    '"billing_address":{"last_name":"田中","first_name":"博"},"total_price":"1250",'
    '"currency":"JPY","created_at":"2025-04-01T08:30:12+09:00",'
    '"updated_at":"2025-04-01T08:30:14+09:00"}'
).encode()


def shopify_hmac(secret: str, body: bytes) -> str:
    """The documented scheme, written out independently of the connector."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def connector(secret: str | list[str] = SECRET, **settings: Any) -> ShopifyConnector:
    return ShopifyConnector(ShopifySettings.model_validate({"secret": secret, **settings}))


def delivery(
    body: bytes = ORDER_BODY,
    *,
    signature: str | None = None,
    omit: tuple[str, ...] = (),
    **extra: str,
) -> RawRequest:
    """A delivery with Shopify's headers (lower-case, as HTTP/2 sends them)."""
    headers = {
        "content-type": "application/json",
        "x-shopify-topic": "orders/create",
        "x-shopify-hmac-sha256": signature if signature is not None else shopify_hmac(SECRET, body),
        "x-shopify-shop-domain": "sakura-tea.myshopify.com",
        "x-shopify-api-version": "2025-07",
        "x-shopify-webhook-id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        "x-shopify-event-id": "7b8c9d0a-1234-5678-90ab-cdef12345678",
        "x-shopify-triggered-at": "2025-03-31T23:30:15.877041743Z",
        **{k.replace("_", "-"): v for k, v in extra.items()},
    }
    for name in omit:
        headers.pop(name, None)
    return RawRequest(method="POST", body=body, headers=headers, received_at=RECEIVED)


def load_fixture(event_type: str, case: str) -> dict[str, Any]:
    path = FIXTURES / event_slug(event_type) / f"{case}.json"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def mappings() -> MappingSet:
    return MappingSet.load(MAPPINGS_DIR)


def mapped(mappings: MappingSet, event_type: str, case: str) -> Bundle:
    """Fixture -> signed sample request -> verify -> parse -> mapping, like the hub does."""
    request = ShopifyConnector.sample_request(
        event_type, load_fixture(event_type, case), SECRET, at=AT
    )
    shopify = connector()
    shopify.verify(request)
    (event,) = shopify.parse(request)
    mapper = mappings.get(event.type)
    assert mapper is not None, f"no mapping for {event.type}"
    return mapper.map(event, connector="shopify")


class TestShopifyConformance(ConnectorConformance):
    connector = ShopifyConnector


# --- verify -----------------------------------------------------------------------------


def test_published_hmac_sha256_vector_in_base64() -> None:
    # RFC 4231-style example (key "key", the quick brown fox), published as hex.
    body = b"The quick brown fox jumps over the lazy dog"
    published_hex = "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
    header = base64.b64encode(bytes.fromhex(published_hex)).decode()
    assert header == "97yD9DBThCSxMpjmqm+xQ+9NWaFJRhdZl0edvC0aPNg="
    connector("key").verify(delivery(body, signature=header))


def test_hex_encoded_signature_is_rejected_as_malformed() -> None:
    hex_digest = hmac.new(SECRET.encode(), ORDER_BODY, hashlib.sha256).hexdigest()
    with pytest.raises(SignatureError, match="malformed X-Shopify-Hmac-Sha256"):
        connector().verify(delivery(signature=hex_digest))


def test_signature_over_raw_utf8_body_is_accepted() -> None:
    connector().verify(delivery())


def test_signature_is_over_the_raw_bytes_not_a_reserialisation() -> None:
    # Same JSON, different bytes (Shopify-style escapes): the signature must follow the bytes.
    escaped = json.dumps(json.loads(ORDER_BODY)).encode()
    assert escaped != ORDER_BODY
    connector().verify(delivery(escaped))
    with pytest.raises(SignatureError, match="does not match"):
        connector().verify(delivery(escaped, signature=shopify_hmac(SECRET, ORDER_BODY)))


def test_tampered_body_is_rejected() -> None:
    tampered = ORDER_BODY.replace(b'"1250"', b'"1.00"')
    request = delivery(tampered, signature=shopify_hmac(SECRET, ORDER_BODY))
    with pytest.raises(SignatureError, match="does not match the body"):
        connector().verify(request)


def test_wrong_secret_is_rejected_without_leaking_secrets() -> None:
    request = delivery(signature=shopify_hmac("someone-else", ORDER_BODY))
    with pytest.raises(SignatureError) as caught:
        connector().verify(request)
    message = str(caught.value)
    assert SECRET not in message
    assert shopify_hmac(SECRET, ORDER_BODY) not in message


@pytest.mark.parametrize(
    ("signature", "omit", "expected"),
    [
        pytest.param(None, ("x-shopify-hmac-sha256",), "missing signature header", id="missing"),
        pytest.param("", (), "missing signature header", id="empty"),
        pytest.param("not base64 at all!", (), "malformed", id="not-base64"),
        pytest.param(base64.b64encode(b"short").decode(), (), "malformed", id="wrong-length"),
        pytest.param("sha256=" + "A" * 43 + "=", (), "malformed", id="prefixed"),
    ],
)
def test_missing_or_malformed_header_is_rejected(
    signature: str | None, omit: tuple[str, ...], expected: str
) -> None:
    with pytest.raises(SignatureError, match=expected):
        connector().verify(delivery(signature=signature, omit=omit))


def test_every_secret_of_a_rotation_is_accepted() -> None:
    rotating = connector([SECRET, OLD_SECRET])
    rotating.verify(delivery())
    rotating.verify(delivery(signature=shopify_hmac(OLD_SECRET, ORDER_BODY)))
    with pytest.raises(SignatureError):
        rotating.verify(delivery(signature=shopify_hmac("retired", ORDER_BODY)))


def test_signature_header_is_read_case_insensitively() -> None:
    request = RawRequest(
        method="POST",
        body=ORDER_BODY,
        headers={"X-Shopify-Hmac-SHA256": shopify_hmac(SECRET, ORDER_BODY)},
    )
    connector().verify(request)


def test_scheme_declares_no_signed_timestamp() -> None:
    # Shopify signs the body only: replays are caught by deduplicating on the webhook id.
    assert ShopifyConnector.signs_timestamp is False
    assert ShopifyConnector.signature_header == "X-Shopify-Hmac-Sha256"


# --- parse ------------------------------------------------------------------------------


def test_parse_takes_type_id_and_utc_time_from_the_headers() -> None:
    (event,) = connector().parse(delivery())
    assert event.type == "orders/create"
    assert event.id == "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"
    assert event.occurred_at == datetime(2025, 3, 31, 23, 30, 15, 877041, tzinfo=UTC)
    assert event.occurred_at.utcoffset() is not None
    assert event.data["name"] == "#1001"


def test_without_webhook_id_the_id_is_topic_resource_and_version() -> None:
    request = delivery(omit=("x-shopify-webhook-id", "x-shopify-triggered-at"))
    (event,) = connector().parse(request)
    assert event.id == "orders/create:5820117467201:2025-04-01T08:30:14+09:00"
    # The shop's +09:00 offset becomes UTC.
    assert event.occurred_at == datetime(2025, 3, 31, 23, 30, 14, tzinfo=UTC)


def test_without_any_time_occurred_at_is_when_received() -> None:
    body = b'{"id": 1, "email": "a@example.com"}'
    request = delivery(body, omit=("x-shopify-triggered-at",))
    (event,) = connector().parse(request)
    assert event.occurred_at == RECEIVED


def test_a_resource_without_id_or_webhook_id_still_gets_a_stable_id() -> None:
    body = b'{"shop_id": 954889, "shop_domain": "sakura-tea.myshopify.com"}'
    request = delivery(body, omit=("x-shopify-webhook-id",), x_shopify_topic="shop/redact")
    first = connector().parse(request)
    again = connector().parse(replace(request, received_at=datetime.now(UTC)))
    assert first[0].type == "shop/redact"
    assert first[0].id == again[0].id
    assert first[0].id.startswith("shop/redact:sha256:")


def test_unhandled_topic_is_returned_with_its_type() -> None:
    (event,) = connector().parse(delivery(x_shopify_topic="products/update"))
    assert event.type == "products/update"


def test_missing_topic_is_a_payload_error() -> None:
    with pytest.raises(PayloadError, match="X-Shopify-Topic"):
        connector().parse(delivery(omit=("x-shopify-topic",)))


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"<html>502 Bad Gateway</html>", id="html"),
        pytest.param(b'{"id": 1,', id="truncated"),
        pytest.param(b"\xff\xfe\x00", id="not-utf8"),
        pytest.param(b"[1, 2, 3]", id="json-array"),
        pytest.param(b'"just a string"', id="json-string"),
    ],
)
def test_garbage_body_is_a_payload_error(body: bytes) -> None:
    with pytest.raises(PayloadError):
        connector().parse(delivery(body))


def test_non_json_content_type_is_a_415() -> None:
    request = delivery(b"id=1", content_type="application/x-www-form-urlencoded")
    with pytest.raises(PayloadError) as caught:
        connector().parse(request)
    assert caught.value.status == 415


def test_shop_domain_setting_ignores_other_shops() -> None:
    mine = connector(shop_domain="https://Sakura-Tea.myshopify.com/")
    assert mine.settings.shop_domain == "sakura-tea.myshopify.com"
    assert len(mine.parse(delivery())) == 1
    assert mine.parse(delivery(x_shopify_shop_domain="other-shop.myshopify.com")) == []


def test_settings_are_strict_and_take_a_single_secret() -> None:
    settings = ShopifySettings.model_validate({"secret": SECRET})
    assert [s.get_secret_value() for s in settings.secret] == [SECRET]
    assert SECRET not in repr(settings)
    with pytest.raises(ValidationError):
        ShopifySettings.model_validate({"secret": SECRET, "webhook_secret": "typo"})
    with pytest.raises(ValidationError):
        ShopifySettings.model_validate({"secret": SECRET, "shop_domain": "a.myshopify.com/x"})
    for name, field in ShopifySettings.model_fields.items():
        assert field.description, f"setting {name} has no description"


# --- sample_request ---------------------------------------------------------------------


def test_sample_request_looks_like_a_shopify_delivery() -> None:
    data = load_fixture("orders/create", "jp_tanaka_jpy")
    request = ShopifyConnector.sample_request("orders/create", data, SECRET, at=AT)
    assert request.method == "POST"
    assert request.header("X-Shopify-Hmac-Sha256") == shopify_hmac(SECRET, request.body)
    assert request.header("X-Shopify-Topic") == "orders/create"
    assert (request.header("X-Shopify-Shop-Domain") or "").endswith(".myshopify.com")
    assert request.header("X-Shopify-Webhook-Id")
    assert request.header("X-Shopify-Triggered-At") == "2025-04-01T00:00:05Z"
    assert request.received_at == AT
    assert json.loads(request.body) == data
    assert "田中".encode() in request.body  # raw UTF-8, as signed
    (event,) = connector().parse(request)
    assert event.occurred_at == AT
    again = ShopifyConnector.sample_request("orders/create", data, SECRET, at=AT)
    assert again.header("X-Shopify-Webhook-Id") == request.header("X-Shopify-Webhook-Id")


# --- mappings ---------------------------------------------------------------------------


def test_every_declared_event_has_a_mapping_and_fixtures(mappings: MappingSet) -> None:
    assert set(mappings.events) == set(ShopifyConnector.events)
    for event_type in ShopifyConnector.events:
        assert list((FIXTURES / event_slug(event_type)).glob("*.json")), event_type


def test_japanese_order_in_jpy(mappings: MappingSet) -> None:
    bundle = mapped(mappings, "orders/create", "jp_tanaka_jpy")
    (contact,) = bundle.contacts
    assert contact.email == "hiroshi.tanaka@example.jp"  # " Hiroshi.TANAKA@Example.jp "
    assert contact.phone == "+819012345678"  # "090-1234-5678" with region JP
    assert (contact.first_name, contact.last_name) == ("博", "田中")
    assert contact.company == "株式会社さくら商事"
    assert contact.address is not None
    assert contact.address.country == "JP"
    assert contact.address.postal_code == "150-0041"
    assert contact.tags == frozenset({"VIP", "wholesale", "repeat"})
    assert contact.marketing_consent is MarketingConsent.opted_in
    assert contact.lifecycle_stage is LifecycleStage.customer
    assert contact.lead_source is not None
    assert contact.lead_source.source == "instagram"
    assert contact.lead_source.medium == "social"
    assert contact.lead_source.campaign == "sakura_2025"
    assert contact.lead_source.content == "reel_03"
    assert contact.lead_source.referrer == "https://l.instagram.com/"
    assert contact.external_ids == {"shopify": "7412093381441"}

    (company,) = bundle.companies
    assert company.name == "株式会社さくら商事"

    (deal,) = bundle.deals
    assert deal.title == "Shopify order #1001"
    assert deal.amount == Decimal("1250.00")
    assert isinstance(deal.amount, Decimal)
    assert deal.currency == "JPY"
    assert deal.status is DealStatus.won
    assert deal.external_ids == {"shopify": "5820117467201"}
    assert [(i.sku, i.quantity, i.unit_price) for i in deal.line_items] == [
        ("MATCHA-UJI-30", Decimal(2), Decimal(450)),
        (None, Decimal(1), Decimal(200)),
    ]
    assert deal.line_items[0].name == "抹茶 Uji Matcha 30g - Ceremonial"

    (activity,) = bundle.activities
    assert activity.kind == "order_placed"
    # processed_at 2025-04-01T08:30:10+09:00
    assert activity.occurred_at == datetime(2025, 3, 31, 23, 30, 10, tzinfo=UTC)
    assert activity.subject == "Placed Shopify order #1001: 1250 JPY"
    assert activity.body is not None and "Bamboo Whisk" in activity.body


def test_indonesian_mononym_order_in_idr(mappings: MappingSet) -> None:
    bundle = mapped(mappings, "orders/create", "id_suryani_idr_mononym")
    (contact,) = bundle.contacts
    assert contact.email == "suryani@gmail.com"  # "  Suryani@Gmail.COM"
    assert contact.phone == "+6281234567890"  # "0812-3456-7890" with region ID
    # Checkout put the one name in last_name: it becomes the first name, alone.
    assert (contact.first_name, contact.last_name) == ("Suryani", None)
    assert contact.address is not None and contact.address.country == "ID"
    assert contact.marketing_consent is MarketingConsent.unknown  # not_subscribed
    assert contact.tags == frozenset()
    assert contact.lead_source is not None
    assert contact.lead_source.source is None
    assert contact.lead_source.referrer == "https://www.google.com/"
    assert not bundle.companies
    (deal,) = bundle.deals
    assert deal.amount == Decimal("1250000.00") and deal.currency == "IDR"
    assert deal.status is DealStatus.open  # pending bank transfer
    assert deal.custom_fields["discount_codes"] == "LEBARAN10"
    (activity,) = bundle.activities
    assert activity.occurred_at == datetime(2025, 6, 14, 14, 5, 38, tzinfo=UTC)


def test_guest_order_in_eur_without_customer(mappings: MappingSet) -> None:
    bundle = mapped(mappings, "orders/create", "de_guest_eur_no_customer")
    (contact,) = bundle.contacts
    # `email` is blank: the address comes from contact_email, trimmed and lower-cased.
    assert contact.email == "jonas.mueller@example.de"
    assert contact.phone == "+49301234567"  # "030 1234567" with region DE
    assert contact.external_ids == {}  # no customer record
    assert contact.marketing_consent is MarketingConsent.opted_in  # buyer_accepts_marketing
    assert contact.lead_source is not None
    assert (contact.lead_source.source, contact.lead_source.medium) == ("newsletter", "email")
    assert contact.lead_source.campaign is None
    (company,) = bundle.companies
    assert company.name == "Müller Feinkost GmbH"
    (deal,) = bundle.deals
    assert deal.amount == Decimal("1089.90") and deal.currency == "EUR"
    assert deal.custom_fields["presentment_currency"] == "CHF"
    assert deal.custom_fields["presentment_total"] == "1051.45"
    (activity,) = bundle.activities
    # processed_at 2025-03-30T01:14:58+01:00, just before the DST switch
    assert activity.occurred_at == datetime(2025, 3, 30, 0, 14, 58, tzinfo=UTC)


def test_minimal_voided_order(mappings: MappingSet) -> None:
    bundle = mapped(mappings, "orders/create", "us_minimal_voided")
    (contact,) = bundle.contacts
    assert contact.email == "ann.lee@example.com"
    assert contact.phone is None and contact.address is None and contact.first_name is None
    (deal,) = bundle.deals
    assert deal.status is DealStatus.lost
    assert deal.amount == Decimal("42.50") and deal.currency == "USD"
    assert deal.line_items == ()
    assert not bundle.companies


def test_updated_order_uses_the_current_total(mappings: MappingSet) -> None:
    bundle = mapped(mappings, "orders/updated", "gb_partially_refunded_gbp")
    (deal,) = bundle.deals
    assert deal.amount == Decimal("64.99")  # after the refund, not the original 94.99
    assert deal.currency == "GBP"
    assert deal.status is DealStatus.won
    assert bundle.activities == ()  # Shopify sends this topic for every change
    (contact,) = bundle.contacts
    assert contact.phone == "+447700900123"  # "07700 900123" with region GB
    assert contact.lead_source is not None and contact.lead_source.term == "linen shirt"


def test_paid_order_is_a_won_deal_with_an_order_paid_activity(mappings: MappingSet) -> None:
    bundle = mapped(mappings, "orders/paid", "fr_paid_eur")
    (deal,) = bundle.deals
    assert deal.status is DealStatus.won and deal.amount == Decimal("249.00")
    (contact,) = bundle.contacts
    assert contact.email == "camille.durand@example.fr"
    assert contact.phone == "+33612345678"  # "06 12 34 56 78" with region FR
    # A 2025-01+ payload has no customer consent object: the legacy order flag is used.
    assert contact.marketing_consent is MarketingConsent.opted_in
    (activity,) = bundle.activities
    assert activity.kind == "order_paid"
    assert activity.occurred_at == datetime(2025, 7, 21, 16, 44, 9, tzinfo=UTC)


def map_data(mappings: MappingSet, event_type: str, data: dict[str, Any]) -> Bundle:
    """Map an edited fixture body directly."""
    mapper = mappings.get(event_type)
    assert mapper is not None
    event = SourceEvent(type=event_type, id="evt-edited-1", occurred_at=AT, data=data)
    return mapper.map(event, connector="shopify")


def test_order_with_a_free_text_phone_that_is_not_a_number_still_maps(mappings: MappingSet) -> None:
    bundle = mapped(mappings, "orders/create", "de_guest_phone_keine_angabe")
    (contact,) = bundle.contacts
    assert contact.phone is None  # billing "keine Angabe", shipping "-": no phone
    assert contact.email == "lena.schmidt@example.de"
    assert (contact.first_name, contact.last_name) == ("Lena", "Schmidt")
    assert contact.address is not None and contact.address.country == "DE"
    (deal,) = bundle.deals
    assert (deal.amount, deal.currency, deal.status) == (Decimal("64.80"), "EUR", DealStatus.won)
    assert [(i.sku, i.quantity) for i in deal.line_items] == [("BEAN-ESP-1KG", Decimal(2))]
    (activity,) = bundle.activities
    assert activity.subject == "Placed Shopify order #1188: 64.80 EUR"


@pytest.mark.parametrize("event_type", ["orders/create", "orders/paid", "orders/updated"])
def test_every_order_topic_skips_a_junk_address_phone(mappings: MappingSet, event_type: str) -> None:
    data = load_fixture("orders/create", "de_guest_eur_no_customer")
    data["billing_address"]["phone"] = "keine Angabe"
    (contact,) = map_data(mappings, event_type, data).contacts
    assert contact.phone is None
    assert contact.email == "jonas.mueller@example.de"


def test_junk_billing_phone_falls_back_to_the_shipping_phone(mappings: MappingSet) -> None:
    data = load_fixture("orders/create", "de_guest_phone_keine_angabe")
    data["shipping_address"]["phone"] = "0171 2345678"
    (contact,) = map_data(mappings, "orders/create", data).contacts
    assert contact.phone == "+491712345678"  # national, with the billing country DE


def test_order_phone_wins_over_a_junk_address_phone(mappings: MappingSet) -> None:
    data = load_fixture("orders/create", "de_guest_phone_keine_angabe")
    data["phone"] = "+4915123456789"
    (contact,) = map_data(mappings, "orders/create", data).contacts
    assert contact.phone == "+4915123456789"


def test_an_unreadable_order_phone_still_fails_the_event(mappings: MappingSet) -> None:
    # The order's own `phone` is checked by Shopify: a bad one is a real error, not skipped.
    data = load_fixture("orders/create", "de_guest_eur_no_customer")
    data["phone"] = "keine Angabe"
    with pytest.raises(MappingError, match=r"contact\.phone"):
        map_data(mappings, "orders/create", data)


@pytest.mark.parametrize("event_type", ["customers/create", "customers/update"])
def test_customer_with_a_junk_default_address_phone_still_maps(
    mappings: MappingSet, event_type: str
) -> None:
    data = load_fixture("customers/create", "jp_yamada_national_phone")
    data["default_address"]["phone"] = "携帯のみ"
    (contact,) = map_data(mappings, event_type, data).contacts
    assert contact.phone is None
    assert (contact.first_name, contact.last_name) == ("花子", "山田")
    data["phone"] = "  "  # a blank customer phone is no phone, not an error
    (contact,) = map_data(mappings, event_type, data).contacts
    assert contact.phone is None


def test_mononym_in_last_name_only_becomes_the_first_name_on_every_topic(mappings: MappingSet) -> None:
    order = load_fixture("orders/create", "id_suryani_idr_mononym")
    for event_type in ("orders/create", "orders/paid", "orders/updated"):
        (contact,) = map_data(mappings, event_type, order).contacts
        assert (contact.first_name, contact.last_name) == ("Suryani", None), event_type
    customer = load_fixture("customers/create", "id_wulandari_mononym")
    for event_type in ("customers/create", "customers/update"):
        (contact,) = map_data(mappings, event_type, customer).contacts
        assert (contact.first_name, contact.last_name) == ("Wulandari", None), event_type


def test_japanese_customer_with_national_phone(mappings: MappingSet) -> None:
    bundle = mapped(mappings, "customers/create", "jp_yamada_national_phone")
    (contact,) = bundle.contacts
    assert contact.email == "yamada.hanako@example.co.jp"  # "  Yamada.Hanako@Example.CO.JP "
    assert contact.phone == "+81521234567"  # default_address.phone "052-123-4567"
    assert (contact.first_name, contact.last_name) == ("花子", "山田")
    assert contact.tags == frozenset({"trade-show", "会員"})
    assert contact.marketing_consent is MarketingConsent.opted_in
    assert contact.company == "山田製作所"
    assert contact.external_ids == {"shopify": "7412093400001"}
    assert contact.lifecycle_stage is None  # an account, not yet a buyer
    assert not bundle.deals
    (activity,) = bundle.activities
    assert activity.kind == "customer_created"
    assert activity.occurred_at == datetime(2025, 2, 10, 0, 15, 22, tzinfo=UTC)


def test_indonesian_mononym_customer(mappings: MappingSet) -> None:
    bundle = mapped(mappings, "customers/create", "id_wulandari_mononym")
    (contact,) = bundle.contacts
    assert (contact.first_name, contact.last_name) == ("Wulandari", None)
    assert contact.phone == "+6281298765432"  # "0812 9876 5432" with region ID
    assert contact.marketing_consent is MarketingConsent.unknown
    assert contact.custom_fields["sms_marketing_consent"] == "not_subscribed"


def test_email_only_newsletter_customer(mappings: MappingSet) -> None:
    bundle = mapped(mappings, "customers/create", "newsletter_email_only")
    (contact,) = bundle.contacts
    assert contact.email == "newsletter.fan@example.com"
    assert contact.phone is None and contact.address is None
    assert contact.first_name is None and contact.last_name is None
    assert contact.tags == frozenset({"newsletter", "footer-form"})
    assert contact.marketing_consent is MarketingConsent.opted_in
    assert not bundle.companies


def test_customer_payload_without_consent_or_tags(mappings: MappingSet) -> None:
    bundle = mapped(mappings, "customers/create", "us_api_2025_no_consent")
    (contact,) = bundle.contacts
    assert contact.phone == "+14155550132"  # the customer's own E.164 phone wins
    assert contact.marketing_consent is MarketingConsent.unknown
    assert contact.tags == frozenset()
    assert contact.address is not None
    assert (contact.address.region, contact.address.country) == ("California", "US")


def test_customer_update_records_an_unsubscribe(mappings: MappingSet) -> None:
    bundle = mapped(mappings, "customers/update", "unsubscribed_tags_changed")
    (contact,) = bundle.contacts
    assert contact.marketing_consent is MarketingConsent.opted_out
    assert "休眠" in contact.tags
    assert bundle.activities == ()


def test_bundle_carries_the_delivery_id(mappings: MappingSet) -> None:
    data = load_fixture("orders/create", "us_minimal_voided")
    request = ShopifyConnector.sample_request("orders/create", data, SECRET, at=AT)
    (event,) = connector().parse(request)
    mapper = mappings.get("orders/create")
    assert mapper is not None
    bundle = mapper.map(event, connector="shopify")
    assert bundle.event_id == request.header("X-Shopify-Webhook-Id")
    assert bundle.event_type == "orders/create"


def test_mapping_input_is_the_body_not_a_wrapper() -> None:
    data = load_fixture("customers/create", "newsletter_email_only")
    request = ShopifyConnector.sample_request("customers/create", data, SECRET, at=AT)
    (event,) = connector().parse(request)
    assert isinstance(event, SourceEvent)
    assert dict(event.data) == data
