"""QuickBooks connector: signature, both notification formats, fetch with OAuth refresh, mappings.

The fake API below behaves like Intuit's (shared/reference/sources.md §10): bearer tokens
that expire, a refresh_token grant that rotates the refresh token, `Fault` error bodies,
400 "Object Not Found" for an unknown id, 429 with Retry-After.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import parse_qs

import httpx
import pytest

from connectors.quickbooks import QuickBooksConnector, QuickBooksSettings
from hub import (
    AuthDeliveryError,
    PayloadError,
    PermanentDeliveryError,
    RawRequest,
    SignatureError,
    SourceEvent,
    TransientDeliveryError,
)
from hub.testing import ConnectorConformance

FIXTURES = QuickBooksConnector.fixtures_dir()
SECRET = "c2f7a1e0-verifier-token"
REALM = "9341453050298464"
CLIENT_ID = "ABcd1234clientid"
CLIENT_SECRET = "s3cr3t-client-value"
NOW = datetime(2026, 3, 21, 9, 6, tzinfo=UTC)


class TestQuickBooksConformance(ConnectorConformance):
    connector = QuickBooksConnector
    settings_values: ClassVar[dict[str, Any]] = {
        "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "refresh_token": "refresh-1"
    }


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def make_connector(**overrides: Any) -> QuickBooksConnector:
    values: dict[str, Any] = {
        "secret": SECRET,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "refresh_token": "refresh-1",
        "access_token": "access-0",
    }
    values.update(overrides)
    return QuickBooksConnector(QuickBooksSettings(**values))


def signed(body: bytes, secret: str = SECRET, **headers: str) -> RawRequest:
    signature = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
    return RawRequest(
        method="POST",
        body=body,
        headers={"Content-Type": "application/json", "intuit-signature": signature.decode(),
                 **headers},
        received_at=NOW,
    )


# --- verify ----------------------------------------------------------------------------

VECTOR_BODY = (
    b'{"eventNotifications":[{"realmId":"9341453050298464","dataChangeEvent":{"entities":'
    b'[{"name":"Customer","id":"58","operation":"Create","lastUpdated":'
    b'"2026-03-03T02:04:11.000Z"}]}}]}'
)
#: base64(HMAC-SHA256(verifier token, body)), computed with `openssl dgst -hmac ... | base64`.
VECTOR_SIGNATURE = "YtGulnAv5WcwC3wW0qmmZmj80u+pd2KEwbX2TMw+l7c="


def test_known_vector_is_accepted() -> None:
    request = RawRequest("POST", VECTOR_BODY, {"intuit-signature": VECTOR_SIGNATURE})
    make_connector().verify(request)


def test_hex_encoded_signature_is_rejected() -> None:
    digest = hmac.new(SECRET.encode(), VECTOR_BODY, hashlib.sha256).hexdigest()
    with pytest.raises(SignatureError, match="does not match"):
        make_connector().verify(RawRequest("POST", VECTOR_BODY, {"intuit-signature": digest}))


def test_signature_over_raw_bytes_is_accepted_and_header_is_case_insensitive() -> None:
    body = (FIXTURES / "webhooks" / "legacy_batch.json").read_bytes()
    request = signed(body)
    request = RawRequest("POST", body, {"Intuit-Signature": request.header("intuit-signature")})
    make_connector().verify(request)


def test_tampered_body_is_rejected() -> None:
    body = (FIXTURES / "webhooks" / "cloudevents_batch.json").read_bytes()
    request = signed(body)
    tampered = RawRequest("POST", body.replace(b'"1043"', b'"1044"'), request.headers)
    with pytest.raises(SignatureError, match="does not match"):
        make_connector().verify(tampered)


def test_wrong_secret_is_rejected_without_leaking_secrets() -> None:
    request = signed(VECTOR_BODY, secret="someone-else")
    with pytest.raises(SignatureError) as info:
        make_connector().verify(request)
    assert SECRET not in str(info.value)
    assert VECTOR_SIGNATURE not in str(info.value)


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        pytest.param({}, "missing", id="missing"),
        pytest.param({"intuit-signature": "  "}, "missing", id="blank"),
        pytest.param({"intuit-signature": "not base64 at all!"}, "does not match", id="malformed"),
        pytest.param({"intuit-signature": "sha256=" + VECTOR_SIGNATURE}, "does not match",
                     id="prefixed"),
    ],
)
def test_missing_or_malformed_header_is_rejected(headers: dict[str, str], message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        make_connector().verify(RawRequest("POST", VECTOR_BODY, headers))


def test_rotated_secrets_are_all_accepted() -> None:
    connector = make_connector(secret=["new-verifier-token", SECRET])
    connector.verify(signed(VECTOR_BODY, secret=SECRET))
    connector.verify(signed(VECTOR_BODY, secret="new-verifier-token"))
    with pytest.raises(SignatureError):
        connector.verify(signed(VECTOR_BODY, secret="retired-token"))


def test_no_timestamp_is_signed_so_age_is_not_checked() -> None:
    # Intuit signs the body only; replays are caught by deduplicating on the event id.
    assert QuickBooksConnector.signs_timestamp is False
    old = RawRequest("POST", VECTOR_BODY, {"intuit-signature": VECTOR_SIGNATURE},
                     received_at=NOW + timedelta(days=30))
    make_connector().verify(old)


# --- parse -----------------------------------------------------------------------------


def test_parse_legacy_notification() -> None:
    body = (FIXTURES / "webhooks" / "legacy_batch.json").read_bytes()
    events = make_connector().parse(signed(body))
    assert [e.type for e in events] == [
        "Customer", "Invoice", "Payment", "Estimate", "Customer", "Invoice"
    ]
    invoice = events[1]
    assert invoice.id == f"{REALM}:Invoice:1042:Create:2026-03-02T18:20:05-0800"
    assert invoice.occurred_at == datetime(2026, 3, 3, 2, 20, 5, tzinfo=UTC)
    assert invoice.occurred_at.utcoffset() == timedelta(0)
    assert invoice.data == {
        "realmId": REALM, "id": "1042", "operation": "Create",
        "lastUpdated": "2026-03-02T18:20:05-0800", "deleted": False,
    }
    assert events[0].occurred_at == datetime(2026, 3, 3, 2, 4, 11, tzinfo=UTC)
    merged, deleted = events[4], events[5]
    assert merged.data["operation"] == "Merge" and merged.data["deletedId"] == "56"
    assert deleted.data["deleted"] is True and deleted.data["operation"] == "Delete"
    assert len({e.id for e in events}) == len(events)


def test_parse_cloudevents_notification() -> None:
    body = (FIXTURES / "webhooks" / "cloudevents_batch.json").read_bytes()
    events = make_connector().parse(signed(body))
    assert [(e.type, e.data["operation"]) for e in events] == [
        ("Invoice", "Update"), ("Payment", "Create"), ("Customer", "Update"),
        ("SalesReceipt", "Create"),
    ]
    first = events[0]
    assert first.id == "5b1e3d2c-6f0a-4c8e-9a71-2f4d8e6b0c13"
    assert first.occurred_at == datetime(2026, 3, 21, 9, 5, 44, 120000, tzinfo=UTC)
    assert first.data == {
        "realmId": REALM, "id": "1043", "operation": "Update",
        "lastUpdated": "2026-03-21T09:05:44.120Z", "deleted": False,
    }


def test_parse_cloudevents_deleted_and_voided() -> None:
    body = (FIXTURES / "webhooks" / "cloudevents_deleted.json").read_bytes()
    customer, invoice = make_connector().parse(signed(body))
    assert (customer.type, customer.data["deleted"]) == ("Customer", True)
    assert (invoice.type, invoice.data["operation"], invoice.data["deleted"]) == (
        "Invoice", "Void", False
    )


def test_parse_keeps_unknown_cloudevent_types() -> None:
    body = json.dumps([{
        "specversion": "1.0", "id": "e-1", "type": "payroll.employee",
        "time": "2026-03-01T00:00:00Z", "intuitentityid": "7", "intuitaccountid": REALM, "data": {},
    }]).encode()
    (event,) = make_connector().parse(signed(body))
    assert (event.type, event.id, event.data["id"]) == ("payroll.employee", "e-1", "7")


def test_parse_drops_other_companies_when_realm_is_set() -> None:
    body = (FIXTURES / "webhooks" / "cloudevents_batch.json").read_bytes()
    assert len(make_connector(realm_id=REALM).parse(signed(body))) == 4
    assert make_connector(realm_id="123145700000000").parse(signed(body)) == []


def test_parse_empty_array_is_nothing_to_do() -> None:
    assert make_connector().parse(signed(b"[]")) == []


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"<html>oops</html>", id="not-json"),
        pytest.param(b'{"hello": "world"}', id="neither-format"),
        pytest.param(b'[{"specversion": "1.0", "id": "x"}]', id="cloudevent-without-type"),
        pytest.param(b'{"eventNotifications": [{"realmId": "1"}]}', id="no-entities"),
        pytest.param(b'{"eventNotifications": [{"realmId": "1", "dataChangeEvent": '
                     b'{"entities": [{"name": "Invoice"}]}}]}', id="entity-without-id"),
        pytest.param(b'{"eventNotifications": [{"realmId": "1", "dataChangeEvent": {"entities":'
                     b' [{"name": "Invoice", "id": "1", "lastUpdated": "yesterday"}]}}]}',
                     id="bad-timestamp"),
        pytest.param(b'[{"specversion": "1.0", "id": "x", "type": "qbo.invoice.created.v1",'
                     b' "intuitentityid": "../../oauth", "intuitaccountid": "1"}]',
                     id="path-in-entity-id"),
    ],
)
def test_parse_garbage_raises_payload_error(body: bytes) -> None:
    with pytest.raises(PayloadError):
        make_connector().parse(signed(body))


def test_parse_rejects_a_non_json_content_type() -> None:
    request = RawRequest("POST", VECTOR_BODY, {"Content-Type": "text/plain"})
    with pytest.raises(PayloadError) as info:
        make_connector().parse(request)
    assert info.value.status == 415


# --- sample_request --------------------------------------------------------------------

ENTITY_FIXTURES = sorted(
    p.relative_to(FIXTURES).as_posix() for event in QuickBooksConnector.events
    for p in (FIXTURES / event).glob("*.json")
)


@pytest.mark.parametrize("name", ENTITY_FIXTURES)
def test_sample_request_is_a_signed_notification_for_the_object(name: str) -> None:
    event_type = name.split("/")[0]
    data = fixture(name)
    request = QuickBooksConnector.sample_request(event_type, data, SECRET, at=NOW)
    expected = base64.b64encode(hmac.new(SECRET.encode(), request.body, hashlib.sha256).digest())
    assert request.header("intuit-signature") == expected.decode()
    connector = make_connector()
    connector.verify(request)
    (event,) = connector.parse(request)
    assert event.type == event_type
    assert event.data["id"] == data[event_type]["Id"]
    assert event.data["realmId"] == REALM
    assert event.occurred_at == NOW


def test_every_event_type_has_fixtures() -> None:
    for event_type in QuickBooksConnector.events:
        assert len(list((FIXTURES / event_type).glob("*.json"))) >= 3, event_type


# --- fetch -----------------------------------------------------------------------------

_ENTITY_PATH = re.compile(r"^/v3/company/(?P<realm>\d+)/(?P<entity>[a-z]+)/(?P<id>[^/]+)$")


def _fault(status: int, message: str, detail: str, code: str, kind: str) -> httpx.Response:
    body = {"Fault": {"Error": [{"Message": message, "Detail": detail, "code": code,
                                 "element": ""}], "type": kind},
            "time": "2026-03-21T02:06:10.220-07:00"}
    return httpx.Response(status, json=body, headers={"intuit_tid": "1-65f0-abc"})


class FakeQuickBooks:
    """Intuit's accounting API and OAuth token endpoint, as far as `fetch` uses them."""

    def __init__(self, *, access_tokens: set[str] | None = None) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.valid_access = set(access_tokens or set())
        self.refresh_token = "refresh-1"
        self.refreshes = 0
        self.requests: list[httpx.Request] = []
        self.forced: httpx.Response | Exception | None = None

    def add(self, name: str) -> dict[str, Any]:
        data = fixture(name)
        entity = name.split("/")[0]
        self.objects[(REALM, entity.lower(), data[entity]["Id"])] = data
        return data

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.host == "oauth.platform.intuit.com":
            return self._token(request)
        assert request.url.host == "quickbooks.api.intuit.com"
        if isinstance(self.forced, Exception):
            raise self.forced
        if self.forced is not None:
            return self.forced
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth.removeprefix("Bearer ") not in self.valid_access:
            # The shape Intuit sends for an expired or unknown token.
            return _fault(401, "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                          "Token expired", "3200", "AUTHENTICATION")
        if request.headers.get("accept") != "application/json":
            return httpx.Response(200, text="<IntuitResponse/>",
                                  headers={"content-type": "application/xml"})
        if request.url.params.get("minorversion") != "75":
            return _fault(400, "Invalid minor version", "minorversion", "4001", "ValidationFault")
        match = _ENTITY_PATH.match(request.url.path)
        if match is None:
            return httpx.Response(404, text="Not Found")
        found = self.objects.get((match["realm"], match["entity"], match["id"]))
        if found is None:
            return _fault(400, "Object Not Found",
                          "Object Not Found : Something you're trying to use has been made "
                          "inactive. Check the fields with accounts, customers, items, vendors "
                          "or employees.", "610", "ValidationFault")
        return httpx.Response(200, json=found)

    def _token(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "POST" and request.url.path == "/oauth2/v1/tokens/bearer"
        basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {basic}":
            return httpx.Response(401, json={"error": "invalid_client"})
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        grant, token = form.get("grant_type"), form.get("refresh_token")
        if grant != "refresh_token" or token != self.refresh_token:
            return httpx.Response(400, json={"error": "invalid_grant"})
        self.refreshes += 1
        access = f"access-{self.refreshes}"
        self.valid_access.add(access)
        self.refresh_token = f"refresh-{self.refreshes + 1}"  # Intuit rotates it
        return httpx.Response(200, json={
            "token_type": "bearer", "access_token": access, "expires_in": 3600,
            "refresh_token": self.refresh_token, "x_refresh_token_expires_in": 8726400,
        })

    def api_calls(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.host == "quickbooks.api.intuit.com"]


def notification(entity: str, entity_id: str, *, operation: str = "Update") -> SourceEvent:
    return SourceEvent(
        type=entity, id=f"{REALM}:{entity}:{entity_id}:{operation}:x", occurred_at=NOW,
        data={"realmId": REALM, "id": entity_id, "operation": operation,
              "lastUpdated": "2026-03-21T09:05:44.120Z", "deleted": operation == "Delete"},
    )


async def fetch(connector: QuickBooksConnector, fake: FakeQuickBooks, event: SourceEvent
                ) -> SourceEvent:
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake)) as client:
        return await connector.fetch(event, client)


