"""The canonical model normalises on construction and serialises to the documented JSON form."""

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from pydantic import ValidationError

from hub import Activity, Bundle, Contact, Deal, LineItem


def test_email_is_trimmed_lowercased_and_checked():
    assert Contact(email="  Ann.Lee@Example.COM ").email == "ann.lee@example.com"
    with pytest.raises(ValidationError, match="not a valid email"):
        Contact(email="ann@@example")


def test_phone_must_be_e164_or_international():
    assert Contact(phone="+81 3-1234-5678").phone == "+81312345678"
    with pytest.raises(ValidationError):
        Contact(phone="03-1234-5678")  # national number, no region: cannot be placed


def test_country_and_currency_are_normalised():
    contact = Contact(email="a@b.io", address={"country": "United Kingdom"})
    assert contact.address is not None and contact.address.country == "GB"
    deal = Deal(amount="1,250.00", currency="jpy")
    assert deal.amount == Decimal("1250.00") and deal.currency == "JPY"
    with pytest.raises(ValidationError, match="unknown currency"):
        Deal(amount=1, currency="XYZ")


def test_contact_needs_an_identity():
    with pytest.raises(ValidationError, match="needs an email, a phone or an external id"):
        Contact(first_name="Ann")
    assert Contact(external_ids={"shopify": 42}).external_ids == {"shopify": "42"}


def test_deal_amount_needs_currency():
    with pytest.raises(ValidationError, match="needs a currency"):
        Deal(amount="10")


def test_models_are_frozen_and_reject_unknown_fields():
    contact = Contact(email="a@b.io")
    with pytest.raises(ValidationError):
        contact.email = "x@y.io"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="Extra inputs"):
        Contact(email="a@b.io", nickname="x")  # type: ignore[call-arg]


def test_activity_time_is_converted_to_utc():
    tokyo = timezone(timedelta(hours=9))
    activity = Activity(kind="order_placed", occurred_at=datetime(2024, 6, 1, 12, tzinfo=tokyo))
    assert activity.occurred_at == datetime(2024, 6, 1, 3, tzinfo=UTC)


def test_json_form_strings_decimals_z_times_and_omits_empty_fields():
    bundle = Bundle(
        connector="shop",
        event_type="orders/create",
        event_id="1",
        mapping_version="abc",
        contacts=(Contact(email="a@b.io", tags=["vip", " b "]),),
        deals=(
            Deal(
                amount="1250.00",
                currency="EUR",
                line_items=(LineItem(name="Tea", quantity=2, unit_price="625.00"),),
            ),
        ),
        activities=(Activity(kind="order_placed", occurred_at="2024-06-01T12:00:00+09:00"),),
    )
    data = bundle.to_json_dict()
    assert data["deals"][0]["amount"] == "1250.00"
    assert data["deals"][0]["line_items"][0]["unit_price"] == "625.00"
    assert data["activities"][0]["occurred_at"] == "2024-06-01T03:00:00Z"
    assert data["contacts"][0]["tags"] == ["b", "vip"]
    assert "companies" not in data and "phone" not in data["contacts"][0]
    assert Bundle.model_validate_json(bundle.model_dump_json()) == bundle
