"""Typeform connector: signature checks, parsing, and the shipped `form_response` mapping."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from connectors.typeform import TypeformConnector, TypeformSettings
from hub import Bundle, Contact, MarketingConsent, PayloadError, RawRequest, SignatureError
from hub.mapping import MappingSet

SECRET = "tf-webhook-secret-0f9e8d"
OLD_SECRET = "tf-webhook-secret-previous"
AT = datetime(2026, 3, 2, 0, 45, tzinfo=UTC)
FIXTURES = TypeformConnector.fixtures_dir() / "form_response"
MAPPINGS = Path(__file__).resolve().parents[2] / "mappings" / "typeform"


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    return data


def connector(secret: str | list[str] = SECRET, **settings: Any) -> TypeformConnector:
    return TypeformConnector(TypeformSettings(secret=secret, **settings))


def signed(data: dict[str, Any], secret: str = SECRET) -> RawRequest:
    return TypeformConnector.sample_request("form_response", data, secret, at=AT)


def with_header(request: RawRequest, value: str | None) -> RawRequest:
    headers = {k: v for k, v in request.headers.items() if k != "typeform-signature"}
    if value is not None:
        headers["Typeform-Signature"] = value
    return RawRequest(method="POST", body=request.body, headers=headers, received_at=AT)


def tf_signature(secret: str, body: bytes) -> str:
    """Typeform's documented scheme, written out independently of the connector."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(digest).decode("ascii")


# --- verify --------------------------------------------------------------------------------


def test_class_attributes() -> None:
    assert TypeformConnector.name == "typeform"
    assert TypeformConnector.category == "forms"
    assert TypeformConnector.events == ("form_response",)
    assert TypeformConnector.signature_header == "Typeform-Signature"
    assert TypeformConnector.signs_timestamp is False
    assert TypeformConnector.fetches is False
    assert TypeformConnector.settings_model is TypeformSettings


def test_signature_accepted() -> None:
    connector().verify(signed(fixture("jp_first_last_national_phone_jpy")))


def test_independent_test_vector() -> None:
    body = b'{"event_id":"01HZZZ","event_type":"form_response","form_response":{"token":"t"}}'
    expected = "sha256=" + base64.b64encode(
        hmac.new(b"abc123", body, hashlib.sha256).digest()
    ).decode()
    request = RawRequest(
        method="POST",
        body=body,
        headers={"Content-Type": "application/json", "Typeform-Signature": expected},
    )
    TypeformConnector(TypeformSettings(secret="abc123")).verify(request)
    # A hex digest (the wrong encoding for Typeform) must not pass.
    hex_value = "sha256=" + hmac.new(b"abc123", body, hashlib.sha256).hexdigest()
    with pytest.raises(SignatureError):
        TypeformConnector(TypeformSettings(secret="abc123")).verify(
            RawRequest(method="POST", body=body, headers={"Typeform-Signature": hex_value})
        )


def test_sample_request_is_signed_as_typeform_documents() -> None:
    request = signed(fixture("de_eur_payment_consent_declined"))
    assert request.method == "POST"
    assert request.content_type == "application/json"
    assert request.header("Typeform-Signature") == tf_signature(SECRET, request.body)
    assert request.received_at == AT


def test_tampered_body_rejected() -> None:
    request = signed(fixture("jp_first_last_national_phone_jpy"))
    tampered = RawRequest(
        method="POST",
        body=request.body.replace(b"Hiroshi.TANAKA", b"Mallory.TANAKA"),
        headers=dict(request.headers),
        received_at=AT,
    )
    with pytest.raises(SignatureError, match="does not match"):
        connector().verify(tampered)


def test_reformatted_json_rejected() -> None:
    # Verification is over the raw bytes: the same JSON re-serialised must not verify.
    request = signed(fixture("jp_first_last_national_phone_jpy"))
    pretty = json.dumps(json.loads(request.body), indent=2).encode()
    with pytest.raises(SignatureError):
        connector().verify(
            RawRequest(method="POST", body=pretty, headers=dict(request.headers))
        )


