"""Meta Lead Ads connector: handshake, signature, parse, fetch against a fake Graph API, mapping."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import parse_qs

import httpx
import pytest

from connectors.facebook_lead_ads import FacebookLeadAdsConnector, FacebookLeadAdsSettings
from connectors.facebook_lead_ads.graph import LEAD_FIELDS
from hub import (
    AuthDeliveryError,
    Bundle,
    MappingError,
    PayloadError,
    PermanentDeliveryError,
    RawRequest,
    SignatureError,
    SourceEvent,
    TransientDeliveryError,
)
from hub.mapping import MappingSet
from hub.testing import ConnectorConformance

APP_SECRET = "test-app-secret"
OLD_APP_SECRET = "previous-app-secret"
VERIFY_TOKEN = "crmhub-verify-5f2c"
PAGE_TOKEN = "EAAGtestPageToken0123456789abcdef"
FIXTURES = FacebookLeadAdsConnector.fixtures_dir()
MAPPINGS = FacebookLeadAdsConnector.mapping_dir()
AT = datetime(2025, 1, 15, 10, 21, tzinfo=UTC)


def make_connector(**overrides: Any) -> FacebookLeadAdsConnector:
    values: dict[str, Any] = {
        "secret": APP_SECRET,
        "verify_token": VERIFY_TOKEN,
        "page_access_token": PAGE_TOKEN,
    }
    values.update(overrides)
    return FacebookLeadAdsConnector(FacebookLeadAdsSettings(**values))


def sign(body: bytes, secret: str = APP_SECRET) -> str:
    """Meta's scheme, done by hand: sha256= + hex HMAC-SHA256(app secret, raw body)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post(body: bytes, signature: str | None = None, **headers: str) -> RawRequest:
    all_headers = {"Content-Type": "application/json", **headers}
    if signature is not None:
        all_headers["X-Hub-Signature-256"] = signature
    return RawRequest(method="POST", body=body, headers=all_headers, received_at=AT)


def webhook(name: str) -> bytes:
    return (FIXTURES / "webhooks" / f"{name}.json").read_bytes()


def lead(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (FIXTURES / "leadgen" / f"{name}.json").read_text(encoding="utf-8")
    )
    return data


WEBHOOKS = sorted(p.stem for p in (FIXTURES / "webhooks").glob("*.json"))
LEADS = sorted(p.stem for p in (FIXTURES / "leadgen").glob("*.json"))


# --- handshake ---------------------------------------------------------------------------


def get(query: dict[str, str]) -> RawRequest:
    return RawRequest(method="GET", body=b"", query=query, received_at=AT)


def test_handshake_echoes_the_challenge_for_our_verify_token() -> None:
    request = get(
        {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1158201444"}
    )
    response = make_connector().handshake(request)
    assert response is not None
    assert (response.status, response.body, response.content_type) == (
        200,
        b"1158201444",
        "text/plain",
    )


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        pytest.param(
            {"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1"},
            "does not match",
            id="wrong-token",
        ),
        pytest.param({"hub.mode": "subscribe", "hub.challenge": "1"}, "missing", id="no-token"),
        pytest.param(
            {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
            "hub.mode",
            id="wrong-mode",
        ),
    ],
)
def test_handshake_rejects_a_bad_subscription_request(query: dict[str, str], fragment: str) -> None:
    with pytest.raises(SignatureError, match=fragment) as caught:
        make_connector().handshake(get(query))
    assert VERIFY_TOKEN not in str(caught.value)


