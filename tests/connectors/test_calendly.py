"""Calendly connector: signature scheme, parsing, sample requests and the shipped mappings.

Test vectors follow Calendly's documented scheme (shared/reference/sources.md §7):
`Calendly-Webhook-Signature: t=<unix>,v1=<hex HMAC-SHA256(key, "<t>.<raw body>")>`.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from connectors.calendly import CalendlyConnector, CalendlySettings
from hub import Bundle, MappingError, PayloadError, RawRequest, SignatureError, event_slug
from hub.mapping import MappingSet
from hub.testing import ConnectorConformance

KEY = "cal-signing-key-3f9a1c"
OLD_KEY = "cal-signing-key-old-77b2"
AT = datetime(2026, 3, 4, 16, 20, 12, tzinfo=UTC)
HEADER = "Calendly-Webhook-Signature"
FIXTURES = CalendlyConnector.fixtures_dir()
MAPPINGS = CalendlyConnector.mapping_dir()


def fixture(event_type: str, case: str) -> dict[str, Any]:
    path = FIXTURES / event_slug(event_type) / f"{case}.json"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def all_fixtures() -> list[Any]:
    return [
        pytest.param(p.parent.name, p.stem, id=f"{p.parent.name}/{p.stem}")
        for p in sorted(FIXTURES.glob("*/*.json"))
    ]


def connector(secret: str | list[str] = KEY, **settings: Any) -> CalendlyConnector:
    return CalendlyConnector(CalendlySettings(secret=secret, **settings))


class TestCalendlyConformance(ConnectorConformance):
    """The hub's shared suite: specs load, fixtures map, signing round-trips."""

    connector = CalendlyConnector


def received(req: RawRequest, at: datetime = AT) -> RawRequest:
    """The request as the hub saw it at `at` (sample requests are stamped with now)."""
    return dataclasses.replace(req, received_at=at)