def test_wrong_secret_rejected() -> None:
    request = signed(fixture("jp_first_last_national_phone_jpy"), secret="not-the-secret")
    with pytest.raises(SignatureError, match="does not match") as info:
        connector().verify(request)
    assert SECRET not in str(info.value)
    assert tf_signature(SECRET, request.body) not in str(info.value)


@pytest.mark.parametrize("value", [None, "", "   "], ids=["absent", "empty", "blank"])
def test_missing_header_rejected(value: str | None) -> None:
    request = with_header(signed(fixture("id_mononym_full_name_idr")), value)
    with pytest.raises(SignatureError, match="missing signature header Typeform-Signature"):
        connector().verify(request)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda good: good.removeprefix("sha256="), id="no-prefix"),
        pytest.param(lambda good: "sha1=" + good.removeprefix("sha256="), id="sha1-prefix"),
        pytest.param(lambda good: "SHA256=" + good.removeprefix("sha256="), id="upper-prefix"),
        pytest.param(lambda good: "sha256=", id="empty-value"),
        pytest.param(lambda good: "sha256=%%%not-base64%%%", id="not-base64"),
        pytest.param(lambda good: "sha256=" + base64.b64encode(b"short").decode(), id="short"),
    ],
)
def test_malformed_header_rejected(make: Any) -> None:
    request = signed(fixture("id_mononym_full_name_idr"))
    good = request.header("Typeform-Signature")
    assert good is not None
    with pytest.raises(SignatureError, match="malformed Typeform-Signature") as info:
        connector().verify(with_header(request, make(good)))
    assert SECRET not in str(info.value)
    assert good.removeprefix("sha256=") not in str(info.value)


def test_rotated_secrets_accepted() -> None:
    rotating = connector([SECRET, OLD_SECRET])
    data = fixture("de_eur_payment_consent_declined")
    rotating.verify(signed(data, secret=SECRET))
    rotating.verify(signed(data, secret=OLD_SECRET))
    with pytest.raises(SignatureError):
        rotating.verify(signed(data, secret="a-third-secret"))


def test_no_timestamp_is_signed_so_old_deliveries_still_verify() -> None:
    # Typeform signs no timestamp; a retry hours later is the same bytes and must verify.
    # Replays are caught downstream by deduplicating on event_id.
    request = signed(fixture("de_eur_payment_consent_declined"))
    late = RawRequest(
        method="POST",
        body=request.body,
        headers=dict(request.headers),
        received_at=AT + timedelta(hours=10),
    )
    connector(timestamp_tolerance=1).verify(late)


# --- parse ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "event_id", "occurred_at"),
    [
        ("jp_first_last_national_phone_jpy", "01JF4Q2W8ZK3M5N7P9R1T3V5X7", "2026-03-02T00:44:51"),
        ("id_mononym_full_name_idr", "01JF7C4E6G8J0L2N4Q6S8U0W2Y", "2026-03-05T10:03:47"),
        ("de_eur_payment_consent_declined", "01JFA1B3C5D7E9F1G3H5J7K9M1", "2026-03-07T15:20:05"),
        (
            "other_refs_name_only_fallback_by_type",
            "01JFC9X7V5T3R1P9N7L5J3G1E9",
            "2026-03-09T21:31:17",
        ),
        ("anonymous_survey_no_contact", "01JFE2H4K6M8P0R2T4W6Y8A0C2", "2026-03-10T06:00:39"),
    ],
)
def test_parse_fixture(case: str, event_id: str, occurred_at: str) -> None:
    data = fixture(case)
    (event,) = connector().parse(signed(data))
    assert event.type == "form_response"
    assert event.id == event_id
    assert event.occurred_at == datetime.fromisoformat(occurred_at).replace(tzinfo=UTC)
    assert event.occurred_at.utcoffset() == timedelta(0)
    assert event.data == data


def test_parse_converts_an_offset_to_utc() -> None:
    data = fixture("jp_first_last_national_phone_jpy")
    data["form_response"]["submitted_at"] = "2026-03-02T09:44:51+09:00"
    (event,) = connector().parse(signed(data))
    assert event.occurred_at == datetime(2026, 3, 2, 0, 44, 51, tzinfo=UTC)
    assert event.occurred_at.tzinfo is UTC


