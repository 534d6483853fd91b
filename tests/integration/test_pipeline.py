"""End to end over real processes: signed webhook -> ingress -> Redis -> worker -> local CRM."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from hub.connector.base import SourceEvent, WebhookConnector
from hub.demo.stub import ProviderStub
from hub.settings import load_config
from hub.testing import fixture_cases
from tests.integration.conftest import CONFIG, SECRETS, now

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def order(n: int, **extra):
    """A Shopify order with its own buyer, so each one is a distinct contact and deal."""
    return {
        "id": 9_000_000 + n,
        "name": f"#{n}",
        "email": f"  Buyer{n}@Example.COM ",
        "currency": "EUR",
        "total_price": "10.50",
        "financial_status": "paid",
        "created_at": "2026-01-02T10:00:00+01:00",
        "line_items": [{"sku": "T", "title": "Tea", "quantity": 1, "price": "10.50"}],
        **extra,
    }


def post_orders(stack, numbers):
    from connectors.shopify import ShopifyConnector

    ids = []
    for n in numbers:
        request = ShopifyConnector.sample_request("orders/create", order(n), SECRETS["shop"], at=now())
        response = stack.post("shop", request)
        assert response.status_code == 200, response.text
        ids.extend(e["id"] for e in response.json()["events"])
    return ids


def expected_objects(config):
    """Distinct deals and activities the fixtures map to (the CRM must hold exactly these)."""
    deals, activities = set(), set()
    for instance_id, instance in config.connectors.items():
        for event_type, path, data in fixture_cases(instance.cls):
            mapper = instance.mappings.get(event_type)
            bundle = mapper.map(SourceEvent(event_type, path.stem, now(), data), connector=instance_id)
            for deal in bundle.deals:
                deals.add(tuple(sorted(deal.external_ids.items())))
            for activity in bundle.activities:
                activities.add(
                    tuple(sorted(activity.external_ids.items()))
                    or (activity.kind, activity.occurred_at, activity.subject)
                )
    return {"deals": deals, "activities": activities}


def test_every_connector_reaches_the_local_crm_and_duplicates_change_nothing(make_stack):
    stub = ProviderStub().start()
    try:
        stack = make_stack(stub=stub.url)
        config = load_config(stack.config)
        for instance in config.connectors.values():
            cls = instance.cls
            if cls.fetches:
                samples = [(e, d) for e, _, d in fixture_cases(cls)]
                stub.routes.update(cls.stub_routes(samples, instance.settings.model_dump()))
        stack.start_ingress()
        stack.start_worker()
        requests, ids = [], []
        for instance_id, instance in config.connectors.items():
            assert issubclass(instance.cls, WebhookConnector)
            for event_type, path, data in fixture_cases(instance.cls):
                request = instance.cls.sample_request(event_type, data, SECRETS[instance_id], at=now())
                response = stack.post(instance_id, request)
                assert response.status_code == 200, (path, response.text)
                requests.append((instance_id, request))
                ids.extend(e["id"] for e in response.json()["events"])
        statuses = stack.wait_for(ids)
        assert set(statuses.values()) <= {"delivered", "ignored"}, statuses
        assert sum(1 for s in statuses.values() if s == "delivered") >= len(ids) - 2
        crm = stack.crm()
        before = crm.counts()
        emails = {c["email"] for c in crm.contacts()}
        # One contact from each connector's awkward fixtures, normalised:
        assert "hiroshi.tanaka@example.jp" in emails or any(e and e.endswith(".jp") for e in emails)
        assert all(e == e.strip().lower() for e in emails if e)
        assert all(c["phone"] is None or c["phone"].startswith("+") for c in crm.contacts())
        expected = expected_objects(config)
        assert before["deals"] == len(expected["deals"]) and before["activities"] == len(
            expected["activities"]
        )
        assert before["contacts"] >= 15
        # Every sender retries: the same deliveries again are acknowledged, not processed.
        for instance_id, request in requests:
            response = stack.post(instance_id, request)
            assert response.status_code == 200
            assert all(e["duplicate"] for e in response.json()["events"])
        time.sleep(1.0)
        assert crm.counts() == before
        fetched = {path for method, path in stub.requests if method == "GET"}
        assert any(p.startswith("/v3/company/") for p in fetched) and any(
            p.startswith("/v21.0/") for p in fetched
        )
    finally:
        stub.stop()


def test_a_mapping_failure_is_kept_and_replays_after_the_fix(make_stack):
    broken = CONFIG.replace(
        "    secret: shop-secret\n",
        "    secret: shop-secret\n    mappings:\n      orders/create:\n        fields:\n"
        "          deal.currency: {{value: ZZZ}}\n",
    )
    stack = make_stack(broken)
    stack.start_ingress()
    stack.start_worker()
    (event_id,) = post_orders(stack, [1])
    assert stack.wait_for([event_id]) == {event_id: "failed"}
    record = stack.log.get(event_id)
    assert "deal.currency" in record.error and "unknown currency" in record.error
    assert record.body and json.loads(record.body)["id"] == 9_000_001  # the raw request is kept
    assert stack.crm().counts()["deals"] == 0
    # The admin fixes the mapping, restarts the workers and replays the failed event.
    stack.stop("worker")
    stack.config.write_text(CONFIG.format(dir=stack.dir, stub="http://127.0.0.1:9"))
    stack.start_worker()
    from hub.runtime.admin import replay_event

    assert replay_event(stack.client, event_id)
    assert stack.wait_for([event_id], statuses=("delivered", "dead")) == {event_id: "delivered"}
    record = stack.log.get(event_id)
    assert record.attempts == 2 and record.error == ""
    (deal,) = stack.crm().deals()
    assert deal["currency"] == "EUR" and deal["amount"] in ("10.50", "10.5")


def test_sigterm_drains_and_nothing_is_lost(make_stack):
    stack = make_stack()
    stack.start_ingress()
    stack.start_worker()
    ids = post_orders(stack, range(200))
    deadline = time.monotonic() + 60
    while stack.log.counts()["delivered"] < 10 and time.monotonic() < deadline:
        time.sleep(0.02)  # stop it mid-work (not while it still imports: that is not a drain)
    assert stack.stop("worker") == 0  # drains in-flight messages and exits cleanly
    stack.start_worker("worker-2")
    assert set(stack.wait_for(ids, statuses=("delivered",)).values()) == {"delivered"}
    counts = stack.crm().counts()
    assert counts["contacts"] == 200 and counts["deals"] == 200 and counts["activities"] == 200


def test_a_worker_killed_mid_batch_loses_nothing_and_duplicates_nothing(make_stack):
    stack = make_stack()
    stack.start_ingress()
    total = 1500
    ids = post_orders(stack, range(total))
    stack.start_worker("worker-1", threads=8)
    log = stack.log
    deadline = time.monotonic() + 30
    while log.counts()["delivered"] < 100 and time.monotonic() < deadline:
        time.sleep(0.02)
    stack.kill("worker-1")  # SIGKILL the whole process group, mid-batch
    killed_at = time.monotonic()
    assert log.counts()["delivered"] < total, "the worker finished before it could be killed"
    stack.start_worker("worker-2", threads=8)
    statuses = stack.wait_for(ids, timeout=90, statuses=("delivered",))
    recovered_after = time.monotonic() - killed_at
    assert set(statuses.values()) == {"delivered"}
    counts = stack.crm().counts()
    assert counts["contacts"] == total and counts["deals"] == total and counts["activities"] == total
    print(f"\nall {total} delivered {recovered_after:.1f} s after the SIGKILL")
    # Timing is reported, not asserted tightly (heartbeat 15 s + maintenance 0.5 s + backlog):
    assert recovered_after < 120


def test_scheduler_polls_a_connector_and_its_events_reach_the_crm(make_stack):
    cdc = json.loads(
        (ROOT / "connectors/quickbooks/fixtures/cdc/customers_japanese_and_mononym.json").read_text()
    )
    stub = ProviderStub({"/v3/company/4620816365178003999/cdc": cdc}).start()
    try:
        config = CONFIG.replace(
            "destinations:",
            '  poll-books:\n    type: quickbooks_cdc\n    realm_id: "4620816365178003999"\n'
            "    api_base_url: {stub}\n    client_id: cid\n    client_secret: cs\n    refresh_token: rt\n"
            "    access_token: at\n    poll_interval: 1\ndestinations:",
        )
        stack = make_stack(config, stub=stub.url)
        stack.start_worker()
        stack._spawn("scheduler", "scheduler", "--config", str(stack.config))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and stack.log.counts()["delivered"] < 2:
            time.sleep(0.2)
        assert stack.log.counts()["delivered"] == 2, stack.log.counts()
        time.sleep(2.5)  # more polls ran; the same objects are deduplicated, not stored again
        assert stack.log.counts()["received"] == 0 and stack.log.counts()["delivered"] == 2
        polls = [p for m, p in stub.requests if p.endswith("/cdc")]
        assert len(polls) >= 2
        assert stack.crm().counts()["contacts"] == 2
    finally:
        stub.stop()