def signed(body: bytes, key: str, t: int) -> str:
    """Calendly's header, computed here with hmac/hashlib directly (not the hub helpers)."""
    digest = hmac.new(key.encode(), str(t).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def request(body: bytes, header: str | None, *, received_at: datetime = AT) -> RawRequest:
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers[HEADER] = header
    return RawRequest(method="POST", body=body, headers=headers, received_at=received_at)


BODY = json.dumps(fixture("invitee.created", "full_name_only_utm")).encode()
T = int(AT.timestamp())


# --- class and settings ---------------------------------------------------------------


def test_class_attributes() -> None:
    assert CalendlyConnector.name == "calendly"
    assert CalendlyConnector.category == "calendars"
    assert CalendlyConnector.events == ("invitee.created", "invitee.canceled")
    assert CalendlyConnector.settings_model is CalendlySettings
    assert CalendlyConnector.signature_header == HEADER
    assert CalendlyConnector.signs_timestamp is True
    assert CalendlyConnector.fetches is False


def test_every_event_has_a_mapping_and_fixtures() -> None:
    for event_type in CalendlyConnector.events:
        assert (MAPPINGS / f"{event_slug(event_type)}.yaml").is_file()
        assert len(list((FIXTURES / event_slug(event_type)).glob("*.json"))) >= 3


def test_settings_defaults_and_validation() -> None:
    settings = CalendlySettings(secret=KEY)
    assert settings.timestamp_tolerance == 180
    assert settings.api_base_url == "https://api.calendly.com"
    assert settings.secret_bytes() == [KEY.encode()]
    for name in ("api_base_url", "timestamp_tolerance"):
        assert CalendlySettings.model_fields[name].description
    with pytest.raises(ValidationError):
        CalendlySettings(secret=KEY, signing_key="typo")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        CalendlySettings(secret=[])
    with pytest.raises(ValidationError):
        settings.timestamp_tolerance = 5  # type: ignore[misc]


# --- verify ------------------------------------------------------------------------------


def test_independent_test_vector_is_accepted() -> None:
    connector().verify(request(BODY, signed(BODY, KEY, T)))


def test_known_answer_vector() -> None:
    # Expected value computed outside Python, once:
    #   printf '%s' '1700000000.{"event":"invitee.created"}' | openssl dgst -sha256 -hmac k
    body = b'{"event":"invitee.created"}'
    expected = "fc1411e5857e4416dbf70225c591417fcb0131ec2e4c1ca0051e74eca63d8416"
    req = CalendlyConnector.sample_request(
        "invitee.created", {"event": "invitee.created"}, "k",
        at=datetime.fromtimestamp(1700000000, UTC),
    )
    assert req.body == body
    assert req.header(HEADER) == f"t=1700000000,v1={expected}"


def test_signature_with_upper_case_hex_and_spaces_is_accepted() -> None:
    t, _, sig = signed(BODY, KEY, T).partition(",v1=")
    connector().verify(request(BODY, f"{t}, v1={sig.upper()}"))


def test_tampered_body_is_rejected() -> None:
    tampered = BODY.replace(b"Dana", b"Dina")
    with pytest.raises(SignatureError, match="does not match"):
        connector().verify(request(tampered, signed(BODY, KEY, T)))


def test_tampered_timestamp_is_rejected() -> None:
    sig = signed(BODY, KEY, T).partition(",")[2]
    with pytest.raises(SignatureError, match="does not match"):
        connector().verify(request(BODY, f"t={T + 1},{sig}"))


def test_wrong_secret_is_rejected() -> None:
    with pytest.raises(SignatureError, match="does not match"):
        connector().verify(request(BODY, signed(BODY, "someone-else", T)))


def test_body_only_signature_is_rejected() -> None:
    # A sender that forgot the "<t>." prefix must not verify.
    digest = hmac.new(KEY.encode(), BODY, hashlib.sha256).hexdigest()
    with pytest.raises(SignatureError):
        connector().verify(request(BODY, f"t={T},v1={digest}"))


def test_base64_signature_is_rejected() -> None:
    raw = hmac.new(KEY.encode(), f"{T}.".encode() + BODY, hashlib.sha256).digest()
    with pytest.raises(SignatureError):
        connector().verify(request(BODY, f"t={T},v1={base64.b64encode(raw).decode()}"))


def test_missing_header_is_rejected() -> None:
    with pytest.raises(SignatureError, match="missing"):
        connector().verify(request(BODY, None))
    with pytest.raises(SignatureError, match="missing"):
        connector().verify(request(BODY, "  "))


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("v1=abcdef", id="no-timestamp"),
        pytest.param(f"t={T}", id="no-v1"),
        pytest.param(f"t=yesterday,v1={'0' * 64}", id="timestamp-not-a-number"),
        pytest.param("sha256=abcdef", id="other-scheme"),
        pytest.param("garbage", id="garbage"),
    ],
)
def test_malformed_header_is_rejected(header: str) -> None:
    with pytest.raises(SignatureError, match="malformed"):
        connector().verify(request(BODY, header))


def test_stale_timestamp_is_rejected() -> None:
    late = AT + timedelta(seconds=181)
    with pytest.raises(SignatureError, match="stale"):
        connector().verify(request(BODY, signed(BODY, KEY, T), received_at=late))


def test_timestamp_within_default_tolerance_is_accepted() -> None:
    connector().verify(
        request(BODY, signed(BODY, KEY, T), received_at=AT + timedelta(seconds=179))
    )


def test_tolerance_setting_is_honoured() -> None:
    late = AT + timedelta(seconds=400)
    connector(timestamp_tolerance=600).verify(request(BODY, signed(BODY, KEY, T), received_at=late))
    with pytest.raises(SignatureError, match="stale"):
        connector(timestamp_tolerance=60).verify(
            request(BODY, signed(BODY, KEY, T), received_at=AT + timedelta(seconds=61))
        )


def test_future_timestamp_is_rejected() -> None:
    with pytest.raises(SignatureError, match="future"):
        connector().verify(request(BODY, signed(BODY, KEY, T + 3600)))