def test_handshake_without_a_challenge_is_a_payload_error() -> None:
    with pytest.raises(PayloadError):
        make_connector().handshake(get({"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN}))


def test_handshake_ignores_posts_and_plain_gets() -> None:
    connector = make_connector()
    body = webhook("single_lead")
    assert connector.handshake(post(body, sign(body))) is None
    assert connector.handshake(get({})) is None


# --- signature ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", WEBHOOKS)
def test_signature_accepted(name: str) -> None:
    body = webhook(name)
    make_connector().verify(post(body, sign(body)))


def test_known_vector_over_the_escaped_unicode_body() -> None:
    # Computed with `openssl dgst -sha256 -hmac test-app-secret` over these exact bytes.
    body = (
        b'{"object":"page","entry":[{"id":"100123456789012","time":1736936431,"changes":['
        b'{"value":{"message":"caf\\u00e9 \\u2615"},"field":"feed"},'
        b'{"value":{"leadgen_id":"1203948576102938","page_id":"100123456789012",'
        b'"form_id":"874512309876543","created_time":1736936430},"field":"leadgen"}]}]}'
    )
    expected = "b99b3a60ed3bc1d016118a2dad7ab682b78fc2c5fcb814cbdfbf9c5691cdd074"
    assert sign(body) == f"sha256={expected}"
    connector = make_connector()
    connector.verify(post(body, f"sha256={expected}"))
    # The same JSON re-serialised with raw UTF-8 no longer matches: only raw bytes count.
    reencoded = json.dumps(json.loads(body), ensure_ascii=False, separators=(",", ":")).encode()
    assert reencoded != body
    with pytest.raises(SignatureError, match="does not match"):
        connector.verify(post(reencoded, f"sha256={expected}"))


def test_uppercase_hex_digest_accepted() -> None:
    body = webhook("single_lead")
    make_connector().verify(post(body, "sha256=" + sign(body)[7:].upper()))


def test_tampered_body_rejected() -> None:
    body = webhook("single_lead")
    tampered = body.replace(b"1203948576102938", b"1203948576102939")
    with pytest.raises(SignatureError, match="does not match"):
        make_connector().verify(post(tampered, sign(body)))


def test_wrong_secret_rejected() -> None:
    body = webhook("single_lead")
    with pytest.raises(SignatureError, match="does not match") as caught:
        make_connector().verify(post(body, sign(body, "someone-else")))
    message = str(caught.value)
    assert APP_SECRET not in message
    assert sign(body)[7:] not in message


def test_missing_header_rejected() -> None:
    body = webhook("single_lead")
    with pytest.raises(SignatureError, match="missing"):
        make_connector().verify(post(body))


def test_legacy_sha1_header_alone_is_not_enough() -> None:
    body = webhook("single_lead")
    sha1 = "sha1=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha1).hexdigest()
    with pytest.raises(SignatureError, match="missing"):
        make_connector().verify(post(body, **{"X-Hub-Signature": sha1}))


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("0" * 64, id="no-prefix"),
        pytest.param("sha1=" + "0" * 40, id="sha1-prefix"),
        pytest.param("sha256=abc123", id="short"),
        pytest.param("sha256=" + "z" * 64, id="not-hex"),
    ],
)
def test_malformed_header_rejected(value: str) -> None:
    body = webhook("single_lead")
    with pytest.raises(SignatureError, match="malformed"):
        make_connector().verify(post(body, value))


def test_rotated_secrets_all_accepted() -> None:
    connector = make_connector(secret=[APP_SECRET, OLD_APP_SECRET])
    body = webhook("batched_two_pages")
    connector.verify(post(body, sign(body, APP_SECRET)))
    connector.verify(post(body, sign(body, OLD_APP_SECRET)))
    with pytest.raises(SignatureError):
        connector.verify(post(body, sign(body, "retired-long-ago")))


def test_no_timestamp_is_signed_so_old_deliveries_still_verify() -> None:
    # Meta retries for up to 36 h; replays are caught by deduplicating on leadgen_id.
    assert FacebookLeadAdsConnector.signs_timestamp is False
    body = webhook("single_lead")
    late = RawRequest(
        method="POST",
        body=body,
        headers={"X-Hub-Signature-256": sign(body), "Content-Type": "application/json"},
        received_at=datetime(2025, 1, 17, tzinfo=UTC),
    )
    make_connector().verify(late)


# --- parse -------------------------------------------------------------------------------


def test_parse_single_lead() -> None:
    body = webhook("single_lead")
    (event,) = make_connector().parse(post(body, sign(body)))
    assert event.type == "leadgen"
    assert event.id == "1203948576102938"
    assert event.occurred_at == datetime(2025, 1, 15, 10, 20, 30, tzinfo=UTC)
    assert event.occurred_at.utcoffset() is not None
    assert event.data["form_id"] == "874512309876543"
    assert event.data["page_id"] == "100123456789012"


def test_parse_batched_notification_gives_every_lead_in_order() -> None:
    body = webhook("batched_two_pages")
    events = make_connector().parse(post(body, sign(body)))
    assert [e.id for e in events] == ["2039485761029384", "3948576102938475", "4857610293847561"]
    assert {e.type for e in events} == {"leadgen"}
    assert events[0].occurred_at == datetime(2025, 3, 2, 23, 45, tzinfo=UTC)
    assert all(e.occurred_at.tzinfo is not None for e in events)


def test_parse_skips_changes_of_other_fields() -> None:
    body = webhook("mixed_fields_unicode")
    events = make_connector().parse(post(body, sign(body)))
    assert [(e.type, e.id) for e in events] == [("leadgen", "5061728394056172")]


def test_parse_accepts_numeric_ids_and_falls_back_to_entry_time() -> None:
    body = json.dumps(
        {
            "object": "page",
            "entry": [
                {
                    "id": "100123456789012",
                    "time": 1736936431000,  # milliseconds
                    "changes": [{"field": "leadgen", "value": {"leadgen_id": 1203948576102938}}],
                }
            ],
        }
    ).encode()
    (event,) = make_connector().parse(post(body, sign(body)))
    assert event.id == "1203948576102938"
    assert event.occurred_at == datetime(2025, 1, 15, 10, 20, 31, tzinfo=UTC)


def test_parse_without_any_time_uses_the_receive_time() -> None:
    body = (
        b'{"object":"page","entry":[{"changes":[{"field":"leadgen","value":{"leadgen_id":"7"}}]}]}'
    )
    (event,) = make_connector().parse(post(body, sign(body)))
    assert event.occurred_at == AT


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"not json at all", id="garbage"),
        pytest.param(b'["a list"]', id="not-an-object"),
        pytest.param(b'{"object":"page"}', id="no-entry"),
        pytest.param(b'{"object":"page","entry":["x"]}', id="entry-not-object"),
        pytest.param(
            b'{"object":"page","entry":[{"changes":[{"field":"leadgen","value":{}}]}]}',
            id="no-leadgen-id",
        ),
        pytest.param(
            b'{"object":"page","entry":[{"changes":[{"field":"leadgen",'
            b'"value":{"leadgen_id":"../me"}}]}]}',
            id="leadgen-id-not-digits",
        ),
        pytest.param(
            b'{"object":"page","entry":[{"changes":[{"field":"leadgen","value":"x"}]}]}',
            id="value-not-object",
        ),
    ],
)
def test_parse_rejects_an_unusable_body(body: bytes) -> None:
    with pytest.raises(PayloadError):
        make_connector().parse(post(body, sign(body)))


