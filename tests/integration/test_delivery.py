"""Delivery semantics against a real Redis: retries with backoff and Retry-After, max age,
dead letters with their final error, replay; and the broker's timed-maintenance contract."""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Iterable

import dramatiq
import pytest
import redis
from dramatiq.brokers.redis import RedisBroker

from hub.canonical import Activity, Bundle, Company, Contact, Deal
from hub.destination import Destination
from hub.errors import PermanentDeliveryError, TransientDeliveryError
from hub.flows import Flow
from hub.runtime import keys
from hub.runtime.admin import dead_letters, replay_dead_letter
from hub.runtime.broker import MaintenanceTicker, TimedMaintenanceRedisBroker
from hub.runtime.context import Runtime
from hub.runtime.delivery import deliver
from hub.runtime.eventlog import EventLog, now_ms
from hub.runtime.processing import delivery_payload
from hub.runtime.retry import Backoff, RetryPump
from hub.settings import DestinationInstance, HubConfig, HubSettings

pytestmark = pytest.mark.integration


class FlakyCrm(Destination):
    """Fails with the queued errors first, then records what it was given."""

    name = "flaky"
    errors: list[Exception] = []
    written: list[str] = []

    def upsert_contact(self, contact: Contact, *, known_id=None) -> str:
        if FlakyCrm.errors:
            raise FlakyCrm.errors.pop(0)
        FlakyCrm.written.append(contact.email or "")
        return "c1"

    def upsert_company(self, company: Company, *, known_id=None) -> str:
        return "co1"

    def upsert_deal(self, deal: Deal, *, contact_id, company_id, known_id=None) -> str:
        return "d1"

    def add_activity(self, activity: Activity, *, contact_id, deal_id, known_id=None) -> str:
        return "a1"

    def add_tags(self, contact_id: str, tags: Iterable[str]) -> None:
        return None


@pytest.fixture
def runtime(server):
    client = redis.Redis.from_url(server.url)
    client.flushall()
    FlakyCrm.errors, FlakyCrm.written = [], []
    config = HubConfig(
        file="<test>",
        hub=HubSettings(max_age_hours=1),
        destinations={"crm": DestinationInstance("crm", "flaky", FlakyCrm, None)},
    )
    rt = Runtime(config, client, backoff=Backoff(base=0.05, cap=0.2))
    yield rt
    client.close()


def stored_event(rt: Runtime, received_at: int | None = None) -> tuple[str, str]:
    event_id = "evt1"
    received = received_at or now_ms()
    rt.client.hset(
        keys.event(event_id),
        mapping={
            "status": "mapped",
            "received_at": received,
            "updated_at": received,
            "connector": "shop",
            "pending": 1,
        },
    )
    bundle = Bundle(
        connector="shop",
        event_type="orders/create",
        event_id="s1",
        mapping_version="v",
        contacts=(Contact(email="a@b.io"),),
    )
    flow = Flow(name="f", when=("shop.*",), actions=("upsert_contact",), to="crm")
    return event_id, delivery_payload(event_id, received, flow, bundle)


def retry_members(rt: Runtime) -> list[tuple[bytes, float]]:
    return rt.client.zrange(keys.retry_schedule(), 0, -1, withscores=True)


def test_transient_failure_is_retried_honouring_retry_after_then_delivered(runtime):
    event_id, payload = stored_event(runtime)
    FlakyCrm.errors = [TransientDeliveryError("429 from the CRM", retry_after=2.0)]
    before = now_ms()
    deliver(runtime, payload, 0)
    record = runtime.log.get(event_id)
    assert record.status == "failed" and "429 from the CRM" in record.error
    ((member, due),) = retry_members(runtime)
    assert due - before >= 2000  # never earlier than the server's Retry-After
    assert member.startswith(b"deliver.crm\n")
    # When due, the pump moves it back onto the destination's queue, atomically.
    runtime.client.zadd(keys.retry_schedule(), {member: now_ms() - 1})
    assert RetryPump(runtime.client).pump_once() == 1
    assert runtime.client.llen("dramatiq:deliver.crm") == 1 and retry_members(runtime) == []
    message = dramatiq.Message.decode(runtime.client.hvals("dramatiq:deliver.crm.msgs")[0])
    assert message.actor_name == "deliver.crm" and message.args[1] == 1  # attempt counted
    deliver(runtime, message.args[0], message.args[1])
    assert runtime.log.get(event_id).status == "delivered" and FlakyCrm.written == ["a@b.io"]


