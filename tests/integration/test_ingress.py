"""The ingress over real HTTP: precise rejections, handshakes, health, metrics, fuzzing."""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.runtime import keys
from tests.integration.conftest import CONFIG, SECRETS, now

pytestmark = pytest.mark.integration

SMALL = CONFIG.replace("hub:\n  default_region: US\n", "hub:\n  default_region: US\n  max_body_bytes: 2048\n")


@pytest.fixture
def ingress(make_stack):
    stack = make_stack(SMALL)
    stack.start_ingress()
    return stack


def signed_shopify(body: bytes, secret: str = SECRETS["shop"]) -> dict[str, str]:
    import base64

    digest = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return {
        "X-Shopify-Hmac-Sha256": digest,
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Webhook-Id": "wh-1",
        "Content-Type": "application/json",
    }


def test_rejections_are_precise_and_store_nothing(ingress):
    base = ingress.base
    cases = [
        (httpx.post(f"{base}/hooks/nope", content=b"{}"), 404, "unknown_connector"),
        (httpx.post(f"{base}/hooks/shop", content=b"{}"), 401, "invalid_signature"),
        (
            httpx.post(f"{base}/hooks/shop", content=b"{}", headers=signed_shopify(b"{}", "wrong")),
            401,
            "invalid_signature",
        ),
        (
            httpx.post(f"{base}/hooks/shop", content=b"x" * 4096, headers=signed_shopify(b"x" * 4096)),
            413,
            "payload_too_large",
        ),
        (
            httpx.post(f"{base}/hooks/shop", content=b"not json", headers=signed_shopify(b"not json")),
            400,
            "unparseable_body",
        ),
        (
            httpx.post(
                f"{base}/hooks/shop",
                content=b"a=b",
                headers={**signed_shopify(b"a=b"), "Content-Type": "application/x-www-form-urlencoded"},
            ),
            415,
            "unparseable_body",
        ),
        (httpx.get(f"{base}/hooks/shop"), 405, "method_not_allowed"),
    ]
    for response, status, error in cases:
        assert response.status_code == status, response.text
        body = response.json()
        assert body["error"] == error and body["detail"]
        assert SECRETS["shop"] not in response.text and "Traceback" not in response.text
    assert ingress.log.counts()["received"] == 0 and ingress.client.llen("dramatiq:events") == 0
    metrics = httpx.get(f"{base}/metrics").text
    assert 'crmhub_rejected_total{reason="signature"} 2.0' in metrics
    assert 'crmhub_rejected_total{reason="too_large"} 1.0' in metrics


def test_accepted_webhook_is_stored_and_queued_before_the_200(ingress):
    body = json.dumps({"id": 5, "email": "a@b.io", "currency": "EUR", "total_price": "1"}).encode()
    response = httpx.post(f"{ingress.base}/hooks/shop", content=body, headers=signed_shopify(body))
    assert response.status_code == 200
    (event,) = response.json()["events"]
    record = ingress.log.get(event["id"])
    assert record.status == "received" and record.body == body and record.source_id == "wh-1"
    assert "x-shopify-hmac-sha256" in record.headers and "authorization" not in record.headers
    assert ingress.client.llen("dramatiq:events") == 1
    again = httpx.post(f"{ingress.base}/hooks/shop", content=body, headers=signed_shopify(body))
    assert again.json()["events"][0] == {**event, "duplicate": True}
    assert ingress.client.llen("dramatiq:events") == 1


def test_a_flushed_script_cache_costs_one_reload_not_an_event(ingress):
    """The store script is sent as a bare EVALSHA; after SCRIPT FLUSH (a server restart
    without it) the ingress loads it again and the webhook is still stored, once."""
    ingress.client.script_flush()
    body = json.dumps({"id": 6, "email": "c@d.io", "currency": "EUR", "total_price": "1"}).encode()
    headers = {**signed_shopify(body), "X-Shopify-Webhook-Id": "wh-flush"}
    response = httpx.post(f"{ingress.base}/hooks/shop", content=body, headers=headers)
    assert response.status_code == 200, response.text
    (event,) = response.json()["events"]
    assert ingress.log.get(event["id"]).source_id == "wh-flush"
    assert ingress.client.llen("dramatiq:events") == 1
    assert ingress.client.zcard(keys.events_index()) == 1


def test_facebook_handshake(ingress):
    ok = httpx.get(
        f"{ingress.base}/hooks/leads",
        params={"hub.mode": "subscribe", "hub.verify_token": "vtoken", "hub.challenge": "1158201444"},
    )
    assert ok.status_code == 200 and ok.text == "1158201444"
    bad = httpx.get(
        f"{ingress.base}/hooks/leads",
        params={"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"},
    )
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_signature"


