"""QuickBooks CDC polling connector: cursor, events, 30-day clamp, 1,000-object cap, OAuth
refresh, error mapping, and the shipped mappings applied to polled objects.

The fake API below behaves like Intuit's (shared/reference/sources.md §10; Intuit's change
data capture page): `GET /v3/company/{realm}/cdc?entities=...&changedSince=...` with a
bearer token that expires, a refresh_token grant that rotates the refresh token, `Fault`
error bodies, a refusal of `changedSince` older than 30 days, objects grouped by entity and
ordered by LastUpdatedTime (deleted ones last), at most 1,000 objects per response.
"""

from __future__ import annotations

import base64
import json
import logging
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from connectors.quickbooks import (
    QuickBooksCdcConnector,
    QuickBooksCdcSettings,
    QuickBooksConnector,
)
from connectors.quickbooks.cdc import CDC_MAX_OBJECTS
from hub import (
    AuthDeliveryError,
    PermanentDeliveryError,
    PollingConnector,
    PollResult,
    SourceEvent,
    TransientDeliveryError,
)
from hub.mapping import MappingSet

FIXTURES = QuickBooksConnector.fixtures_dir()
CDC_FIXTURES = FIXTURES / "cdc"
REALM = "9341453050298464"
CLIENT_ID = "ABcd1234clientid"
CLIENT_SECRET = "s3cr3t-client-value"
NOW = datetime(2026, 3, 21, 9, 10, tzinfo=UTC)
API = "quickbooks.api.intuit.com"
PDT = timezone(timedelta(hours=-7))


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def make_connector(**overrides: Any) -> QuickBooksCdcConnector:
    values: dict[str, Any] = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "refresh_token": "refresh-1",
        "access_token": "access-0",
        "realm_id": REALM,
    }
    values.update(overrides)
    connector = QuickBooksCdcConnector(QuickBooksCdcSettings(**values), instance_id="qbo_cdc")
    connector.clock = lambda: NOW
    return connector


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _fault(status: int, message: str, detail: str, code: str, kind: str) -> httpx.Response:
    body = {"Fault": {"Error": [{"Message": message, "Detail": detail, "code": code,
                                 "element": ""}], "type": kind},
            "time": "2026-03-21T02:10:00.220-07:00"}
    return httpx.Response(status, json=body, headers={"intuit_tid": "1-65f0-cdc"})