async def test_fetch_returns_the_api_object() -> None:
    fake = FakeQuickBooks(access_tokens={"access-0"})
    data = fake.add("Invoice/german_paid_eur.json")
    event = notification("Invoice", "1043")
    fetched = await fetch(make_connector(), fake, event)
    assert (fetched.type, fetched.id, fetched.occurred_at) == ("Invoice", event.id, NOW)
    assert fetched.data == data
    (call,) = fake.api_calls()
    assert str(call.url) == (
        f"https://quickbooks.api.intuit.com/v3/company/{REALM}/invoice/1043?minorversion=75"
    )
    assert call.headers["authorization"] == "Bearer access-0"
    assert fake.refreshes == 0


async def test_expired_token_is_refreshed_once_and_kept() -> None:
    fake = FakeQuickBooks()  # access-0 has expired
    fake.add("Customer/japanese_individual.json")
    fake.add("Payment/japanese_partial_jpy.json")
    connector = make_connector()
    customer = await fetch(connector, fake, notification("Customer", "58"))
    assert customer.data["Customer"]["DisplayName"] == "山田 花子"
    assert fake.refreshes == 1
    assert [r.headers["authorization"] for r in fake.api_calls()] == [
        "Bearer access-0", "Bearer access-1"
    ]
    # The new access token is kept: the next fetch needs no refresh.
    await fetch(connector, fake, notification("Payment", "2203"))
    assert fake.refreshes == 1
    # When it expires too, the rotated refresh token (refresh-2) is the one sent.
    fake.valid_access.clear()
    await fetch(connector, fake, notification("Customer", "58"))
    assert fake.refreshes == 2