def test_health_readiness_and_metrics(ingress):
    assert httpx.get(f"{ingress.base}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{ingress.base}/readyz").json() == {"status": "ready"}
    text = httpx.get(f"{ingress.base}/metrics").text
    for name in (
        "crmhub_received_total",
        "crmhub_delivered_total",
        "crmhub_dead_total",
        "crmhub_queue_depth",
        "crmhub_end_to_end_latency_seconds_bucket",
        "crmhub_failed_total",
    ):
        assert name in text


header_names = st.sampled_from(
    [
        "content-type",
        "x-shopify-hmac-sha256",
        "x-shopify-topic",
        "x-hub-signature-256",
        "calendly-webhook-signature",
        "typeform-signature",
        "intuit-signature",
        "content-encoding",
        "x-random",
    ]
)
header_values = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    connector=st.sampled_from(["shop", "forms", "cal", "books", "leads", "nope", "x" * 70]),
    method=st.sampled_from(["POST", "PUT", "GET"]),
    body=st.binary(max_size=3000)
    | st.builds(
        lambda d: json.dumps(d).encode(), st.dictionaries(st.text(max_size=8), st.integers(), max_size=5)
    ),
    headers=st.dictionaries(header_names, header_values.map(str.strip), max_size=5),
    query=st.dictionaries(
        st.sampled_from(["hub.mode", "hub.challenge", "hub.verify_token", "x"]), header_values, max_size=3
    ),
)
def test_fuzzed_requests_never_get_a_500(ingress, connector, method, body, headers, query):
    with httpx.Client(timeout=10) as client:
        response = client.request(
            method, f"{ingress.base}/hooks/{connector}", content=body, headers=headers, params=query
        )
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        payload = response.json()
        assert set(payload) == {"error", "detail"}


def test_server_restart_loses_no_acknowledged_event(make_stack, tmp_path_factory):
    from connectors.shopify import ShopifyConnector
    from hub.runtime.embedded import EmbeddedServer

    srv = EmbeddedServer(tmp_path_factory.mktemp("restart"))
    url = srv.start()
    stack = make_stack()
    stack.url = url
    stack.env["REDIS_URL"] = url
    stack.start_ingress()
    ids = []
    for n in range(300):
        data = {
            "id": n + 1,
            "email": f"p{n}@example.com",
            "currency": "EUR",
            "total_price": "5",
            "created_at": "2026-01-01T00:00:00Z",
        }
        response = stack.post(
            "shop", ShopifyConnector.sample_request("orders/create", data, SECRETS["shop"], at=now())
        )
        assert response.status_code == 200
        ids.extend(e["id"] for e in response.json()["events"])
    import time

    time.sleep(1.5)  # appendfsync everysec: acknowledged writes reach the disk within ~1 s
    srv.kill()  # SIGKILL: no shutdown flush
    srv2 = EmbeddedServer(srv.data_dir)
    assert srv2.start() == url
    try:
        stack.start_worker()
        assert set(stack.wait_for(ids, timeout=60).values()) == {"delivered"}
        assert stack.crm().counts()["contacts"] == 300
    finally:
        stack.stop_all()
        srv2.stop()


def _order(n: int) -> dict:
    return {"id": n, "email": f"q{n}@example.com", "currency": "EUR", "total_price": "5"}


def test_over_the_queue_depth_the_ingress_answers_503_with_retry_after(make_stack):
    from connectors.shopify import ShopifyConnector

    stack = make_stack(CONFIG.replace("hub:\n", "hub:\n  max_queue_depth: 3\n  durability: strict\n"))
    stack.start_ingress()
    for n in range(3):
        request = ShopifyConnector.sample_request("orders/create", _order(n), SECRETS["shop"], at=now())
        assert stack.post("shop", request).status_code == 200  # strict: after the AOF fsync
    request = ShopifyConnector.sample_request("orders/create", _order(9), SECRETS["shop"], at=now())
    response = stack.post("shop", request)
    assert response.status_code == 503 and response.headers["Retry-After"] == "30"
    assert response.json()["error"] == "unavailable" and "max_queue_depth" in response.json()["detail"]
    assert stack.log.counts()["received"] == 3  # the refused one was not stored


def test_with_redis_down_the_ingress_answers_503_and_recovers(make_stack, tmp_path_factory):
    from connectors.shopify import ShopifyConnector
    from hub.runtime.embedded import EmbeddedServer

    srv = EmbeddedServer(tmp_path_factory.mktemp("down"))
    url = srv.start()
    stack = make_stack()
    stack.url, stack.env["REDIS_URL"] = url, url
    stack.start_ingress()
    srv.stop()
    request = ShopifyConnector.sample_request("orders/create", _order(1), SECRETS["shop"], at=now())
    response = stack.post("shop", request)
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert httpx.get(f"{stack.base}/readyz").status_code == 503
    srv2 = EmbeddedServer(srv.data_dir)
    srv2.start()
    try:
        response = stack.post("shop", request)
        assert response.status_code == 200, response.text  # the sender's retry is accepted
    finally:
        stack.stop_all()
        srv2.stop()