class FakeQuickBooks:
    """Intuit's CDC operation and OAuth token endpoint, as far as `poll` uses them.

    Either serves `body` verbatim (a fixture), or builds the response from `objects` the
    way Intuit describes it: objects with LastUpdatedTime >= changedSince, grouped by
    entity in the requested order, oldest first, deleted ones after the active ones,
    at most 1,000 in all.
    """

    def __init__(self, *, access_tokens: set[str] | None = None, now: datetime = NOW) -> None:
        self.now = now
        self.objects: dict[str, list[dict[str, Any]]] = {}
        self.body: dict[str, Any] | None = None
        self.valid_access = set(access_tokens or set())
        self.refresh_token = "refresh-1"
        self.refreshes = 0
        self.requests: list[httpx.Request] = []
        self.forced: httpx.Response | Exception | None = None

    def add(self, entity: str, obj: dict[str, Any]) -> None:
        self.objects.setdefault(entity, []).append(obj)

    def api_calls(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.host == API]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.host == "oauth.platform.intuit.com":
            return self._token(request)
        assert request.url.host == API
        assert request.method == "GET"
        if isinstance(self.forced, Exception):
            raise self.forced
        if self.forced is not None:
            return self.forced
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth.removeprefix("Bearer ") not in self.valid_access:
            return _fault(401, "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                          "Token expired", "3200", "AUTHENTICATION")
        if request.headers.get("accept") != "application/json":
            return httpx.Response(200, text="<IntuitResponse/>",
                                  headers={"content-type": "application/xml"})
        if request.url.path != f"/v3/company/{REALM}/cdc":
            return httpx.Response(404, text="Not Found")
        params = request.url.params
        if params.get("minorversion") != "75":
            return _fault(400, "Invalid minor version", "minorversion", "4001", "ValidationFault")
        entities = params.get("entities", "").split(",")
        if not entities or not all(e in {"Customer", "Invoice", "Payment"} for e in entities):
            return _fault(400, "Invalid entities", f"entities={entities}", "2030", "ValidationFault")
        try:
            since = datetime.fromisoformat(params["changedSince"])
        except (KeyError, ValueError):
            return _fault(400, "Invalid changedSince", "changedSince", "2030", "ValidationFault")
        if since.tzinfo is None or since < self.now - timedelta(days=30):
            return _fault(400, "Invalid changedSince",
                          "changedSince must be within the last 30 days", "2030", "ValidationFault")
        if self.body is not None:
            return httpx.Response(200, json=self.body)
        return httpx.Response(200, json=self._cdc(entities, since))

    def _cdc(self, entities: list[str], since: datetime) -> dict[str, Any]:
        left = CDC_MAX_OBJECTS
        groups: list[dict[str, Any]] = []
        for entity in entities:
            changed = [o for o in self.objects.get(entity, [])
                       if utc(o["MetaData"]["LastUpdatedTime"]) >= since]
            changed.sort(key=lambda o: (o.get("status") == "Deleted",
                                        utc(o["MetaData"]["LastUpdatedTime"])))
            changed = changed[:left]
            left -= len(changed)
            if changed:
                groups.append({entity: changed, "startPosition": 1, "maxResults": len(changed)})
        stamp = self.now.astimezone(PDT).isoformat(timespec="milliseconds")
        return {"CDCResponse": [{"QueryResponse": groups or [{}]}], "time": stamp}

    def _token(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "POST" and request.url.path == "/oauth2/v1/tokens/bearer"
        basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {basic}":
            return httpx.Response(401, json={"error": "invalid_client"})
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        if form.get("grant_type") != "refresh_token" or form.get("refresh_token") != self.refresh_token:
            return httpx.Response(400, json={"error": "invalid_grant"})
        self.refreshes += 1
        access = f"access-{self.refreshes}"
        self.valid_access.add(access)
        self.refresh_token = f"refresh-{self.refreshes + 1}"  # Intuit rotates it
        return httpx.Response(200, json={
            "token_type": "bearer", "access_token": access, "expires_in": 3600,
            "refresh_token": self.refresh_token, "x_refresh_token_expires_in": 8726400,
        })


async def poll(
    connector: QuickBooksCdcConnector, fake: FakeQuickBooks, since: str
) -> PollResult[dict[str, str]]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake)) as client:
        return await connector.poll({"changed_since": since}, client)


def customer(n: int, updated: datetime, **extra: Any) -> dict[str, Any]:
    stamp = updated.astimezone(PDT).isoformat()
    return {"Id": str(n), "SyncToken": "0", "DisplayName": f"Customer {n}",
            "MetaData": {"CreateTime": stamp, "LastUpdatedTime": stamp}, **extra}


# --- class and settings ----------------------------------------------------------------


def test_declares_a_polling_accounting_connector() -> None:
    assert issubclass(QuickBooksCdcConnector, PollingConnector)
    assert QuickBooksCdcConnector.name == "quickbooks_cdc"
    assert QuickBooksCdcConnector.category == "accounting"
    assert QuickBooksCdcConnector.events == ("Customer", "Invoice", "Payment")
    assert QuickBooksCdcConnector.settings_model is QuickBooksCdcSettings


