"""The delivery layer against a real Redis: governor, governed transport, batcher, bulk
splitting, receipts, and pausing a destination whose credentials are refused."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

import httpx
import pytest
import redis

from hub.canonical import Activity, Company, Contact, Deal
from hub.delivery.batcher import Batcher
from hub.delivery.governor import RateGovernor, RateLimited
from hub.delivery.pause import pause_reason
from hub.delivery.receipts import Receipts
from hub.delivery.transport import GovernedTransport
from hub.delivery.writer import DestinationWriter, split_on_permanent
from hub.destination import Destination, Written
from hub.errors import AuthDeliveryError, PermanentDeliveryError
from hub.flows import Flow
from hub.runtime import keys
from hub.runtime.context import Runtime
from hub.runtime.delivery import deliver
from hub.runtime.processing import delivery_payload
from hub.settings import DestinationInstance, HubConfig

pytestmark = pytest.mark.integration


@pytest.fixture
def client(server):
    c = redis.Redis.from_url(server.url)
    c.flushall()
    yield c
    c.close()


def test_governor_never_exceeds_the_rolling_window_and_reaches_the_budget(client):
    governor = RateGovernor(client, "acct", 10, 1.0, margin=0.02)
    slots: list[int] = []
    lock = threading.Lock()

    def sender():
        for _ in range(5):
            with lock:  # read back exactly the slot this reservation got (Redis clock, ms)
                governor.reserve()
                slots.append(int(client.lindex(keys.rate_log("acct"), 0)))

    threads = [threading.Thread(target=sender) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    slots.sort()
    busiest = max(sum(1 for x in slots if a <= x < a + 1000) for a in slots)
    assert busiest <= 10  # never more than the budget in any rolling second
    assert 2000 <= slots[-1] - slots[0] <= 2200  # 30 requests at 10/s: 10 at once, then two windows


def test_governor_blocks_and_slows_after_a_429_then_refuses_long_waits(client):
    governor = RateGovernor(client, "acct", 100, 10.0, max_wait=1.0)
    governor.penalize(0.3)
    assert 0.25 <= governor.reserve() <= 0.35
    assert governor.stats()["factor"] == pytest.approx(0.7)
    governor.penalize(5.0)
    with pytest.raises(RateLimited) as info:
        governor.reserve()
    assert 4 < info.value.retry_after <= 5.0


def test_governed_transport_resends_after_a_short_429_and_raises_after_a_long_one(client):
    answers = [httpx.Response(429, headers={"Retry-After": "0.2"}), httpx.Response(200, json={"ok": 1})]
    calls = []

    def crm(request):
        calls.append(time.monotonic())
        return answers.pop(0) if answers else httpx.Response(429, headers={"Retry-After": "120"})

    transport = GovernedTransport(httpx.MockTransport(crm), RateGovernor(client, "a", 100, 10.0))
    with httpx.Client(transport=transport, base_url="https://crm.test") as http:
        assert http.get("/x").json() == {"ok": 1}
        assert calls[1] - calls[0] >= 0.19  # waited for Retry-After, did not fail
        with pytest.raises(RateLimited) as info:
            http.get("/y")
    assert info.value.retry_after == 120


def test_batcher_coalesces_many_threads_into_few_bulk_calls():
    sizes = []

    def bulk(items):
        sizes.append(len(items))
        return [item * 2 for item in items]

    batcher = Batcher(bulk, max_size=100, max_wait=0.2)
    results = {}

    def submit(n):
        results[n] = batcher.call(n)

    threads = [threading.Thread(target=submit, args=(n,)) for n in range(250)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batcher.close()
    assert results == {n: n * 2 for n in range(250)}
    assert sum(sizes) == 250 and len(sizes) <= 4 and max(sizes) == 100


def _blocking_bulk(release: threading.Event, sizes: list[int]):
    def bulk(items):
        sizes.append(len(items))
        release.wait(10)
        return list(items)

    return bulk


def _wait_until(predicate, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_behind_a_slow_flush_a_partial_batch_keeps_gathering_instead_of_spending_a_call():
    release, sizes = threading.Event(), []
    batcher = Batcher(_blocking_bulk(release, sizes), max_size=100, max_wait=0.05, max_hold=30)
    try:
        futures = [batcher.submit(n) for n in range(30)]
        _wait_until(lambda: sizes)
        assert sizes == [30]  # the debounce passed: the first partial batch went
        futures += [batcher.submit(n) for n in range(30, 80)]
        time.sleep(0.5)  # ten debounces: still held while the first call runs
        assert sizes == [30]
        release.set()
        assert [f.result(timeout=5) for f in futures] == list(range(80))
        assert sizes == [30, 50]
    finally:
        release.set()
        batcher.close()


def test_a_partial_batch_is_held_at_most_max_hold_behind_a_hung_flush():
    release, sizes = threading.Event(), []
    batcher = Batcher(_blocking_bulk(release, sizes), max_size=100, max_wait=0.05, max_hold=0.3)
    try:
        futures = [batcher.submit(n) for n in range(10)]
        _wait_until(lambda: sizes)
        futures += [batcher.submit(n) for n in range(10, 15)]
        _wait_until(lambda: len(sizes) == 2)
        assert sizes == [10, 5]  # went while the first call still hangs
        release.set()
        assert [f.result(timeout=5) for f in futures] == list(range(15))
    finally:
        release.set()
        batcher.close()


def test_a_batch_refused_for_one_bad_record_is_split_so_the_others_go_through():
    calls = []

    def bulk(items):
        calls.append(len(items))
        if "bad" in items:
            raise PermanentDeliveryError("Property values were not valid: bad")
        return [Written(f"id-{i}") for i in items]

    items = [f"r{n}" for n in range(7)] + ["bad"] + [f"s{n}" for n in range(8)]
    results = split_on_permanent(bulk, items)
    assert [r.id for r in results if isinstance(r, Written)] == [f"id-{i}" for i in items if i != "bad"]
    (failed,) = [r for r in results if not isinstance(r, Written)]
    assert "bad" in str(failed)
    assert len(calls) <= 2 * 4 + 1  # a binary search, not one call per record


class CountingCrm(Destination):
    name = "counting"
    batch_limits = {"contact": 100}

    def __init__(self, settings=None, *, instance_id=None, client=None):
        super().__init__(settings, instance_id=instance_id, client=client)
        self.calls: list[tuple[str, str | None]] = []
        self.fail_auth = False
        self.account = "acct-1"

    def account_key(self):
        return self.account

    def upsert_contact(self, contact: Contact, *, known_id=None) -> str:
        if self.fail_auth:
            raise AuthDeliveryError("401 token revoked")
        self.calls.append(("contact", known_id))
        return known_id or f"c-{contact.email}"

    def upsert_company(self, company: Company, *, known_id=None) -> str:
        return "co"

    def upsert_deal(self, deal: Deal, *, contact_id, company_id, known_id=None) -> str:
        self.calls.append(("deal", known_id))
        return known_id or "d-1"

    def add_activity(self, activity: Activity, *, contact_id, deal_id, known_id=None) -> str:
        self.calls.append(("activity", known_id))
        return "a-1"

    def add_tags(self, contact_id: str, tags: Iterable[str]) -> None:
        return None


def payload(event_id="e1"):
    from hub.canonical import Bundle

    bundle = Bundle(
        connector="shop",
        event_type="orders/create",
        event_id="s",
        mapping_version="v",
        contacts=(Contact(email="ann@example.com"),),
        deals=(Deal(amount="5", currency="EUR", external_ids={"shop": "1001"}),),
        activities=(
            Activity(kind="order_placed", occurred_at="2026-01-01T00:00:00Z", external_ids={"shop": "1001"}),
        ),
    )
    flow = Flow(name="f", when=("*",), actions=("upsert_contact", "upsert_deal", "add_activity"), to="crm")
    return delivery_payload(event_id, int(time.time() * 1000), flow, bundle)


def test_receipts_turn_a_redelivery_into_updates_and_skip_written_activities(client):
    import json

    crm = CountingCrm()
    writer = DestinationWriter(crm, Receipts(client, "crm"))
    first = writer.apply(json.loads(payload()))
    second = writer.apply(json.loads(payload()))
    writer.close()
    assert first == second
    assert crm.calls == [
        ("contact", None),
        ("deal", None),
        ("activity", None),
        ("contact", "c-ann@example.com"),
        ("deal", "d-1"),
    ]


def test_refused_credentials_pause_the_destination_without_using_attempts(client):
    crm = CountingCrm()
    config = HubConfig(
        file="<t>", destinations={"crm": DestinationInstance("crm", "counting", CountingCrm, None)}
    )
    runtime = Runtime(config, client)
    runtime._writers["crm"] = DestinationWriter(crm, Receipts(client, "crm"))
    client.hset(keys.event("e1"), mapping={"status": "mapped", "received_at": 1, "pending": 1})
    crm.fail_auth = True
    deliver(runtime, payload(), 0)
    assert "401 token revoked" in pause_reason(client, "acct-1")
    record = runtime.log.get("e1")
    assert record.status == "failed" and "paused" in record.error
    ((member, _),) = client.zrange(keys.retry_schedule(), 0, -1, withscores=True)
    import dramatiq

    message = dramatiq.Message.decode(member.split(b"\n", 2)[2])
    assert message.args[1] == 0  # no attempt used
    # While paused (the probe slot is taken), deliveries wait without calling the CRM.
    calls = len(crm.calls)
    deliver(runtime, payload(), 0)
    assert len(crm.calls) == calls
    # New credentials = a new account key: delivery resumes at once.
    crm.fail_auth, crm.account = False, "acct-2"
    deliver(runtime, payload(), 0)
    assert runtime.log.get("e1").status == "delivered"
    runtime.close()