def test_parse_rejects_a_non_json_content_type() -> None:
    body = webhook("single_lead")
    request = RawRequest(
        method="POST", body=body, headers={"Content-Type": "text/html"}, received_at=AT
    )
    with pytest.raises(PayloadError) as caught:
        make_connector().parse(request)
    assert caught.value.status == 415


def test_parse_of_a_notification_without_leads_is_empty() -> None:
    body = b'{"object":"page","entry":[{"id":"1","time":1,"changes":[]}]}'
    assert make_connector().parse(post(body, sign(body))) == []


# --- sample_request ----------------------------------------------------------------------


@pytest.mark.parametrize("name", LEADS)
def test_sample_request_is_a_genuine_notification(name: str) -> None:
    data = lead(name)
    request = FacebookLeadAdsConnector.sample_request("leadgen", data, APP_SECRET, at=AT)
    assert request.method == "POST"
    request.body.decode("ascii")  # Meta escapes non-ASCII
    assert request.header("X-Hub-Signature-256") == sign(request.body)
    legacy = "sha1=" + hmac.new(APP_SECRET.encode(), request.body, hashlib.sha1).hexdigest()
    assert request.header("X-Hub-Signature") == legacy
    connector = make_connector()
    connector.verify(request)
    (event,) = connector.parse(request)
    assert event.id == data["id"]
    assert event.occurred_at == datetime.fromisoformat(data["created_time"])
    assert event.data["form_id"] == data["form_id"]
    assert event.data.get("ad_id") == data.get("ad_id")


def test_sample_request_rejects_other_event_types() -> None:
    with pytest.raises(ValueError, match="leadgen"):
        FacebookLeadAdsConnector.sample_request("feed", lead(LEADS[0]), APP_SECRET, at=AT)


# --- fetch against a fake Graph API ------------------------------------------------------