def test_rotated_secret_list_accepts_either_key() -> None:
    rotating = connector([KEY, OLD_KEY])
    rotating.verify(request(BODY, signed(BODY, OLD_KEY, T)))
    rotating.verify(request(BODY, signed(BODY, KEY, T)))
    with pytest.raises(SignatureError):
        rotating.verify(request(BODY, signed(BODY, "retired-key", T)))


def test_header_with_several_v1_values_is_accepted() -> None:
    good = signed(BODY, KEY, T).partition(",")[2]
    connector().verify(request(BODY, f"t={T},v1={'0' * 64},{good}"))


def test_error_messages_leak_no_secret_or_expected_signature() -> None:
    expected = signed(BODY, KEY, T).partition("v1=")[2]
    tampered = BODY + b" "
    with pytest.raises(SignatureError) as info:
        connector().verify(request(tampered, signed(BODY, KEY, T)))
    message = str(info.value)
    assert KEY not in message
    assert expected not in message
    computed = hmac.new(KEY.encode(), f"{T}.".encode() + tampered, hashlib.sha256).hexdigest()
    assert computed not in message


# --- parse -------------------------------------------------------------------------------


@pytest.mark.parametrize(("slug", "case"), all_fixtures())
def test_sample_request_round_trips(slug: str, case: str) -> None:
    data = json.loads((FIXTURES / slug / f"{case}.json").read_text(encoding="utf-8"))
    req = CalendlyConnector.sample_request(data["event"], data, KEY, at=AT)
    assert req.method == "POST"
    assert req.content_type == "application/json"
    t = int(AT.timestamp())
    assert req.header(HEADER) == signed(req.body, KEY, t)
    c = connector()
    c.verify(received(req))
    (event,) = c.parse(req)
    assert event.type == data["event"]
    assert event_slug(event.type) == slug
    assert event.id == f"{data['event']}:{data['payload']['uri']}"
    assert event.data == data
    assert event.occurred_at.tzinfo is not None
    assert event.occurred_at.utcoffset() == timedelta(0)
    assert event.occurred_at == datetime.fromisoformat(data["created_at"])


def test_parse_created_event() -> None:
    data = fixture("invitee.created", "full_name_only_utm")
    (event,) = connector().parse(request(json.dumps(data).encode(), None))
    assert event.type == "invitee.created"
    assert event.id == (
        "invitee.created:https://api.calendly.com/scheduled_events/"
        "9b8c7d6e-5f4a-4b3c-8d2e-1f0a9b8c7d6e/invitees/3f2a9c4e-6b1d-4e8a-9c7f-0d5e1a2b3c4d"
    )
    assert event.occurred_at == datetime(2026, 3, 4, 16, 20, 11, tzinfo=UTC)


def test_created_and_canceled_of_one_invitee_have_distinct_ids() -> None:
    created = fixture("invitee.created", "full_name_only_utm")
    canceled = fixture("invitee.canceled", "invitee_canceled_with_reason")
    assert created["payload"]["uri"] == canceled["payload"]["uri"]
    (a,) = connector().parse(request(json.dumps(created).encode(), None))
    (b,) = connector().parse(request(json.dumps(canceled).encode(), None))
    assert a.id != b.id
    assert b.type == "invitee.canceled"


def test_parse_converts_an_offset_timestamp_to_utc() -> None:
    data = fixture("invitee.created", "full_name_only_utm")
    data["created_at"] = "2026-03-05T01:20:11+09:00"
    (event,) = connector().parse(request(json.dumps(data).encode(), None))
    assert event.occurred_at == datetime(2026, 3, 4, 16, 20, 11, tzinfo=UTC)
    assert event.occurred_at.tzinfo is UTC


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"not json", id="not-json"),
        pytest.param(b"\xff\xfe", id="not-utf8"),
        pytest.param(b"[1, 2]", id="not-an-object"),
        pytest.param(b'{"payload": {"uri": "x"}}', id="no-event"),
        pytest.param(
            b'{"event": "invitee.created", "created_at": "2026-03-04T16:20:11Z", "payload": {}}',
            id="invitee-without-uri",
        ),
        pytest.param(
            b'{"event": "invitee.canceled", "created_at": "yesterday", "payload": {"uri": "u"}}',
            id="bad-created-at",
        ),
    ],
)
def test_unparseable_body_raises_payload_error(body: bytes) -> None:
    with pytest.raises(PayloadError):
        connector().parse(request(body, None))