def test_settings_defaults_and_no_secret() -> None:
    settings = make_connector().settings
    assert "secret" not in QuickBooksCdcSettings.model_fields
    assert settings.entities == ("Customer", "Invoice", "Payment")
    assert settings.poll_interval == 300
    assert make_connector().interval == timedelta(seconds=300)
    assert settings.api_base_url == "https://quickbooks.api.intuit.com"
    assert settings.token_url == "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"
    assert settings.minor_version == 75
    assert CLIENT_SECRET not in repr(settings) and "refresh-1" not in repr(settings)


@pytest.mark.parametrize(
    "values",
    [
        pytest.param({"realm_id": None}, id="no-realm"),
        pytest.param({"realm_id": "../oauth"}, id="path-in-realm"),
        pytest.param({"secret": "verifier"}, id="secret-is-unknown"),
        pytest.param({"entities": []}, id="no-entities"),
        pytest.param({"entities": ["TaxRate"]}, id="not-served-by-cdc"),
        pytest.param({"entities": ["Invoice,Customer"]}, id="not-a-name"),
        pytest.param({"poll_interval": 0}, id="zero-interval"),
    ],
)
def test_invalid_settings_are_rejected(values: dict[str, Any]) -> None:
    base = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "refresh_token": "r",
            "realm_id": REALM}
    base.update(values)
    base = {k: v for k, v in base.items() if v is not None}
    with pytest.raises(ValueError):
        QuickBooksCdcSettings(**base)


def test_entities_are_spelled_as_the_api_spells_them() -> None:
    settings = make_connector(entities=["invoice", "Customer", "Invoice"]).settings
    assert settings.entities == ("Invoice", "Customer")


def test_mapping_dir_is_the_shipped_quickbooks_mappings() -> None:
    directory = QuickBooksCdcConnector.mapping_dir()
    assert directory == QuickBooksConnector.mapping_dir()
    assert directory.name == "quickbooks"
    assert MappingSet.load(directory).events == sorted(QuickBooksCdcConnector.events)


# --- initial_cursor --------------------------------------------------------------------


def test_initial_cursor_is_iso_utc_in_whole_seconds() -> None:
    connector = make_connector()
    since = datetime(2026, 3, 21, 2, 5, 44, 730000, tzinfo=PDT)
    assert connector.initial_cursor(since) == {"changed_since": "2026-03-21T09:05:44Z"}
    naive = datetime(2026, 3, 20, 8, 0)  # naive means UTC
    assert connector.initial_cursor(naive) == {"changed_since": "2026-03-20T08:00:00Z"}


def test_initial_cursor_is_clamped_to_the_30_day_look_back() -> None:
    connector = make_connector()
    cursor = connector.initial_cursor(NOW - timedelta(days=90))
    start = datetime.fromisoformat(cursor["changed_since"])
    assert NOW - timedelta(days=30) < start <= NOW - timedelta(days=30) + timedelta(minutes=10)
    # Just inside the window: kept as it is.
    inside = NOW - timedelta(days=29)
    assert datetime.fromisoformat(connector.initial_cursor(inside)["changed_since"]) == inside
    assert "30 days" in (QuickBooksCdcConnector.initial_cursor.__doc__ or "")


async def test_clamped_initial_cursor_is_accepted_by_the_api() -> None:
    connector = make_connector()
    fake = FakeQuickBooks(access_tokens={"access-0"})
    cursor = connector.initial_cursor(datetime(2025, 1, 1, tzinfo=UTC))
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake)) as client:
        result = await connector.poll(cursor, client)
    assert result.events == []


# --- poll: request, events, cursor -----------------------------------------------------