class FakeGraphAPI:
    """Answers `GET /{version}/{lead-id}` like graph.facebook.com, error bodies included."""

    def __init__(self, leads: dict[str, dict[str, Any]], *, version: str = "v21.0") -> None:
        self.leads = leads
        self.version = version
        self.token = PAGE_TOKEN
        self.expired = False
        self.throttle_code: int | None = None
        self.outage = False
        self.requests: list[httpx.Request] = []

    @staticmethod
    def _error(status: int, error: dict[str, Any], **headers: str) -> httpx.Response:
        error.setdefault("fbtrace_id", "AbCdEf123_xyz")
        return httpx.Response(status, json={"error": error}, headers=headers)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.outage:
            return self._error(
                500,
                {
                    "message": "An unexpected error has occurred. Please retry your request later.",
                    "type": "OAuthException",
                    "is_transient": True,
                    "code": 2,
                },
            )
        query = parse_qs(request.url.query.decode())
        token = query.get("access_token", [None])[0]
        auth = request.headers.get("authorization", "")
        if auth.startswith("Bearer "):
            token = auth.removeprefix("Bearer ")
        if token is None:
            return self._error(
                400,
                {
                    "message": "An active access token must be used to query information "
                    "about the current user.",
                    "type": "OAuthException",
                    "code": 2500,
                },
            )
        if token != self.token:
            return self._error(
                400,
                {
                    "message": "Invalid OAuth access token - Cannot parse access token",
                    "type": "OAuthException",
                    "code": 190,
                },
            )
        if self.expired:
            return self._error(
                400,
                {
                    "message": "Error validating access token: Session has expired on "
                    "Tuesday, 14-Jan-25 16:00:00 PST.",
                    "type": "OAuthException",
                    "code": 190,
                    "error_subcode": 463,
                },
            )
        proof = query.get("appsecret_proof", [None])[0]
        if proof is not None:
            expected = hmac.new(APP_SECRET.encode(), token.encode(), hashlib.sha256).hexdigest()
            if proof != expected:
                return self._error(
                    400,
                    {
                        "message": "Invalid appsecret_proof provided in the API argument",
                        "type": "GraphMethodException",
                        "code": 100,
                    },
                )
        if self.throttle_code is not None:
            return self._error(
                400,
                {
                    "message": "(#17) User request limit reached",
                    "type": "OAuthException",
                    "code": self.throttle_code,
                },
            )
        match = re.fullmatch(rf"/{re.escape(self.version)}/(\d+)", request.url.path)
        lead_id = match.group(1) if match else request.url.path.rsplit("/", 1)[-1]
        if request.method != "GET" or match is None or lead_id not in self.leads:
            return self._error(
                400,
                {
                    "message": f"Unsupported get request. Object with ID '{lead_id}' does not "
                    "exist, cannot be loaded due to missing permissions, or does not support "
                    "this operation. Please read the Graph API documentation at "
                    "https://developers.facebook.com/docs/graph-api",
                    "type": "GraphMethodException",
                    "code": 100,
                    "error_subcode": 33,
                },
            )
        fields = query.get("fields", ["id,created_time"])[0].split(",")
        stored = self.leads[lead_id]
        return httpx.Response(200, json={k: stored[k] for k in fields if k in stored})


def stored_leads() -> dict[str, dict[str, Any]]:
    return {lead(name)["id"]: lead(name) for name in LEADS}


def notification_for(data: dict[str, Any]) -> SourceEvent:
    request = FacebookLeadAdsConnector.sample_request("leadgen", data, APP_SECRET, at=AT)
    (event,) = make_connector().parse(request)
    return event


async def test_fetch_reads_the_lead_with_a_bearer_token() -> None:
    data = lead("jp_instagram_full_name")
    fake = FakeGraphAPI(stored_leads())
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake)) as client:
        fetched = await make_connector().fetch(notification_for(data), client)
    assert fetched.type == "leadgen"
    assert fetched.id == "1203948576102938"
    assert fetched.occurred_at == datetime(2025, 1, 15, 10, 20, 30, tzinfo=UTC)
    assert fetched.data == data
    (sent,) = fake.requests
    assert sent.method == "GET"
    assert sent.url.host == "graph.facebook.com"
    assert sent.url.path == "/v21.0/1203948576102938"
    query = parse_qs(sent.url.query.decode())
    assert set(query["fields"][0].split(",")) == {
        "created_time",
        "id",
        "ad_id",
        "ad_name",
        "adset_id",
        "adset_name",
        "campaign_id",
        "campaign_name",
        "form_id",
        "is_organic",
        "platform",
        "field_data",
        "custom_disclaimer_responses",
    }
    assert query["fields"][0] == LEAD_FIELDS
    assert sent.headers["authorization"] == f"Bearer {PAGE_TOKEN}"
    assert "access_token" not in query
    assert PAGE_TOKEN not in str(sent.url)
    expected_proof = hmac.new(APP_SECRET.encode(), PAGE_TOKEN.encode(), hashlib.sha256)
    assert query["appsecret_proof"] == [expected_proof.hexdigest()]