def test_non_json_content_type_is_415() -> None:
    req = RawRequest(method="POST", body=b"a=b", headers={"Content-Type": "text/plain"})
    with pytest.raises(PayloadError) as info:
        connector().parse(req)
    assert info.value.status == 415


def test_unhandled_event_type_is_returned_with_its_type() -> None:
    body = json.dumps(
        {
            "event": "routing_form_submission.created",
            "created_at": "2026-03-04T16:20:11.000000Z",
            "payload": {"uri": "https://api.calendly.com/routing_form_submissions/abc"},
        }
    ).encode()
    (event,) = connector().parse(request(body, None))
    assert event.type == "routing_form_submission.created"
    assert event.id == (
        "routing_form_submission.created:https://api.calendly.com/routing_form_submissions/abc"
    )


def test_unhandled_event_without_uri_gets_a_stable_id() -> None:
    body = b'{"event": "event_type.updated", "payload": {"name": "Demo"}}'
    (first,) = connector().parse(request(body, None))
    (again,) = connector().parse(request(body, None, received_at=AT + timedelta(hours=1)))
    assert first.type == "event_type.updated"
    assert first.id == again.id
    assert first.id.startswith("event_type.updated:")
    assert first.occurred_at == AT


def test_sample_request_rejects_a_mismatched_event_type() -> None:
    with pytest.raises(ValueError):
        CalendlyConnector.sample_request(
            "invitee.canceled", fixture("invitee.created", "full_name_only_utm"), KEY, at=AT
        )


# --- mappings ------------------------------------------------------------------------------

def bundle(event_type: str, case: str, *, default_region: str | None = None,
           data: dict[str, Any] | None = None) -> Bundle:
    """Sign, verify, parse and map a fixture (or `data`) like the hub does."""
    mapper = MappingSet.load(MAPPINGS, default_region=default_region).get(event_type)
    assert mapper is not None
    body = data if data is not None else fixture(event_type, case)
    req = CalendlyConnector.sample_request(event_type, body, KEY, at=AT)
    c = connector()
    c.verify(received(req))
    (event,) = c.parse(req)
    return mapper.map(event, connector="calendly")


@pytest.mark.parametrize(("slug", "case"), all_fixtures())
def test_every_fixture_maps(slug: str, case: str) -> None:
    data = json.loads((FIXTURES / slug / f"{case}.json").read_text(encoding="utf-8"))
    result = bundle(data["event"], case)
    (contact,) = result.contacts
    assert contact.email == data["payload"]["email"].strip().lower()
    (activity,) = result.activities
    assert activity.external_ids == {"calendly": data["payload"]["uri"]}
    assert activity.occurred_at == datetime.fromisoformat(data["created_at"])
    assert activity.metadata["start_time"] == data["payload"]["scheduled_event"]["start_time"]
    assert activity.metadata["event_type"] == data["payload"]["scheduled_event"]["event_type"]
    assert result.event_id == f"{data['event']}:{data['payload']['uri']}"


def test_created_full_name_only_with_utm() -> None:
    result = bundle("invitee.created", "full_name_only_utm")
    (contact,) = result.contacts
    assert contact.email == "dana.obrien-walsh@example.com"
    assert contact.phone == "+14155550132"
    assert (contact.first_name, contact.last_name) == ("Dana", "O'Brien-Walsh")
    assert contact.company == "Northwind Logistics Ltd"
    assert contact.lifecycle_stage == "lead"
    assert contact.custom_fields == {"timezone": "America/Los_Angeles"}
    assert contact.lead_source is not None
    assert contact.lead_source.source == "google"
    assert contact.lead_source.medium == "cpc"
    assert contact.lead_source.campaign == "spring-demo-2026"
    assert contact.lead_source.content == "hero-cta"
    assert contact.lead_source.term == "crm integration"
    (company,) = result.companies
    assert company.name == "Northwind Logistics Ltd"
    assert result.deals == ()  # a free booking is not a deal
    (activity,) = result.activities
    assert activity.kind == "appointment_booked"
    assert activity.occurred_at == datetime(2026, 3, 4, 16, 20, 11, tzinfo=UTC)
    assert activity.subject == "Booked: 30 Minute Product Demo, 2026-03-11T17:00 UTC"
    assert activity.body is not None and "CRM migration for 40 seats" in activity.body
    assert activity.metadata["end_time"] == "2026-03-11T17:30:00.000000Z"
    assert activity.metadata["location"] == "https://us02web.zoom.us/j/84122347719"
    assert activity.metadata["location_type"] == "zoom"
    assert activity.metadata["host_email"] == "sam.host@crmhub-demo.example"