async def test_poll_sends_the_cdc_request_and_emits_each_object() -> None:
    fake = FakeQuickBooks(access_tokens={"access-0"})
    response = load(CDC_FIXTURES / "customers_japanese_and_mononym.json")
    fake.body = response
    result = await poll(make_connector(), fake, "2026-03-01T00:00:00Z")

    (call,) = fake.api_calls()
    assert call.url.path == f"/v3/company/{REALM}/cdc"
    assert call.url.params["entities"] == "Customer,Invoice,Payment"
    assert call.url.params["changedSince"] == "2026-03-01T00:00:00Z"
    assert call.url.params["minorversion"] == "75"
    assert call.headers["authorization"] == "Bearer access-0"

    japanese, mononym = result.events
    assert [e.type for e in result.events] == ["Customer", "Customer"]
    assert japanese.id == f"{REALM}:Customer:58:2026-03-02T18:04:11-08:00"
    assert mononym.id == f"{REALM}:Customer:59:2026-03-05T22:47:31-08:00"
    assert japanese.occurred_at == datetime(2026, 3, 3, 2, 4, 11, tzinfo=UTC)
    assert mononym.occurred_at == datetime(2026, 3, 6, 6, 47, 31, tzinfo=UTC)
    assert all(e.occurred_at.utcoffset() == timedelta(0) for e in result.events)
    objects = response["CDCResponse"][0]["QueryResponse"][0]["Customer"]
    assert japanese.data == {"Customer": objects[0], "time": response["time"], "realmId": REALM}
    # The newest LastUpdatedTime seen, in UTC.
    assert result.next_cursor == {"changed_since": "2026-03-06T06:47:31Z"}
    assert result.more is False


async def test_poll_data_has_the_shape_fetch_returns() -> None:
    fake = FakeQuickBooks(access_tokens={"access-0"})
    fake.body = load(CDC_FIXTURES / "invoice_eur_paid_and_invoice_deleted.json")
    result = await poll(make_connector(), fake, "2026-03-21T00:00:00Z")
    invoice = next(e for e in result.events if e.type == "Invoice" and "Invoice" in e.data)
    fetched = load(FIXTURES / "Invoice" / "german_paid_eur.json")  # what `fetch` returns
    assert {k: v for k, v in invoice.data.items() if k != "realmId"} == fetched
    assert invoice.data["realmId"] == REALM


async def test_deleted_objects_are_emitted_like_webhook_deletes() -> None:
    fake = FakeQuickBooks(access_tokens={"access-0"})
    fake.body = load(CDC_FIXTURES / "invoice_eur_paid_and_invoice_deleted.json")
    result = await poll(make_connector(), fake, "2026-03-21T00:00:00Z")
    assert [(e.type, e.id.split(":")[2]) for e in result.events] == [
        ("Invoice", "1043"), ("Invoice", "1040"), ("Payment", "2201"),
    ]
    deleted = result.events[1]
    assert deleted.id == f"{REALM}:Invoice:1040:2026-03-21T02:05:58-07:00"
    assert deleted.occurred_at == datetime(2026, 3, 21, 9, 5, 58, tzinfo=UTC)
    assert deleted.data == {
        "realmId": REALM, "id": "1040", "operation": "Delete",
        "lastUpdated": "2026-03-21T02:05:58-07:00", "deleted": True,
    }
    # Same keys as a parsed webhook `Delete` notification.
    webhook_keys = {"realmId", "id", "operation", "lastUpdated", "deleted"}
    assert set(deleted.data) == webhook_keys
    assert result.next_cursor == {"changed_since": "2026-03-21T09:05:58Z"}


async def test_no_changes_moves_the_cursor_to_the_response_time() -> None:
    fake = FakeQuickBooks(access_tokens={"access-0"})
    fake.body = load(CDC_FIXTURES / "no_changes.json")
    result = await poll(make_connector(), fake, "2026-03-21T09:05:58Z")
    assert result.events == []
    # "2026-03-21T02:11:09.731-07:00", in UTC, whole seconds (rounded down).
    assert result.next_cursor == {"changed_since": "2026-03-21T09:11:09Z"}
    assert result.more is False