def test_parse_partial_response_keeps_its_type_and_uses_landed_at() -> None:
    data = fixture("id_mononym_full_name_idr")
    data["event_type"] = "form_response_partial"
    del data["form_response"]["submitted_at"]
    (event,) = connector().parse(signed(data))
    assert event.type == "form_response_partial"
    assert event.occurred_at == datetime(2026, 3, 5, 9, 58, 12, tzinfo=UTC)


def test_parse_without_times_uses_received_at() -> None:
    body = {"event_id": "01HQ", "event_type": "form_response", "form_response": {"token": "t"}}
    (event,) = connector().parse(signed(body))
    assert event.occurred_at == AT


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(b"not json at all", "not valid JSON", id="garbage"),
        pytest.param(b"\xff\xfe\x00", "not valid JSON", id="binary"),
        pytest.param(b"[1, 2, 3]", "JSON object", id="array"),
        pytest.param(b'{"event_type": "form_response"}', "event_id", id="no-event-id"),
        pytest.param(b'{"event_id": "01HQ"}', "event_type", id="no-event-type"),
        pytest.param(
            b'{"event_id": "01HQ", "event_type": "form_response", "form_response": []}',
            "form_response",
            id="response-not-object",
        ),
        pytest.param(
            b'{"event_id": "e", "event_type": "form_response",'
            b' "form_response": {"submitted_at": "yesterday"}}',
            "submitted_at",
            id="bad-time",
        ),
    ],
)
def test_parse_garbage_raises_payload_error(body: bytes, message: str) -> None:
    request = RawRequest(method="POST", body=body, headers={"Content-Type": "application/json"})
    with pytest.raises(PayloadError, match=message):
        connector().parse(request)


def test_parse_rejects_a_non_json_content_type() -> None:
    request = RawRequest(method="POST", body=b"a=b", headers={"Content-Type": "text/plain"})
    with pytest.raises(PayloadError) as info:
        connector().parse(request)
    assert info.value.status == 415


def test_form_ids_setting_drops_other_forms() -> None:
    data = fixture("jp_first_last_national_phone_jpy")
    assert connector(form_ids=["Jq8xT2mB"]).parse(signed(data))
    assert connector(form_ids=["SomeOther"]).parse(signed(data)) == []


def test_settings() -> None:
    settings = TypeformSettings(secret="one")
    assert [s.get_secret_value() for s in settings.secret] == ["one"]
    assert settings.api_base_url == "https://api.typeform.com"
    assert "one" not in repr(settings)
    with pytest.raises(ValidationError):
        TypeformSettings(secret="one", signing_key="typo")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        TypeformSettings(secret=[])
    with pytest.raises(ValidationError):
        settings.api_base_url = "https://evil.example"  # type: ignore[misc]
    for name, field in TypeformSettings.model_fields.items():
        assert field.description, name


# --- mapping -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mappings() -> MappingSet:
    return MappingSet.load(MAPPINGS)


def mapped(mappings: MappingSet, data: dict[str, Any]) -> Bundle:
    (event,) = connector().parse(signed(data))
    mapper = mappings.get(event.type)
    assert mapper is not None
    return mapper.map(event, connector="typeform")


def only_contact(bundle: Bundle) -> Contact:
    (contact,) = bundle.contacts
    return contact


def test_every_event_has_a_mapping_and_fixtures(mappings: MappingSet) -> None:
    assert mappings.events == sorted(TypeformConnector.events)
    for event in TypeformConnector.events:
        assert len(list((TypeformConnector.fixtures_dir() / event).glob("*.json"))) >= 3