def test_created_japanese_paid_in_jpy() -> None:
    result = bundle("invitee.created", "japanese_paid_jpy")
    (contact,) = result.contacts
    assert contact.email == "hanako.tanaka@example.co.jp"  # trimmed and lower-cased
    assert contact.phone == "+819012345678"  # from the "Phone" question
    # "田中　花子" (ideographic space, family name first) split unicode-safely.
    assert (contact.first_name, contact.last_name) == ("花子", "田中")
    assert contact.company == "株式会社さくらテック"
    assert contact.lead_source is not None and contact.lead_source.source == "newsletter"
    (deal,) = result.deals
    assert deal.amount == Decimal("5500")
    assert deal.currency == "JPY"
    assert deal.status == "won"
    assert deal.close_date is not None and deal.close_date.isoformat() == "2026-05-19"
    assert deal.external_ids == {"calendly": result.activities[0].external_ids["calendly"]}
    assert deal.custom_fields["payment_id"] == "ch_3PaYmEnTJpY0000000000001"
    (activity,) = result.activities
    assert activity.subject == "Booked: 有料コンサルテーション (60分), 2026-05-26T01:00 UTC"
    assert activity.metadata["location"] == "東京都渋谷区神南1-2-3 5F"


def test_created_indonesian_mononym_paid_in_idr() -> None:
    result = bundle("invitee.created", "indonesian_mononym_idr")
    (contact,) = result.contacts
    assert contact.email == "wulandari@mail.example.id"
    assert contact.phone == "+6281234567890"
    assert (contact.first_name, contact.last_name) == ("Wulandari", None)
    assert contact.company is None
    assert contact.lead_source is None  # every utm_* is null
    assert result.companies == ()
    (deal,) = result.deals
    assert (deal.amount, deal.currency, deal.status) == (Decimal("250000"), "IDR", "won")
    (activity,) = result.activities
    assert activity.body is None  # no questions asked
    assert activity.metadata["location"] == "+62 21 5098 7654"
    assert activity.metadata["location_type"] == "outbound_call"


def test_created_rescheduled_eur_with_separate_name_fields() -> None:
    result = bundle("invitee.created", "rescheduled_eur_minimal")
    (contact,) = result.contacts
    assert (contact.first_name, contact.last_name) == ("Zoë", "van den Berg")
    assert contact.phone is None
    (deal,) = result.deals
    assert (deal.amount, deal.currency, deal.status) == (Decimal("49.50"), "EUR", "won")
    (activity,) = result.activities
    assert "location" not in activity.metadata  # location is null
    assert str(activity.metadata["rescheduled_from"]).endswith(
        "/invitees/4d5e6f7a-8b9c-4d0e-9f1a-2b3c4d5e6f70"
    )


def test_created_company_name_question_variant() -> None:
    result = bundle("invitee.created", "japanese_separate_name_fields")
    (contact,) = result.contacts
    assert contact.email == "ken.sato@example.jp"
    assert contact.phone == "+81312345678"
    assert contact.company == "合同会社ミドリ"
    (activity,) = result.activities
    assert activity.metadata["location"] == "https://meet.google.com/abc-defg-hij"