async def test_fetch_uses_the_configured_base_url_and_version() -> None:
    fake = FakeGraphAPI(stored_leads(), version="v22.0")
    transport = httpx.MockTransport(fake)
    connector = make_connector(
        api_base_url="https://graph.stub.test/", graph_version="v22.0", send_appsecret_proof=False
    )
    async with httpx.AsyncClient(transport=transport) as client:
        fetched = await connector.fetch(notification_for(lead("us_minimal_work_email")), client)
    assert fetched.id == "4857610293847561"
    (sent,) = fake.requests
    assert str(sent.url).startswith("https://graph.stub.test/v22.0/4857610293847561?")
    assert "appsecret_proof" not in parse_qs(sent.url.query.decode())


def _graph_error(code: int, status: int = 400, **extra: Any) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"error": {"message": "x", "type": "OAuthException", "code": code, **extra}}
        return httpx.Response(status, json=body)

    return httpx.MockTransport(handler)


def _setup(fake: FakeGraphAPI, case: str) -> dict[str, Any]:
    """Mutate the fake for one failure case; return connector overrides."""
    if case == "wrong-token":
        fake.token = "EAAGsomeOtherToken"
    elif case == "expired-token":
        fake.expired = True
    elif case.startswith("throttled-"):
        fake.throttle_code = int(case.removeprefix("throttled-"))
    elif case == "outage":
        fake.outage = True
    elif case == "bad-proof":
        return {"secret": "not-the-app-secret"}
    return {}


@pytest.mark.parametrize(
    ("case", "lead_id", "error"),
    [
        pytest.param("wrong-token", "1203948576102938", AuthDeliveryError, id="190-wrong-token"),
        pytest.param("expired-token", "1203948576102938", AuthDeliveryError, id="190-463-expired"),
        pytest.param("throttled-4", "1203948576102938", TransientDeliveryError, id="4-app-limit"),
        pytest.param("throttled-17", "1203948576102938", TransientDeliveryError, id="17-user"),
        pytest.param("throttled-32", "1203948576102938", TransientDeliveryError, id="32-page"),
        pytest.param("throttled-613", "1203948576102938", TransientDeliveryError, id="613"),
        pytest.param("throttled-80005", "1203948576102938", TransientDeliveryError, id="80005"),
        pytest.param("outage", "1203948576102938", TransientDeliveryError, id="500-outage"),
        pytest.param("unknown-lead", "9999999999999999", PermanentDeliveryError, id="100-unknown"),
        pytest.param("bad-proof", "1203948576102938", PermanentDeliveryError, id="100-bad-proof"),
    ],
)
async def test_fetch_maps_graph_errors(case: str, lead_id: str, error: type[Exception]) -> None:
    fake = FakeGraphAPI(stored_leads())
    connector = make_connector(**_setup(fake, case))
    event = SourceEvent(type="leadgen", id=lead_id, occurred_at=AT, data={"leadgen_id": lead_id})
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake)) as client:
        with pytest.raises(error) as caught:
            await connector.fetch(event, client)
    message = str(caught.value)
    assert PAGE_TOKEN not in message
    assert "fbtrace_id" in message or "#" in message
    assert lead_id in message


@pytest.mark.parametrize(
    ("transport", "error"),
    [
        pytest.param(_graph_error(190, status=401), AuthDeliveryError, id="401"),
        pytest.param(_graph_error(200), AuthDeliveryError, id="200-permission"),
        pytest.param(
            httpx.MockTransport(lambda r: httpx.Response(503, text="<html>down</html>")),
            TransientDeliveryError,
            id="503-html",
        ),
        pytest.param(
            httpx.MockTransport(lambda r: httpx.Response(404, text="Not Found")),
            PermanentDeliveryError,
            id="404",
        ),
        pytest.param(
            httpx.MockTransport(lambda r: httpx.Response(200, text="not json")),
            TransientDeliveryError,
            id="200-not-json",
        ),
    ],
)
async def test_fetch_maps_http_failures(
    transport: httpx.MockTransport, error: type[Exception]
) -> None:
    event = SourceEvent(type="leadgen", id="1203948576102938", occurred_at=AT, data={})
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(error):
            await make_connector().fetch(event, client)