async def test_cursor_never_moves_backwards() -> None:
    fake = FakeQuickBooks(access_tokens={"access-0"})
    connector = make_connector()
    # A response time behind the cursor (clock skew): the cursor stays.
    fake.body = load(CDC_FIXTURES / "no_changes.json")
    result = await poll(connector, fake, "2026-03-21T09:30:00Z")
    assert result.next_cursor == {"changed_since": "2026-03-21T09:30:00Z"}
    # Objects older than the cursor (an API that ignores changedSince): the cursor stays.
    fake.body = load(CDC_FIXTURES / "customers_japanese_and_mononym.json")
    result = await poll(connector, fake, "2026-03-10T00:00:00Z")
    assert len(result.events) == 2
    assert result.next_cursor == {"changed_since": "2026-03-10T00:00:00Z"}


async def test_polls_in_sequence_see_each_change_once_plus_deduplicated_repeats() -> None:
    fake = FakeQuickBooks(access_tokens={"access-0"})
    base = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
    fake.add("Customer", customer(1, base))
    fake.add("Customer", customer(2, base + timedelta(minutes=5)))
    connector = make_connector()
    first = await poll(connector, fake, "2026-03-20T00:00:00Z")
    assert [e.data["Customer"]["Id"] for e in first.events] == ["1", "2"]
    assert first.next_cursor == {"changed_since": "2026-03-20T12:05:00Z"}
    fake.add("Customer", customer(3, base + timedelta(minutes=9)))
    second = await poll(connector, fake, first.next_cursor["changed_since"])
    # changedSince is treated as inclusive here: customer 2 comes back with the same id.
    assert [e.data["Customer"]["Id"] for e in second.events] == ["2", "3"]
    assert second.events[0].id == first.events[1].id
    assert second.next_cursor == {"changed_since": "2026-03-20T12:09:00Z"}
    third = await poll(connector, fake, second.next_cursor["changed_since"])
    assert [e.data["Customer"]["Id"] for e in third.events] == ["3"]
    # Only the re-sent boundary object: nothing new, so on to the response time.
    assert third.next_cursor == {"changed_since": "2026-03-21T09:10:00Z"}


async def test_configured_entities_are_requested() -> None:
    fake = FakeQuickBooks(access_tokens={"access-0"})
    await poll(make_connector(entities=["invoice"]), fake, "2026-03-20T00:00:00Z")
    assert fake.api_calls()[0].url.params["entities"] == "Invoice"


async def test_a_cursor_beyond_30_days_is_clamped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = FakeQuickBooks(access_tokens={"access-0"})
    with caplog.at_level(logging.WARNING, logger="connectors.quickbooks.cdc"):
        result = await poll(make_connector(), fake, "2026-01-01T00:00:00Z")
    sent = datetime.fromisoformat(fake.api_calls()[0].url.params["changedSince"])
    assert NOW - timedelta(days=30) < sent <= NOW - timedelta(days=29)
    assert "30-day" in caplog.text
    assert result.next_cursor == {"changed_since": "2026-03-21T09:10:00Z"}


@pytest.mark.parametrize("cursor", [{}, {"changed_since": "yesterday"}, None])
async def test_a_broken_cursor_is_refused(cursor: Any) -> None:
    fake = FakeQuickBooks(access_tokens={"access-0"})
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake)) as client:
        with pytest.raises(ValueError, match="cursor"):
            await make_connector().poll(cursor, client)
    assert fake.requests == []


# --- the 1,000-object cap --------------------------------------------------------------