def test_created_cjk_separate_name_fields_keep_their_order() -> None:
    # name is "健 佐藤" (Calendly's "<first> <last>"): split, it would read family name
    # first and swap them. The separate fields win, as entered.
    (contact,) = bundle("invitee.created", "japanese_separate_name_fields").contacts
    assert (contact.first_name, contact.last_name) == ("健", "佐藤")


def test_canceled_cjk_separate_name_fields_keep_their_order() -> None:
    data = fixture("invitee.canceled", "host_canceled_japanese_jpy")
    data["payload"].update(name="花子 田中", first_name="花子", last_name="田中")
    (contact,) = bundle("invitee.canceled", "", data=data).contacts
    assert (contact.first_name, contact.last_name) == ("花子", "田中")


def test_separate_name_fields_are_kept_whole_and_trimmed() -> None:
    data = fixture("invitee.created", "rescheduled_eur_minimal")
    data["payload"].update(name="Mary Ann García López", first_name=" Mary Ann ", last_name="García López")
    (contact,) = bundle("invitee.created", "", data=data).contacts
    # Splitting `name` would give ("Mary Ann García", "López").
    assert (contact.first_name, contact.last_name) == ("Mary Ann", "García López")


def test_one_separate_name_field_does_not_mix_with_a_split_name() -> None:
    # Only first_name: `name` is not split for a last name ("Ann" would be wrong).
    data = fixture("invitee.created", "rescheduled_eur_minimal")
    data["payload"].update(name="Mary Ann", first_name="Mary Ann", last_name=None)
    (contact,) = bundle("invitee.created", "", data=data).contacts
    assert (contact.first_name, contact.last_name) == ("Mary Ann", None)
    # Only last_name (a mononym asked as a family name): not duplicated into first_name.
    data["payload"].update(name="Sukarno", first_name="", last_name="Sukarno")
    (contact,) = bundle("invitee.created", "", data=data).contacts
    assert (contact.first_name, contact.last_name) == (None, "Sukarno")


def test_blank_separate_name_fields_fall_back_to_splitting_name() -> None:
    data = fixture("invitee.created", "full_name_only_utm")
    data["payload"].update(first_name="  ", last_name="")
    (contact,) = bundle("invitee.created", "", data=data).contacts
    assert (contact.first_name, contact.last_name) == ("Dana", "O'Brien-Walsh")


def _phone_answer(data: dict[str, Any], question: str, answer: str) -> None:
    data["payload"]["questions_and_answers"] = [
        q for q in data["payload"]["questions_and_answers"] if not q["question"].startswith("Phone")
    ] + [{"question": question, "answer": answer, "position": 9}]


@pytest.mark.parametrize("event_type", ["invitee.created", "invitee.canceled"])
def test_free_text_phone_answer_that_is_not_a_number_leaves_the_phone_empty(event_type: str) -> None:
    case = "japanese_paid_jpy" if event_type == "invitee.created" else "host_canceled_japanese_jpy"
    data = fixture(event_type, case)
    _phone_answer(data, "Phone", "会社の代表番号にお願いします")
    result = bundle(event_type, "", data=data)
    (contact,) = result.contacts
    assert contact.phone is None
    assert (contact.email, contact.first_name, contact.last_name) == (
        "hanako.tanaka@example.co.jp", "花子", "田中",
    )
    assert len(result.deals) == 1 and len(result.activities) == 1  # the event still maps


def test_junk_phone_answer_falls_through_to_the_next_phone_question() -> None:
    data = fixture("invitee.created", "japanese_paid_jpy")
    _phone_answer(data, "Phone", "n/a")
    data["payload"]["questions_and_answers"].append(
        {"question": "Phone number", "answer": "+81 90-1234-5678", "position": 10}
    )
    (contact,) = bundle("invitee.created", "", data=data).contacts
    assert contact.phone == "+819012345678"


def test_text_reminder_number_wins_over_a_junk_phone_answer() -> None:
    data = fixture("invitee.created", "full_name_only_utm")
    data["payload"]["questions_and_answers"].append(
        {"question": "Phone", "answer": "ask my assistant", "position": 5}
    )
    (contact,) = bundle("invitee.created", "", data=data).contacts
    assert contact.phone == "+14155550132"