async def test_fetch_passes_retry_after_on() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"error": {"message": "(#4) Application request limit reached", "code": 4}}
        return httpx.Response(400, json=body, headers={"Retry-After": "120"})

    event = SourceEvent(type="leadgen", id="1203948576102938", occurred_at=AT, data={})
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(TransientDeliveryError) as caught:
            await make_connector().fetch(event, client)
    assert caught.value.retry_after == 120


async def test_fetch_network_failure_is_transient() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    event = SourceEvent(type="leadgen", id="1203948576102938", occurred_at=AT, data={})
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(TransientDeliveryError):
            await make_connector().fetch(event, client)


async def test_fetch_refuses_an_id_that_is_not_a_graph_id() -> None:
    fake = FakeGraphAPI(stored_leads())
    event = SourceEvent(type="leadgen", id="me/accounts", occurred_at=AT, data={})
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake)) as client:
        with pytest.raises(PermanentDeliveryError):
            await make_connector().fetch(event, client)
    assert fake.requests == []


# --- mapping -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mappings() -> MappingSet:
    return MappingSet.load(MAPPINGS, default_region="US")


def bundle_for(mappings: MappingSet, name: str) -> Bundle:
    data = lead(name)
    mapper = mappings.get("leadgen")
    assert mapper is not None
    event = SourceEvent(type="leadgen", id=data["id"], occurred_at=AT, data=data)
    return mapper.map(event, connector=FacebookLeadAdsConnector.name)


def test_every_event_type_has_a_mapping(mappings: MappingSet) -> None:
    assert mappings.events == list(FacebookLeadAdsConnector.events)


@pytest.mark.parametrize("name", LEADS)
def test_every_fixture_maps_to_a_contact_and_an_activity(mappings: MappingSet, name: str) -> None:
    bundle = bundle_for(mappings, name)
    (contact,) = bundle.contacts
    (activity,) = bundle.activities
    assert contact.external_ids == {"facebook_lead_ads": lead(name)["id"]}
    assert contact.lifecycle_stage == "lead"
    assert contact.tags == frozenset({"facebook-lead-ads"})
    assert contact.lead_source is not None and contact.lead_source.source == "facebook"
    assert activity.kind == "lead_ad_submitted"
    assert activity.occurred_at == datetime.fromisoformat(lead(name)["created_time"])
    assert activity.occurred_at.utcoffset() is not None
    assert activity.metadata["form_id"] == lead(name)["form_id"]
    assert bundle.deals == ()


def test_japanese_lead(mappings: MappingSet) -> None:
    bundle = bundle_for(mappings, "jp_instagram_full_name")
    (contact,) = bundle.contacts
    assert contact.email == "yuki.sato@example.co.jp"
    assert contact.phone == "+819012345678"  # national 090-… with the form's country JP
    assert (contact.first_name, contact.last_name) == ("佐藤由紀", None)
    assert contact.address is not None
    assert (contact.address.city, contact.address.postal_code, contact.address.country) == (
        "大阪市",
        "530-0001",
        "JP",
    )
    assert contact.lead_source is not None
    assert contact.lead_source.medium == "paid_social"
    assert contact.lead_source.campaign == "春のウェビナー 2025"
    assert contact.lead_source.content == "Spring Webinar \u2013 JP"
    assert contact.lead_source.term == "Osaka 25-44"
    assert contact.custom_fields == {
        "facebook_form_id": "874512309876543",
        "facebook_ad_id": "120210000000451201",
        "facebook_campaign_id": "120210000000451000",
    }
    assert bundle.companies == ()
    (activity,) = bundle.activities
    assert activity.occurred_at == datetime(2025, 1, 15, 10, 20, 30, tzinfo=UTC)
    assert activity.subject is not None and "Spring Webinar \u2013 JP" in activity.subject
    assert activity.metadata["platform"] == "ig"
    assert activity.metadata["ad_id"] == "120210000000451201"