def test_map_japanese_first_last_pair(mappings: MappingSet) -> None:
    bundle = mapped(mappings, fixture("jp_first_last_national_phone_jpy"))
    contact = only_contact(bundle)
    assert contact.email == "hiroshi.tanaka@sample-shoji.co.jp"
    assert contact.phone == "+819012345678"  # "090-1234-5678", region from hidden.country
    assert (contact.first_name, contact.last_name) == ("博", "田中")
    assert contact.company == "株式会社サンプル商事"
    assert contact.job_title == "営業部長"
    assert contact.address is not None and contact.address.country == "JP"
    assert contact.marketing_consent is MarketingConsent.opted_in
    assert contact.lead_source is not None
    assert contact.lead_source.source == "google"
    assert contact.lead_source.medium == "cpc"
    assert contact.lead_source.campaign == "spring_seminar_2026"
    assert contact.lead_source.term == "crm 導入"
    assert contact.lead_source.referrer == "https://www.google.co.jp/"
    assert contact.custom_fields["typeform_score"] == 12
    (company,) = bundle.companies
    assert company.name == "株式会社サンプル商事"
    assert company.domain == "sample-shoji.co.jp"
    (deal,) = bundle.deals
    assert deal.amount == Decimal("1250.00")
    assert deal.currency == "JPY"
    assert deal.status == "won"
    assert deal.external_ids == {"typeform": "k3v9a1q7z2m8x4c6b0n5j2h8g4f6d1s3"}
    (activity,) = bundle.activities
    assert activity.kind == "form_submitted"
    assert activity.occurred_at == datetime(2026, 3, 2, 0, 44, 51, tzinfo=UTC)
    assert activity.subject is not None and "春のセミナー申込" in activity.subject
    assert activity.external_ids == {"typeform": "k3v9a1q7z2m8x4c6b0n5j2h8g4f6d1s3"}
    assert activity.metadata["form_id"] == "Jq8xT2mB"


def test_map_indonesian_mononym_and_text_email(mappings: MappingSet) -> None:
    bundle = mapped(mappings, fixture("id_mononym_full_name_idr"))
    contact = only_contact(bundle)
    assert contact.email == "sukarni.wibowo@contoh.co.id"  # short-text answer, spaces trimmed
    assert contact.phone == "+6281234567890"
    assert (contact.first_name, contact.last_name) == ("Sukarni", None)
    assert contact.address is not None
    assert (contact.address.city, contact.address.country) == ("Yogyakarta", "ID")
    assert contact.marketing_consent is MarketingConsent.opted_out  # choice ref opt_out
    assert contact.tags == frozenset({"CRM", "E-commerce"})
    assert contact.lead_source is not None
    assert contact.lead_source.source == "instagram"  # hidden `source`, no utm_source
    assert contact.lead_source.content == "story_02"
    assert bundle.companies == ()
    (deal,) = bundle.deals
    assert deal.amount == Decimal("150000.00")
    assert deal.currency == "IDR"


def test_map_german_pair_eur_and_declined_consent(mappings: MappingSet) -> None:
    bundle = mapped(mappings, fixture("de_eur_payment_consent_declined"))
    contact = only_contact(bundle)
    assert contact.email == "anna-lena.schaefer@beispiel-verlag.de"
    assert (contact.first_name, contact.last_name) == ("Anna-Lena", "Schäfer")
    assert contact.job_title == "Leiterin Vertrieb"
    assert contact.marketing_consent is MarketingConsent.opted_out  # yes_no answered false
    assert contact.custom_fields["typeform_score"] == 0
    (deal,) = bundle.deals
    assert (deal.amount, deal.currency, deal.status) == (Decimal("490.00"), "EUR", "won")
    assert deal.close_date is not None and deal.close_date.isoformat() == "2026-03-07"
    (activity,) = bundle.activities
    assert activity.body is not None and activity.body.startswith("Wir brauchen eine Rechnung")


def test_map_falls_back_to_answer_types_for_other_refs(mappings: MappingSet) -> None:
    bundle = mapped(mappings, fixture("other_refs_name_only_fallback_by_type"))
    contact = only_contact(bundle)
    assert contact.email == "maryann.oneill@example.ie"  # first Email answer, uuid ref
    assert contact.phone == "+353851234567"  # first Phone number answer, uuid ref
    # The `name` answer, split into both parts (no first_name / last_name questions).
    assert (contact.first_name, contact.last_name) == ("Mary Ann", "O'Neill")
    assert contact.marketing_consent is MarketingConsent.unknown
    assert contact.lead_source is None
    assert bundle.deals == () and bundle.companies == ()
    (activity,) = bundle.activities
    assert activity.subject == 'Submitted Typeform "Contact us"'


def test_map_anonymous_survey_gives_an_empty_bundle(mappings: MappingSet) -> None:
    assert mapped(mappings, fixture("anonymous_survey_no_contact")).is_empty


