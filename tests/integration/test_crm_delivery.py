"""Real workers delivering to the fake CRMs over HTTP on loopback, through the shared rate
governor, batching and receipts, while the CRM fails: every contact and deal exactly once."""

from __future__ import annotations

import pytest

from hub.destinations.hubspot.fake import DEFAULT_TOKEN, FakeHubSpot
from hub.testing.fakeserver import FakeServer
from tests.integration.conftest import CONFIG
from tests.integration.test_pipeline import post_orders

pytestmark = pytest.mark.integration

HUBSPOT = (
    CONFIG.split("destinations:")[0]
    + """\
destinations:
  crm:
    type: hubspot
    access_token: {token}
    base_url: {crm}
flows:
  - name: orders to hubspot
    when: shop.orders/create
    do: [upsert_contact, upsert_deal, add_activity]
    to: crm
"""
)


def test_hubspot_exactly_once_under_faults_and_a_rate_limit(make_stack):
    fake = FakeHubSpot(requests_per_10s=100, fail_rate=0.05, commit_then_fail_rate=0.05, seed=7)
    server = FakeServer(fake).start()
    try:
        text = HUBSPOT.replace("{token}", DEFAULT_TOKEN).replace("{crm}", server.url)
        stack = make_stack(text)
        stack.start_ingress()
        stack._spawn(
            "worker", "worker", "--config", str(stack.config), "--threads", "4", "--delivery-threads", "64"
        )
        total = 400
        ids = post_orders(stack, range(total))
        statuses = stack.wait_for(ids, timeout=180, statuses=("delivered", "dead"))
        assert set(statuses.values()) == {"delivered"}, {s for s in statuses.values()}
        emails = [c.get("email") for c in fake.contacts]
        assert len(emails) == total and len(set(emails)) == total  # each contact exactly once
        keys = [d.get("crmhub_external_id") for d in fake.deals]
        assert len(keys) == total and len(set(keys)) == total  # each deal exactly once
        calls = sum(fake.calls.values())
        print(
            f"\n{total} orders: {calls} API calls ({calls / total:.2f} per order), "
            f"{fake.rate_limited} answered 429"
        )
        assert calls / total < 1.0  # batching: far fewer calls than objects
    finally:
        server.stop()


OTHER_CRMS = {
    "activecampaign": (
        "hub.destinations.activecampaign.fake",
        "FakeActiveCampaign",
        {"budget": (100, 10.0)},
        '    api_token: fake-ac-token\n    base_url: {crm}/api/3\n    deal_pipeline: "{pipeline}"\n',
    ),
    "pipedrive": (
        "hub.destinations.pipedrive.fake",
        "FakePipedrive",
        {"burst": (20, 2.0), "search_burst": None},
        "    api_token: test-token\n    base_url: {crm}\n    burst_per_2s: 20\n",
    ),
}


@pytest.mark.parametrize("crm", sorted(OTHER_CRMS))
def test_crms_without_upserts_get_each_contact_and_deal_once_under_faults(make_stack, crm):
    import importlib

    module, name, knobs, settings = OTHER_CRMS[crm]
    fake = getattr(importlib.import_module(module), name)(
        fail_rate=0.05, commit_then_fail_rate=0.05, seed=3, **knobs
    )
    if crm == "activecampaign":
        pipeline = fake.add_pipeline("Sales", ["New", "Won"])[0]
    else:  # Pipedrive: deals go to the account's default pipeline unless configured
        pipeline = ""
    server = FakeServer(fake).start()
    try:
        text = HUBSPOT.replace(
            "    type: hubspot\n    access_token: {token}\n    base_url: {crm}\n",
            f"    type: {crm}\n" + settings,
        ).replace("{crm}", server.url)
        text = text.replace("{pipeline}", str(pipeline))
        stack = make_stack(text)
        stack.start_ingress()
        stack._spawn(
            "worker", "worker", "--config", str(stack.config), "--threads", "4", "--delivery-threads", "16"
        )
        total = 40
        ids = post_orders(stack, range(total))
        statuses = stack.wait_for(ids, timeout=240, statuses=("delivered", "dead"))
        dead = [stack.log.get(e).error for e, s in statuses.items() if s == "dead"]
        assert not dead, dead[:3]
        emails = [c.get("email") or (c.get("emails") or [{}])[0].get("value") for c in fake.contacts]
        assert len(set(emails)) == total and len(fake.contacts) == total
        assert len(fake.deals) == total
        print(f"\n{crm}: {total} orders, {sum(fake.calls.values())} calls, {fake.rate_limited} x 429")
    finally:
        server.stop()