def test_indonesian_organic_mononym(mappings: MappingSet) -> None:
    bundle = bundle_for(mappings, "id_organic_mononym")
    (contact,) = bundle.contacts
    assert contact.email == "wulandari.putri@gmail.com"
    assert contact.phone == "+6281234567890"
    assert (contact.first_name, contact.last_name) == ("Wulandari", None)
    assert contact.company == "PT Sinar Mekar Abadi"
    assert contact.job_title == "Manajer Pemasaran"
    assert contact.address is not None and contact.address.country == "ID"
    assert contact.lead_source is not None
    assert contact.lead_source.medium == "organic"
    assert contact.lead_source.campaign is None
    assert contact.custom_fields == {"facebook_form_id": "874512309876544"}
    (company,) = bundle.companies
    assert company.name == "PT Sinar Mekar Abadi"
    (activity,) = bundle.activities
    assert activity.subject == "Facebook lead form submitted"
    assert activity.metadata["is_organic"] is True
    assert "ad_id" not in activity.metadata


def test_separate_first_and_last_name_fields(mappings: MappingSet) -> None:
    (contact,) = bundle_for(mappings, "gb_first_last_custom_questions").contacts
    assert (contact.first_name, contact.last_name) == ("Siobhán", "O'Connor")
    assert contact.email == "siobhan.oconnor@brightwater.co.uk"
    assert contact.phone == "+447700900123"
    assert contact.address is not None
    assert contact.address.line1 == "12 Harbour Row"
    assert contact.address.postal_code == "BS1 5TT"
    assert contact.marketing_consent == "unknown"  # consent checkboxes are form-specific


def test_multi_word_first_and_last_names(mappings: MappingSet) -> None:
    (contact,) = bundle_for(mappings, "us_first_last_national_phone").contacts
    assert (contact.first_name, contact.last_name) == ("Mary Ann", "van der Berg")
    assert contact.email == "maryann.vdberg@example.com"
    assert contact.phone == "+14155550142"  # "(415) 555-0142" with the form's country US
    assert contact.address is not None
    assert (contact.address.region, contact.address.postal_code) == ("CA", "94103")
    assert contact.address.country == "US"


def map_lead(mappings: MappingSet, data: dict[str, Any]) -> Bundle:
    mapper = mappings.get("leadgen")
    assert mapper is not None
    event = SourceEvent(type="leadgen", id=data["id"], occurred_at=AT, data=data)
    return mapper.map(event, connector=FacebookLeadAdsConnector.name)


def set_answer(data: dict[str, Any], name: str, value: str | None) -> None:
    """Replace (or with None remove) the answer to question `name`."""
    fields = [f for f in data["field_data"] if f["name"] != name]
    if value is not None:
        fields.insert(0, {"name": name, "values": [value]})
    data["field_data"] = fields


def test_cjk_separate_first_and_last_name_fields_are_not_swapped(mappings: MappingSet) -> None:
    data = lead("jp_instagram_full_name")
    set_answer(data, "full_name", None)
    set_answer(data, "first_name", "由紀")
    set_answer(data, "last_name", "佐藤")
    (contact,) = map_lead(mappings, data).contacts
    assert (contact.first_name, contact.last_name) == ("由紀", "佐藤")


@pytest.mark.parametrize(
    ("first", "last"),
    [
        pytest.param("Siobhán", "Ó", id="one-letter-surname"),
        pytest.param("Ana", "García López", id="two-word-surname-without-particles"),
        pytest.param("Budi", "Santoso", id="one-word-surname"),
    ],
)
def test_separate_surnames_are_kept_as_typed(mappings: MappingSet, first: str, last: str) -> None:
    data = lead("gb_first_last_custom_questions")
    set_answer(data, "first_name", first)
    set_answer(data, "last_name", f"  {last} ")
    (contact,) = map_lead(mappings, data).contacts
    assert (contact.first_name, contact.last_name) == (first, last)


def test_full_name_is_split_into_both_parts(mappings: MappingSet) -> None:
    data = lead("id_organic_mononym")
    set_answer(data, "full_name", "Ludwig van Beethoven")
    (contact,) = map_lead(mappings, data).contacts
    assert (contact.first_name, contact.last_name) == ("Ludwig", "van Beethoven")
    set_answer(data, "full_name", "山田 太郎")  # CJK with a space: family name first
    (contact,) = map_lead(mappings, data).contacts
    assert (contact.first_name, contact.last_name) == ("太郎", "山田")