def test_map_keeps_a_surname_with_particles_whole(mappings: MappingSet) -> None:
    data = fixture("de_eur_payment_consent_declined")
    answers = data["form_response"]["answers"]
    answers[0]["text"] = "Mary Ann"
    answers[1]["text"] = "van der Berg"
    contact = only_contact(mapped(mappings, data))
    assert contact.last_name == "van der Berg"
    assert contact.first_name == "Mary Ann"  # a multi-word first name is kept whole


def test_map_keeps_separate_answers_as_typed(mappings: MappingSet) -> None:
    data = fixture("de_eur_payment_consent_declined")
    answers = data["form_response"]["answers"]
    answers[0]["text"] = "  Dr. Mary Ann "  # no split: no honorific dropped, no word lost
    answers[1]["text"] = "García López, Jr."  # a comma no longer cuts the surname
    contact = only_contact(mapped(mappings, data))
    assert (contact.first_name, contact.last_name) == ("Dr. Mary Ann", "García López, Jr.")


def test_map_japanese_separate_answers_keep_their_order(mappings: MappingSet) -> None:
    contact = only_contact(mapped(mappings, fixture("jp_first_last_national_phone_jpy")))
    assert (contact.first_name, contact.last_name) == ("博", "田中")


@pytest.mark.parametrize("ref", ["name", "full_name"])
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("Ludwig van Beethoven", ("Ludwig", "van Beethoven"), id="particles"),
        pytest.param("  Sukarni ", ("Sukarni", None), id="mononym"),
        pytest.param("山田 太郎", ("太郎", "山田"), id="cjk-family-first"),
        pytest.param("O'Neill, Mary Ann", ("Mary Ann", "O'Neill"), id="last-comma-first"),
    ],
)
def test_map_splits_a_single_full_name_answer(
    mappings: MappingSet, ref: str, text: str, expected: tuple[str, str | None]
) -> None:
    data = fixture("other_refs_name_only_fallback_by_type")
    data["form_response"]["answers"][0]["field"]["ref"] = ref
    data["form_response"]["answers"][0]["text"] = text
    contact = only_contact(mapped(mappings, data))
    assert (contact.first_name, contact.last_name) == expected


def test_map_a_full_name_answer_is_not_mixed_with_separate_answers(mappings: MappingSet) -> None:
    # A form with both kinds: the separate answers win, and a missing last_name answer is
    # not taken from the split full name.
    data = fixture("other_refs_name_only_fallback_by_type")
    answers = data["form_response"]["answers"]
    answers.append(
        {
            "type": "text",
            "text": "Mary Ann",
            "field": {"id": "fnX", "type": "short_text", "ref": "first_name"},
        }
    )
    contact = only_contact(mapped(mappings, data))
    assert (contact.first_name, contact.last_name) == ("Mary Ann", None)
    # A blank first_name answer counts as not given: the full name is split.
    answers[-1]["text"] = "   "
    contact = only_contact(mapped(mappings, data))
    assert (contact.first_name, contact.last_name) == ("Mary Ann", "O'Neill")


def test_map_consent_by_choice_ref_yes(mappings: MappingSet) -> None:
    data = fixture("id_mononym_full_name_idr")
    consent = data["form_response"]["answers"][5]
    consent["choice"] = {"id": "mc01YyYyYyYy", "ref": "opt_in", "label": "Ya, boleh"}
    assert only_contact(mapped(mappings, data)).marketing_consent is MarketingConsent.opted_in


def test_documented_override_adds_budget() -> None:
    override = {
        "form_response": {
            "fields": {
                "contact.custom_fields.budget": {
                    "path": "form_response.answers[field.ref=budget].number",
                    "transforms": ["to_decimal"],
                },
                "contact.custom_fields.typeform_score": None,
            }
        }
    }
    overridden = MappingSet.load(MAPPINGS, overrides=override)
    data = fixture("jp_first_last_national_phone_jpy")
    data["form_response"]["answers"].append(
        {
            "type": "number",
            "number": 500000,
            "field": {"id": "x0BudgetXx01", "type": "number", "ref": "budget"},
        }
    )
    contact = only_contact(mapped(overridden, data))
    assert contact.custom_fields == {"budget": Decimal("500000")}