async def test_a_full_response_asks_for_more_and_nothing_is_skipped() -> None:
    fake = FakeQuickBooks(access_tokens={"access-0"})
    base = datetime(2026, 3, 20, 0, 0, tzinfo=UTC)
    for n in range(1, 1201):  # 1,200 customers, one a second
        fake.add("Customer", customer(n, base + timedelta(seconds=n)))
    fake.add("Invoice", {"Id": "7001", "MetaData": {
        "LastUpdatedTime": (base + timedelta(hours=2)).isoformat()}})
    connector = make_connector()
    first = await poll(connector, fake, "2026-03-19T00:00:00Z")
    assert len(first.events) == CDC_MAX_OBJECTS
    assert first.more is True
    # The API cut the customers at the 1,000th: go on from there, not past them.
    assert first.next_cursor == {"changed_since": "2026-03-20T00:16:40Z"}  # customer 1000
    second = await poll(connector, fake, first.next_cursor["changed_since"])
    assert second.more is False
    seen = {e.id for e in first.events} | {e.id for e in second.events}
    assert len(seen) == 1201  # every customer and the invoice, customer 1000 twice
    assert second.next_cursor == {"changed_since": "2026-03-20T02:00:00Z"}


async def test_a_full_response_with_an_earlier_entity_resumes_from_the_earliest() -> None:
    fake = FakeQuickBooks(access_tokens={"access-0"})
    base = datetime(2026, 3, 20, 0, 0, tzinfo=UTC)
    group: list[dict[str, Any]] = [customer(n, base + timedelta(seconds=n)) for n in range(1, 1001)]
    fake.body = {"CDCResponse": [{"QueryResponse": [
        {"Customer": group, "startPosition": 1, "maxResults": 1000},
        {"Payment": [{"Id": "2300", "MetaData": {"LastUpdatedTime": "2026-03-19T17:05:00-07:00"}}]},
    ]}], "time": "2026-03-21T02:10:00.000-07:00"}
    result = await poll(make_connector(), fake, "2026-03-19T00:00:00Z")
    assert result.more is True
    assert len(result.events) == 1001
    assert result.next_cursor == {"changed_since": "2026-03-20T00:05:00Z"}  # the payment's time


async def test_a_full_response_at_one_second_moves_on_instead_of_looping() -> None:
    fake = FakeQuickBooks(access_tokens={"access-0"})
    at = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
    for n in range(1, 1001):
        fake.add("Customer", customer(n, at))
    result = await poll(make_connector(), fake, "2026-03-20T12:00:00Z")
    assert len(result.events) == 1000
    assert result.next_cursor == {"changed_since": "2026-03-20T12:00:01Z"}
    assert result.more is True


async def test_a_short_response_does_not_ask_for_more() -> None:
    fake = FakeQuickBooks(access_tokens={"access-0"})
    base = datetime(2026, 3, 20, 0, 0, tzinfo=UTC)
    for n in range(1, CDC_MAX_OBJECTS):
        fake.add("Customer", customer(n, base + timedelta(seconds=n)))
    result = await poll(make_connector(), fake, "2026-03-19T00:00:00Z")
    assert (len(result.events), result.more) == (999, False)


# --- OAuth -----------------------------------------------------------------------------


async def test_expired_token_is_refreshed_once_and_kept() -> None:
    fake = FakeQuickBooks()  # access-0 has expired
    connector = make_connector()
    await poll(connector, fake, "2026-03-20T00:00:00Z")
    assert fake.refreshes == 1
    assert [r.headers["authorization"] for r in fake.api_calls()] == [
        "Bearer access-0", "Bearer access-1"
    ]
    await poll(connector, fake, "2026-03-20T00:00:00Z")
    assert fake.refreshes == 1
    # When it expires too, the rotated refresh token (refresh-2) is the one sent.
    fake.valid_access.clear()
    await poll(connector, fake, "2026-03-20T00:00:00Z")
    assert fake.refreshes == 2


async def test_without_an_access_token_one_is_fetched_first() -> None:
    fake = FakeQuickBooks()
    await poll(make_connector(access_token=None), fake, "2026-03-20T00:00:00Z")
    assert [r.url.host for r in fake.requests] == ["oauth.platform.intuit.com", API]
    assert fake.requests[1].headers["authorization"] == "Bearer access-1"