def test_blank_text_reminder_number_falls_back_to_the_phone_answer() -> None:
    data = fixture("invitee.created", "japanese_paid_jpy")
    data["payload"]["text_reminder_number"] = "  "
    (contact,) = bundle("invitee.created", "", data=data).contacts
    assert contact.phone == "+819012345678"


def test_national_text_reminder_number_without_a_region_still_fails_the_event() -> None:
    # text_reminder_number is Calendly's own field, not free text: it is not skipped.
    data = fixture("invitee.created", "full_name_only_utm")
    data["payload"]["text_reminder_number"] = "(415) 555-0132"
    with pytest.raises(MappingError, match=r"contact\.phone"):
        bundle("invitee.created", "", data=data)


def test_payment_not_successful_leaves_the_deal_open() -> None:
    data = fixture("invitee.created", "rescheduled_eur_minimal")
    data["payload"]["payment"]["successful"] = False
    (deal,) = bundle("invitee.created", "", data=data).deals
    assert deal.status == "open"
    assert deal.close_date is None


def test_national_text_reminder_number_uses_the_default_region() -> None:
    data = fixture("invitee.created", "full_name_only_utm")
    data["payload"]["text_reminder_number"] = "(415) 555-0132"
    (contact,) = bundle("invitee.created", "", data=data, default_region="US").contacts
    assert contact.phone == "+14155550132"


def test_canceled_by_invitee_with_reason() -> None:
    result = bundle("invitee.canceled", "invitee_canceled_with_reason")
    (contact,) = result.contacts
    assert contact.email == "dana.obrien-walsh@example.com"
    assert contact.phone == "+14155550132"
    assert contact.lifecycle_stage is None  # a cancellation does not make a lead
    (activity,) = result.activities
    assert activity.kind == "appointment_canceled"
    assert activity.occurred_at == datetime(2026, 3, 9, 21, 2, 37, tzinfo=UTC)
    assert activity.subject == "Canceled: 30 Minute Product Demo, 2026-03-11T17:00 UTC"
    assert activity.body == "Our budget review moved to next quarter, sorry!"
    assert activity.metadata["canceler_type"] == "invitee"
    assert activity.metadata["canceled_by"] == "Dana O'Brien-Walsh"
    assert activity.metadata["rescheduled"] is False
    assert result.deals == ()


def test_canceled_by_host_in_japanese_loses_the_jpy_deal() -> None:
    result = bundle("invitee.canceled", "host_canceled_japanese_jpy")
    (activity,) = result.activities
    assert activity.body == "担当者の急病のため、日程を再調整させてください。"
    assert activity.metadata["canceler_type"] == "host"
    (deal,) = result.deals
    assert (deal.amount, deal.currency, deal.status) == (Decimal("5500"), "JPY", "lost")
    assert deal.close_date is not None and deal.close_date.isoformat() == "2026-05-21"
    created = bundle("invitee.created", "japanese_paid_jpy")
    assert deal.external_ids == created.deals[0].external_ids  # the same deal, now lost


def test_canceled_by_reschedule_without_reason() -> None:
    result = bundle("invitee.canceled", "rescheduled_no_reason_eur")
    (contact,) = result.contacts
    assert contact.email == "zoe.vandenberg@example.nl"
    (activity,) = result.activities
    assert activity.body is None  # Calendly sends reason ""
    assert activity.metadata["rescheduled"] is True
    assert str(activity.metadata["rescheduled_to"]).endswith(
        "/invitees/2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6f"
    )
    (deal,) = result.deals
    assert (deal.amount, deal.currency, deal.status) == (Decimal("49.5"), "EUR", "lost")


def test_canceled_mononym_by_host_without_reason() -> None:
    result = bundle("invitee.canceled", "indonesian_mononym_host_no_reason")
    (contact,) = result.contacts
    assert (contact.first_name, contact.last_name) == ("Wulandari", None)
    assert contact.phone == "+6281234567890"
    (activity,) = result.activities
    assert activity.body is None  # reason is null
    assert activity.metadata["canceled_by"] == "Budi Santoso"
    assert result.deals == ()