def test_separate_fields_win_over_a_full_name(mappings: MappingSet) -> None:
    # A form asking both kinds: the two parts come from the separate answers only.
    data = lead("us_first_last_national_phone")
    set_answer(data, "full_name", "Maryann Vanderberg")
    (contact,) = map_lead(mappings, data).contacts
    assert (contact.first_name, contact.last_name) == ("Mary Ann", "van der Berg")
    set_answer(data, "last_name", None)  # first_name alone: no surname from the split
    (contact,) = map_lead(mappings, data).contacts
    assert (contact.first_name, contact.last_name) == ("Mary Ann", None)


def test_national_phone_without_a_country_uses_the_configured_default_region() -> None:
    data = lead("us_first_last_national_phone")
    data["field_data"] = [f for f in data["field_data"] if f["name"] != "country"]
    event = SourceEvent(type="leadgen", id=data["id"], occurred_at=AT, data=data)
    with_default = MappingSet.load(MAPPINGS, default_region="US").get("leadgen")
    assert with_default is not None
    (contact,) = with_default.map(event, connector="facebook_lead_ads").contacts
    assert contact.phone == "+14155550142"
    without_default = MappingSet.load(MAPPINGS).get("leadgen")
    assert without_default is not None
    with pytest.raises(MappingError, match=r"contact\.phone"):
        without_default.map(event, connector="facebook_lead_ads")


def test_minimal_lead_with_only_a_work_email(mappings: MappingSet) -> None:
    bundle = bundle_for(mappings, "us_minimal_work_email")
    (contact,) = bundle.contacts
    assert contact.email == "dana.whitfield@acme-robotics.com"
    assert contact.phone is None
    assert contact.first_name is None and contact.last_name is None
    assert contact.address is None
    assert contact.lead_source is not None and contact.lead_source.medium == "paid_social"
    (activity,) = bundle.activities
    assert activity.subject == "Facebook lead form submitted"


def test_documented_overrides_for_custom_questions_and_consent() -> None:
    overrides = {
        "leadgen": {
            "fields": {
                "contact.custom_fields.monthly_budget": (
                    "field_data[name=what_is_your_monthly_budget?].values[0]"
                ),
                "contact.custom_fields.products": {
                    "path": "field_data[name=which_products_interest_you?].values",
                    "transforms": [{"join": ", "}],
                },
                "contact.marketing_consent": {
                    "path": "custom_disclaimer_responses[checkbox_key=marketing_optin].is_checked",
                    "transforms": [
                        "bool",
                        {"lookup": {"table": {True: "opted_in", False: "opted_out"}}},
                    ],
                },
            }
        }
    }
    mappings = MappingSet.load(MAPPINGS, overrides=overrides, default_region="US")
    (gb,) = bundle_for(mappings, "gb_first_last_custom_questions").contacts
    assert gb.custom_fields["monthly_budget"] == "£5,000 - £10,000"
    assert gb.custom_fields["products"] == "CRM sync, Lead scoring"
    assert gb.marketing_consent == "opted_in"
    (us,) = bundle_for(mappings, "us_first_last_national_phone").contacts
    assert us.marketing_consent == "opted_out"  # is_checked "" = box left unticked
    (jp,) = bundle_for(mappings, "jp_instagram_full_name").contacts
    assert jp.marketing_consent == "unknown"


async def test_notification_to_bundle_end_to_end(mappings: MappingSet) -> None:
    data = lead("gb_first_last_custom_questions")
    request = FacebookLeadAdsConnector.sample_request("leadgen", data, APP_SECRET, at=AT)
    connector = make_connector()
    assert connector.handshake(request) is None
    connector.verify(request)
    (event,) = connector.parse(request)
    fake = FakeGraphAPI(stored_leads())
    async with httpx.AsyncClient(transport=httpx.MockTransport(fake)) as client:
        fetched = await connector.fetch(event, client)
    mapper = mappings.get(fetched.type)
    assert mapper is not None
    bundle = mapper.map(fetched, connector=connector.name)
    assert bundle.event_id == "3948576102938475"
    (contact,) = bundle.contacts
    assert contact.lead_source is not None
    assert contact.lead_source.campaign == "Q4 Demo Requests UK"
    assert len(bundle.activities) == 1


# --- the hub's conformance suite ---------------------------------------------------------


class TestConformance(ConnectorConformance):
    connector = FacebookLeadAdsConnector
    settings_values: ClassVar[dict[str, Any]] = {
        "verify_token": VERIFY_TOKEN,
        "page_access_token": PAGE_TOKEN,
    }