async def test_without_an_access_token_one_is_fetched_first() -> None:
    fake = FakeQuickBooks()
    fake.add("Customer/us_no_country.json")
    await fetch(make_connector(access_token=None), fake, notification("Customer", "61"))
    hosts = [r.url.host for r in fake.requests]
    assert hosts == ["oauth.platform.intuit.com", "quickbooks.api.intuit.com"]
    assert fake.requests[1].headers["authorization"] == "Bearer access-1"


async def test_concurrent_fetches_share_one_refresh() -> None:
    fake = FakeQuickBooks()
    fake.add("Customer/japanese_individual.json")
    fake.add("Invoice/japanese_open_jpy.json")
    connector = make_connector()
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake)) as client:
        results = await asyncio.gather(
            connector.fetch(notification("Customer", "58"), client),
            connector.fetch(notification("Invoice", "1042"), client),
        )
    assert [r.type for r in results] == ["Customer", "Invoice"]
    assert fake.refreshes == 1


async def test_rejected_refresh_token_is_an_auth_error_without_secrets() -> None:
    fake = FakeQuickBooks()
    fake.refresh_token = "someone-elses-refresh"
    with pytest.raises(AuthDeliveryError, match="invalid_grant") as info:
        await fetch(make_connector(), fake, notification("Customer", "58"))
    for secret in ("refresh-1", "access-0", CLIENT_SECRET):
        assert secret not in str(info.value)