def test_permanent_failure_is_dead_lettered_with_its_reason_and_replayable(runtime):
    event_id, payload = stored_event(runtime)
    FlakyCrm.errors = [PermanentDeliveryError("property 'budget' does not exist")]
    deliver(runtime, payload, 0)
    assert runtime.log.get(event_id).status == "dead"
    (item,) = dead_letters(runtime.client)
    assert item["event_id"] == event_id and item["destination"] == "crm"
    assert "property 'budget' does not exist" in item["reason"]
    assert retry_members(runtime) == []  # never retried
    assert replay_dead_letter(runtime.client, item["id"])
    assert dead_letters(runtime.client) == [] and runtime.log.get(event_id).status == "mapped"
    message = dramatiq.Message.decode(runtime.client.hvals("dramatiq:deliver.crm.msgs")[0])
    deliver(runtime, message.args[0], message.args[1])
    assert runtime.log.get(event_id).status == "delivered"


def test_past_max_age_a_transient_failure_goes_to_the_dead_letters(runtime):
    event_id, payload = stored_event(runtime, received_at=now_ms() - 2 * 3600 * 1000)
    FlakyCrm.errors = [TransientDeliveryError("503")]
    deliver(runtime, payload, 7)
    (item,) = dead_letters(runtime.client)
    assert "gave up after 8 attempts" in item["reason"] and "503" in item["reason"]
    assert runtime.log.get(event_id).status == "dead"


def test_unexpected_errors_are_retried_not_lost(runtime):
    event_id, payload = stored_event(runtime)
    FlakyCrm.errors = [OSError("disk hiccup")]
    deliver(runtime, payload, 0)
    assert len(retry_members(runtime)) == 1
    assert "OSError: disk hiccup" in runtime.log.get(event_id).error


def test_backoff_grows_with_jitter_caps_and_respects_retry_after():
    backoff = Backoff(base=1, cap=60)
    delays = [backoff.delay(n) for n in range(10)]
    assert all(0.5 * min(60, 2**n) <= d <= min(60, 2**n) for n, d in enumerate(delays))
    assert backoff.delay(0, retry_after=30) >= 30


def test_timed_maintenance_contract():
    # The private hook we override must still be what dramatiq's dispatch consults.
    assert "_should_do_maintenance" in inspect.getsource(RedisBroker._dispatch)
    broker = TimedMaintenanceRedisBroker(client=redis.Redis(), heartbeat_timeout=15_000)
    assert broker._should_do_maintenance("fetch") == 0  # never on dramatiq's random roll
    assert broker._should_do_maintenance("enqueue") == 0
    seen = []
    broker._dispatch = lambda command: lambda *a: seen.append(broker._should_do_maintenance(command))
    broker.maintain("events")
    assert seen == [1]  # only when a maintenance run asks for it
    assert broker._should_do_maintenance("fetch") == 0


def test_every_queue_gets_maintenance_on_a_clock_without_traffic(server):
    """A dead worker's unacked message comes back to its queue by the live workers' ticker,
    even when nothing else touches that queue (dramatiq's maintenance is per queue)."""
    client = redis.Redis.from_url(server.url)
    client.flushall()
    dead = TimedMaintenanceRedisBroker(client=client, heartbeat_timeout=300)
    live = TimedMaintenanceRedisBroker(client=client, heartbeat_timeout=300)
    message = dramatiq.Message(queue_name="quiet", actor_name="a", args=(), kwargs={}, options={})
    dead.enqueue(message)
    dead.do_fetch("quiet", 1)  # the dead worker holds it, unacked
    assert client.llen("dramatiq:quiet") == 0
    ticker = MaintenanceTicker(live, ["events", "quiet"], interval=0.05)
    ticker.start()
    try:
        deadline = time.monotonic() + 5
        while client.llen("dramatiq:quiet") == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        ticker.stop()
    assert client.llen("dramatiq:quiet") == 1  # requeued once, after the heartbeat timeout


def test_event_log_listing_and_retention(runtime):
    log = EventLog(runtime.client)
    for n, status in enumerate(["failed", "delivered", "failed"]):
        event_id = f"e{n}"
        runtime.client.hset(
            keys.event(event_id),
            mapping={"status": "received", "connector": "shop", "received_at": n, "updated_at": n},
        )
        runtime.client.zadd(keys.events_index(), {event_id: n})
        runtime.client.zadd(keys.events_by_connector("shop"), {event_id: n})
        log.set_status(event_id, status, error="x" if status == "failed" else "")
    assert [r.id for r in log.query(status="failed")] == ["e2", "e0"]
    assert log.counts()["failed"] == 2 and log.counts()["received"] == 0
    assert log.purge_older_than(1) == 2
    assert [r.id for r in log.query()] == ["e2"] and json.dumps(log.get("e2").summary())