async def test_rejected_refresh_token_is_an_auth_error_without_secrets() -> None:
    fake = FakeQuickBooks()
    fake.refresh_token = "someone-elses-refresh"
    with pytest.raises(AuthDeliveryError, match="invalid_grant") as info:
        await poll(make_connector(), fake, "2026-03-20T00:00:00Z")
    for secret in ("refresh-1", "access-0", CLIENT_SECRET):
        assert secret not in str(info.value)


async def test_still_unauthorised_after_refresh_is_an_auth_error() -> None:
    fake = FakeQuickBooks()
    fake.forced = _fault(401, "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                         "Token revoked", "3200", "AUTHENTICATION")
    with pytest.raises(AuthDeliveryError, match="AuthenticationFailed") as info:
        await poll(make_connector(), fake, "2026-03-20T00:00:00Z")
    assert fake.refreshes == 1 and len(fake.api_calls()) == 2
    assert "access-1" not in str(info.value)


async def test_tokens_are_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeQuickBooks()
    fake.add("Customer", customer(1, datetime(2026, 3, 20, tzinfo=UTC)))
    with caplog.at_level(logging.DEBUG):
        await poll(make_connector(), fake, "2026-01-01T00:00:00Z")  # clamped: logs a warning
    assert caplog.records
    for secret in ("access-0", "access-1", "refresh-1", "refresh-2", CLIENT_SECRET):
        assert secret not in caplog.text


# --- errors ----------------------------------------------------------------------------


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
        await poll(make_connector(), fake, "2026-03-20T00:00:00Z")
    assert info.value.retry_after == retry_after
    assert len(fake.api_calls()) == 1  # no retries here: the runtime retries


async def test_network_failure_is_transient() -> None:
    fake = FakeQuickBooks(access_tokens={"access-0"})
    fake.forced = httpx.ConnectError("connection refused")
    with pytest.raises(TransientDeliveryError, match="unreachable"):
        await poll(make_connector(), fake, "2026-03-20T00:00:00Z")


async def test_validation_fault_is_permanent_with_its_message() -> None:
    fake = FakeQuickBooks(access_tokens={"access-0"})
    fake.forced = _fault(400, "Invalid changedSince", "changedSince must be within the last 30 days",
                         "2030", "ValidationFault")
    with pytest.raises(PermanentDeliveryError, match=r"Invalid changedSince \(2030\)") as info:
        await poll(make_connector(), fake, "2026-03-20T00:00:00Z")
    assert "1-65f0-cdc" in str(info.value)  # intuit_tid, for Intuit support


async def test_forbidden_is_an_auth_error() -> None:
    fake = FakeQuickBooks(access_tokens={"access-0"})
    fake.forced = _fault(403, "message=AuthorizationFailed; errorCode=003100; statusCode=403",
                         "", "3100", "SERVICE")
    with pytest.raises(AuthDeliveryError, match="AuthorizationFailed"):
        await poll(make_connector(), fake, "2026-03-20T00:00:00Z")


@pytest.mark.parametrize(
    ("response", "message"),
    [
        pytest.param(httpx.Response(200, text="<html>maintenance</html>"), "non-JSON", id="html"),
        pytest.param(httpx.Response(200, json=[1, 2]), "not a JSON object", id="array"),
        pytest.param(httpx.Response(200, json={"QueryResponse": {}}), "no CDCResponse",
                     id="not-cdc"),
        pytest.param(httpx.Response(200, json={"Fault": {"Error": [
            {"Message": "Unsupported entity", "code": "2020"}], "type": "ValidationFault"}}),
                     r"Unsupported entity \(2020\)", id="fault-in-200"),
        pytest.param(httpx.Response(200, json={"CDCResponse": [{"QueryResponse": [{"Fault": {
            "Error": [{"Message": "Query failed", "code": "4000"}]}}]}]}),
                     r"Query failed \(4000\)", id="fault-in-query-response"),
    ],
)
async def test_unreadable_responses_are_permanent(response: httpx.Response, message: str) -> None:
    fake = FakeQuickBooks(access_tokens={"access-0"})
    fake.forced = response
    with pytest.raises(PermanentDeliveryError, match=message):
        await poll(make_connector(), fake, "2026-03-20T00:00:00Z")


async def test_an_object_without_an_id_is_skipped() -> None:
    fake = FakeQuickBooks(access_tokens={"access-0"})
    fake.body = {"CDCResponse": [{"QueryResponse": [{"Customer": [
        {"DisplayName": "no id"}, customer(5, datetime(2026, 3, 20, tzinfo=UTC))]}]}],
        "time": "2026-03-21T02:10:00.000-07:00"}
    result = await poll(make_connector(), fake, "2026-03-19T00:00:00Z")
    assert [e.data["Customer"]["Id"] for e in result.events] == ["5"]


# --- mapping ---------------------------------------------------------------------------

CDC_CASES = sorted(p.name for p in CDC_FIXTURES.glob("*.json"))


@pytest.fixture(scope="module")
def mappings() -> MappingSet:
    return MappingSet.load(QuickBooksCdcConnector.mapping_dir(), default_region="US")


def webhook_fixture_of(entity: str, entity_id: str) -> dict[str, Any] | None:
    for path in sorted((FIXTURES / entity).glob("*.json")):
        data = load(path)
        if data[entity]["Id"] == entity_id:
            return data
    return None


def comparable(bundle: Any) -> dict[str, Any]:
    dumped: dict[str, Any] = bundle.model_dump(mode="json", exclude={"connector", "event_id"})
    return dumped


def test_cdc_fixtures_are_shipped() -> None:
    assert {"customers_japanese_and_mononym.json", "invoice_eur_paid_and_invoice_deleted.json",
            "no_changes.json"} <= set(CDC_CASES)


@pytest.mark.parametrize("name", CDC_CASES)
async def test_polled_objects_map_like_fetched_ones(mappings: MappingSet, name: str) -> None:
    fake = FakeQuickBooks(access_tokens={"access-0"})
    fake.body = load(CDC_FIXTURES / name)
    result = await poll(make_connector(), fake, "2026-03-01T00:00:00Z")
    compared = 0
    for event in result.events:
        mapper = mappings.get(event.type)
        assert mapper is not None, event.type
        polled = mapper.map(event, connector="quickbooks_cdc")
        if event.data.get("deleted"):
            assert polled.is_empty, event.id
            continue
        entity_id = event.data[event.type]["Id"]
        fetched = webhook_fixture_of(event.type, entity_id)
        assert fetched is not None, f"no webhook fixture for {event.type} {entity_id}"
        webhook = mapper.map(
            SourceEvent(event.type, "evt-1", event.occurred_at, fetched), connector="quickbooks"
        )
        assert not polled.is_empty
        assert comparable(polled) == comparable(webhook), event.id
        assert polled.event_id == event.id
        compared += 1
    if name != "no_changes.json":
        assert compared >= 2


async def test_japanese_and_mononym_customers_map_to_contacts(mappings: MappingSet) -> None:
    fake = FakeQuickBooks(access_tokens={"access-0"})
    fake.body = load(CDC_FIXTURES / "customers_japanese_and_mononym.json")
    result = await poll(make_connector(), fake, "2026-03-01T00:00:00Z")
    mapper = mappings.get("Customer")
    assert mapper is not None
    japanese, mononym = (mapper.map(e, connector="quickbooks_cdc") for e in result.events)
    assert (japanese.contacts[0].first_name, japanese.contacts[0].last_name) == ("花子", "山田")
    assert japanese.contacts[0].external_ids == {"quickbooks": "58"}
    assert (mononym.contacts[0].first_name, mononym.contacts[0].last_name) == ("Sukarni", None)
    assert mononym.contacts[0].address is not None
    assert mononym.contacts[0].address.country == "ID"