async def test_still_unauthorised_after_refresh_is_an_auth_error() -> None:
    fake = FakeQuickBooks()
    fake.add("Customer/japanese_individual.json")
    fake.forced = _fault(401, "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                         "Token revoked", "3200", "AUTHENTICATION")
    with pytest.raises(AuthDeliveryError, match="AuthenticationFailed") as info:
        await fetch(make_connector(), fake, notification("Customer", "58"))
    assert fake.refreshes == 1
    assert len(fake.api_calls()) == 2
    assert "access-1" not in str(info.value)


async def test_lower_case_fault_body_is_read_too() -> None:
    fake = FakeQuickBooks(access_tokens={"access-0"})
    fake.forced = httpx.Response(403, json={
        "warnings": None, "intuitObject": None,
        "fault": {"error": [{"message": "message=AuthorizationFailed; errorCode=003100; "
                                        "statusCode=403", "detail": None, "code": "3100",
                             "element": None}], "type": "SERVICE"},
        "time": 1773900000000,
    })
    with pytest.raises(AuthDeliveryError, match="AuthorizationFailed"):
        await fetch(make_connector(), fake, notification("Customer", "58"))


async def test_unknown_id_is_permanent_with_the_fault_message() -> None:
    fake = FakeQuickBooks(access_tokens={"access-0"})
    with pytest.raises(PermanentDeliveryError, match=r"Object Not Found \(610\)") as info:
        await fetch(make_connector(), fake, notification("Invoice", "999999"))
    assert "1-65f0-abc" in str(info.value)  # intuit_tid, for Intuit support


async def test_not_found_status_is_permanent() -> None:
    fake = FakeQuickBooks(access_tokens={"access-0"})
    fake.forced = httpx.Response(404, text="Not Found")
    with pytest.raises(PermanentDeliveryError, match="404"):
        await fetch(make_connector(), fake, notification("Invoice", "1"))


@pytest.mark.parametrize(
    ("response", "retry_after"),
    [
        pytest.param(httpx.Response(429, headers={"Retry-After": "30"}, text="Too Many"), 30.0,
                     id="429-retry-after"),
        pytest.param(httpx.Response(429, text="ThrottleExceeded"), 60.0, id="429-default"),
        pytest.param(_fault(500, "An application error has occurred", "boom", "10000",
                            "SystemFault"), None, id="500"),
        pytest.param(httpx.Response(503, headers={"Retry-After": "5"}), 5.0, id="503"),
    ],
)
async def test_throttling_and_server_errors_are_transient(
    response: httpx.Response, retry_after: float | None
) -> None:
    fake = FakeQuickBooks(access_tokens={"access-0"})
    fake.forced = response
    with pytest.raises(TransientDeliveryError) as info:
        await fetch(make_connector(), fake, notification("Invoice", "1043"))
    assert info.value.retry_after == retry_after


async def test_network_failure_is_transient() -> None:
    fake = FakeQuickBooks(access_tokens={"access-0"})
    fake.forced = httpx.ConnectError("connection refused")
    with pytest.raises(TransientDeliveryError, match="unreachable"):
        await fetch(make_connector(), fake, notification("Invoice", "1043"))


async def test_deleted_entity_is_not_fetched() -> None:
    fake = FakeQuickBooks(access_tokens={"access-0"})
    event = notification("Customer", "59", operation="Delete")
    assert await fetch(make_connector(), fake, event) is event
    assert fake.requests == []


# --- mapping ---------------------------------------------------------------------------

mapping = pytest.importorskip("hub.mapping")


@pytest.fixture(scope="module")
def mappings() -> Any:
    return mapping.MappingSet.load(QuickBooksConnector.mapping_dir(), default_region="US")


def bundle(mappings: Any, name: str) -> Any:
    event_type = name.split("/")[0]
    event = SourceEvent(type=event_type, id="evt-1", occurred_at=NOW, data=fixture(name))
    return mappings.get(event_type).map(event, connector="quickbooks")


def test_every_event_has_a_mapping(mappings: Any) -> None:
    assert mappings.events == sorted(QuickBooksConnector.events)


@pytest.mark.parametrize("name", ENTITY_FIXTURES)
def test_every_fixture_maps(mappings: Any, name: str) -> None:
    result = bundle(mappings, name)
    assert result.contacts and result.contacts[0].external_ids["quickbooks"]


def test_customer_japanese(mappings: Any) -> None:
    result = bundle(mappings, "Customer/japanese_individual.json")
    (contact,), (company,) = result.contacts, result.companies
    assert contact.email == "hanako.yamada@example.co.jp"
    assert contact.phone == "+81365550199"  # national 03-… with the region from "Japan"
    assert (contact.first_name, contact.last_name) == ("花子", "山田")
    assert contact.address.country == "JP"
    assert contact.external_ids == {"quickbooks": "58"}
    assert contact.lifecycle_stage == "customer"
    assert (company.name, company.domain) == ("株式会社サクラ工房", "sakura-kobo.co.jp")


def test_customer_indonesian_mononym(mappings: Any) -> None:
    (contact,) = bundle(mappings, "Customer/indonesian_mononym.json").contacts
    assert (contact.first_name, contact.last_name) == ("Sukarni", None)
    assert contact.email == "sukarni.toko@contoh.co.id"  # first of a comma-separated list
    assert contact.phone == "+6281234567890"  # the mobile, as the only phone
    assert contact.address.country == "ID"


def test_customer_business_without_person(mappings: Any) -> None:
    result = bundle(mappings, "Customer/german_business.json")
    (contact,), (company,) = result.contacts, result.companies
    assert (contact.first_name, contact.last_name, contact.email) == (None, None, None)
    assert contact.phone == "+49301234567"
    assert contact.address.country == "DE"  # from "DEU"
    assert company.domain == "brauhaus-mueller.de"


def test_customer_without_country(mappings: Any) -> None:
    result = bundle(mappings, "Customer/us_no_country.json")
    (contact,) = result.contacts
    assert contact.phone == "+14155550142"
    assert (contact.first_name, contact.last_name) == ("Marisol", "de la Cruz")
    assert contact.email == "marisol.delacruz@example.com"
    assert contact.address.country is None
    assert result.companies == ()


def test_national_phone_without_country_needs_the_default_region() -> None:
    data = fixture("Customer/us_no_country.json")
    data["Customer"]["PrimaryPhone"]["FreeFormNumber"] = "(415) 555-0142"
    event = SourceEvent(type="Customer", id="evt-1", occurred_at=NOW, data=data)
    directory = QuickBooksConnector.mapping_dir()
    with_region = mapping.MappingSet.load(directory, default_region="US").get("Customer")
    assert with_region.map(event, connector="quickbooks").contacts[0].phone == "+14155550142"
    # FreeFormNumber is free text (on_error: skip): without a region the national number
    # cannot be read, so the phone is left empty and the customer still maps.
    without = mapping.MappingSet.load(directory).get("Customer")
    (contact,) = without.map(event, connector="quickbooks").contacts
    assert contact.phone is None
    assert (contact.first_name, contact.last_name) == ("Marisol", "de la Cruz")


def customer_event(name: str, **changes: Any) -> SourceEvent:
    data = fixture(name)
    data["Customer"].update(changes)
    return SourceEvent(type="Customer", id="evt-1", occurred_at=NOW, data=data)


def map_customer(mappings: Any, name: str, **changes: Any) -> Any:
    return mappings.get("Customer").map(customer_event(name, **changes), connector="quickbooks")


@pytest.mark.parametrize("junk", ["n/a", "ask reception", "ext. 12", "  "])
def test_free_form_phone_that_is_not_a_number_falls_back_to_the_mobile(mappings: Any, junk: str) -> None:
    result = map_customer(
        mappings, "Customer/japanese_individual.json", PrimaryPhone={"FreeFormNumber": junk}
    )
    (contact,), (company,) = result.contacts, result.companies
    assert contact.phone == "+819012345678"  # the Mobile, "090-1234-5678" with "Japan"
    assert company.phone is None  # the company has only the primary phone
    assert (contact.first_name, contact.last_name) == ("花子", "山田")


def test_customer_with_no_readable_phone_still_maps(mappings: Any) -> None:
    result = map_customer(
        mappings,
        "Customer/german_business.json",
        PrimaryPhone={"FreeFormNumber": "bitte per E-Mail"},
        Mobile={"FreeFormNumber": "0"},
    )
    (contact,), (company,) = result.contacts, result.companies
    assert contact.phone is None and company.phone is None
    assert company.name == "Brauhaus Müller GmbH"
    assert contact.external_ids == {"quickbooks": "60"}


def test_given_and_family_names_are_kept_as_entered(mappings: Any) -> None:
    (contact,) = map_customer(
        mappings,
        "Customer/us_no_country.json",
        GivenName=" Mary Ann ",
        FamilyName="García López",
        DisplayName="Mary Ann García López",
    ).contacts
    # Splitting (the DisplayName or the GivenName) would lose a word.
    assert (contact.first_name, contact.last_name) == ("Mary Ann", "García López")


def test_a_persons_display_name_is_split_into_both_parts(mappings: Any) -> None:
    (contact,) = map_customer(
        mappings, "Customer/us_no_country.json", GivenName=None, FamilyName=None,
        DisplayName="Ludwig van Beethoven",
    ).contacts
    assert (contact.first_name, contact.last_name) == ("Ludwig", "van Beethoven")
    (contact,) = map_customer(
        mappings, "Customer/us_no_country.json", GivenName="", FamilyName="",
        DisplayName="Cruz, Marisol de la",
    ).contacts
    assert (contact.first_name, contact.last_name) == ("Marisol de la", "Cruz")


def test_a_companys_display_name_is_not_split(mappings: Any) -> None:
    (contact,) = map_customer(
        mappings, "Customer/german_business.json", DisplayName="Müller Brauhaus"
    ).contacts
    assert (contact.first_name, contact.last_name) == (None, None)


def test_display_name_is_not_mixed_with_one_structured_name(mappings: Any) -> None:
    (contact,) = map_customer(
        mappings, "Customer/us_no_country.json", GivenName=None, DisplayName="Marisol de la Cruz"
    ).contacts
    assert (contact.first_name, contact.last_name) == (None, "de la Cruz")
    (contact,) = map_customer(
        mappings, "Customer/us_no_country.json", FamilyName=None, DisplayName="Marisol de la Cruz"
    ).contacts
    assert (contact.first_name, contact.last_name) == ("Marisol", None)


def test_invoice_open_jpy(mappings: Any) -> None:
    result = bundle(mappings, "Invoice/japanese_open_jpy.json")
    (contact,), (deal,), (activity,) = result.contacts, result.deals, result.activities
    assert contact.email == "hanako.yamada@example.co.jp"
    assert contact.external_ids == {"quickbooks": "58"}
    assert deal.title == "Invoice INV-2026-0042"
    assert (deal.amount, deal.currency, deal.status) == (Decimal("125000"), "JPY", "open")
    assert deal.close_date == date(2026, 4, 30)
    assert deal.external_ids == {"quickbooks": "1042"}
    assert [(i.name, i.quantity, i.unit_price) for i in deal.line_items] == [
        ("Indigo tote bag", Decimal(20), Decimal(4500)),
        ("Gift wrapping", Decimal(20), Decimal(1750)),
    ]  # the SubTotal line is not a product
    assert activity.kind == "invoice_created"
    assert activity.occurred_at == datetime(2026, 3, 3, 2, 20, 5, tzinfo=UTC)


def test_invoice_paid_eur(mappings: Any) -> None:
    result = bundle(mappings, "Invoice/german_paid_eur.json")
    (deal,), (activity,) = result.deals, result.activities
    assert (deal.amount, deal.currency, deal.status) == (Decimal("1250.00"), "EUR", "won")
    assert [i.name for i in deal.line_items] == ["Pilsner keg 50l"]  # no discount line
    assert activity.kind == "invoice_paid"
    assert Decimal(str(activity.metadata["amount"])) == Decimal("1250.00")
    assert result.companies[0].name == "Brauhaus Müller GmbH"


def test_invoice_without_email_or_due_date(mappings: Any) -> None:
    result = bundle(mappings, "Invoice/indonesian_partial_idr.json")
    (contact,), (deal,) = result.contacts, result.deals
    assert contact.email is None and contact.external_ids == {"quickbooks": "59"}
    assert (deal.amount, deal.currency, deal.status) == (Decimal("15750000"), "IDR", "open")
    assert deal.close_date is None


def test_invoice_cents_have_no_float_artefacts(mappings: Any) -> None:
    (deal,) = bundle(mappings, "Invoice/us_cents_usd.json").deals
    assert str(deal.amount) == "1234.56"
    assert deal.line_items[0].unit_price == Decimal("28.5")


def test_payment_eur(mappings: Any) -> None:
    result = bundle(mappings, "Payment/german_full_eur.json")
    (contact,), (activity,) = result.contacts, result.activities
    assert contact.external_ids == {"quickbooks": "60"}
    assert activity.kind == "invoice_paid"
    assert activity.occurred_at == datetime(2026, 3, 21, 9, 5, 40, tzinfo=UTC)
    assert Decimal(str(activity.metadata["amount"])) == Decimal("1250.00")
    assert activity.metadata["currency"] == "EUR"
    assert activity.metadata["linked_txn_ids"] == "1043"
    assert result.deals == ()


def test_payment_unapplied_usd(mappings: Any) -> None:
    (activity,) = bundle(mappings, "Payment/us_unapplied_usd.json").activities
    assert Decimal(str(activity.metadata["unapplied_amount"])) == Decimal("300")
    assert "linked_txn_ids" not in activity.metadata


def test_deleted_notification_maps_to_nothing(mappings: Any) -> None:
    event = notification("Customer", "59", operation="Delete")
    assert mappings.get("Customer").map(event, connector="quickbooks").is_empty


async def test_webhook_to_bundle_end_to_end(mappings: Any) -> None:
    fake = FakeQuickBooks(access_tokens={"access-0"})
    fake.add("Invoice/german_paid_eur.json")
    fake.add("Payment/german_full_eur.json")
    fake.add("Customer/german_business.json")
    connector = make_connector()
    request = signed((FIXTURES / "webhooks" / "cloudevents_batch.json").read_bytes())
    connector.verify(request)
    kinds = []
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake)) as client:
        for event in connector.parse(request):
            mapper = mappings.get(event.type)
            if mapper is None:
                continue  # SalesReceipt: not mapped, ignored by the runtime
            fetched = await connector.fetch(event, client)
            result = mapper.map(fetched, connector="quickbooks")
            kinds.extend(a.kind for a in result.activities)
    assert kinds == ["invoice_paid", "invoice_paid"]
