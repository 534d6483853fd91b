"""Polling at runtime against a real Redis: cursors, dedupe, `more`, errors, the scheduler's
single-leader lock, retention, backfill."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from hub.connector.base import PollingConnector, PollingSettings, PollResult, SourceEvent
from hub.errors import TransientDeliveryError
from hub.mapping import MappingSet
from hub.runtime import keys
from hub.runtime.context import Runtime
from hub.runtime.eventlog import EventLog
from hub.runtime.polling import CursorStore, Scheduler, backfill, poll_connector
from hub.settings import ConnectorInstance, HubConfig, HubSettings

pytestmark = pytest.mark.integration


class FakeApiSettings(PollingSettings):
    pass


class FakeApi(PollingConnector[FakeApiSettings, dict[str, int]]):
    """Pages of 3 records from an in-memory 'API'; cursor = the last record number seen."""

    name = "fake_api"
    events = ("record",)
    settings_model = FakeApiSettings
    records = 7
    fail_next = False
    calls: list[dict[str, int]] = []

    def initial_cursor(self, since: datetime) -> dict[str, int]:
        return {"after": 0}

    async def poll(self, cursor: dict[str, int], client: Any) -> PollResult[dict[str, int]]:
        FakeApi.calls.append(cursor)
        if FakeApi.fail_next:
            FakeApi.fail_next = False
            raise TransientDeliveryError("API answered 503")
        start = cursor["after"]
        numbers = list(range(start + 1, min(start + 3, FakeApi.records) + 1))
        events = [SourceEvent("record", f"r{n}", datetime(2026, 1, 1, tzinfo=UTC), {"n": n}) for n in numbers]
        after = numbers[-1] if numbers else start
        return PollResult(events, {"after": after}, more=after < FakeApi.records)


@pytest.fixture
def runtime(server):
    client = redis.Redis.from_url(server.url)
    client.flushall()
    FakeApi.calls, FakeApi.fail_next, FakeApi.records = [], False, 7
    instance = ConnectorInstance(
        "api", "fake_api", FakeApi, FakeApiSettings(poll_interval=60), MappingSet({})
    )
    config = HubConfig(file="<test>", hub=HubSettings(retention_days=1), connectors={"api": instance})
    yield Runtime(config, client)
    client.close()


def queued_polls(client) -> int:
    return client.llen(f"dramatiq:{keys.POLLS_QUEUE}")


def test_poll_stores_events_saves_cursor_and_asks_for_more(runtime):
    poll_connector(runtime, "api")
    log = EventLog(runtime.client)
    assert sorted(r.source_id for r in log.query()) == ["r1", "r2", "r3"]
    assert CursorStore(runtime.client).load("api") == {"after": 3}
    assert queued_polls(runtime.client) == 1  # `more`: polled again at once, not at the interval
    record = log.get(log.query()[0].id)
    assert record.method == "POLL" and record.source_type == "record"


def test_a_repeated_poll_stores_nothing_twice_and_a_failure_keeps_the_cursor(runtime):
    poll_connector(runtime, "api")
    CursorStore(runtime.client).save("api", {"after": 0})  # as if the cursor save had been lost
    poll_connector(runtime, "api")
    assert EventLog(runtime.client).counts()["received"] == 3
    FakeApi.fail_next = True
    poll_connector(runtime, "api")
    state = runtime.client.hgetall(keys.poll_state("api"))
    assert b"503" in state[b"last_error"]
    assert CursorStore(runtime.client).load("api") == {"after": 3}


def test_cursor_survives_a_restart(runtime, server):
    poll_connector(runtime, "api")
    fresh = Runtime(runtime.config, redis.Redis.from_url(server.url))
    poll_connector(fresh, "api")
    assert FakeApi.calls == [{"after": 0}, {"after": 3}]


def test_only_one_scheduler_is_active_and_another_takes_over(runtime):
    first = Scheduler(runtime.config, runtime.client, lock_ms=500)
    second = Scheduler(runtime.config, runtime.client, lock_ms=500)
    assert first.run_once() == ["api"] and second.run_once() == []
    assert first.run_once() == []  # not due again before its interval
    assert queued_polls(runtime.client) == 1
    stop = threading.Event()
    stop.set()
    first.run(stop)  # a clean stop releases the lock
    runtime.client.hset(keys.poll_state("api"), "next_due", 0)
    assert second.run_once() == ["api"]


def test_scheduler_applies_retention(runtime):
    log = EventLog(runtime.client)
    old = int((datetime.now(UTC) - timedelta(days=3)).timestamp() * 1000)
    runtime.client.hset(keys.event("old"), mapping={"status": "delivered", "received_at": old})
    runtime.client.zadd(keys.events_index(), {"old": old})
    Scheduler(runtime.config, runtime.client).run_once()
    assert log.get("old") is None


def test_backfill_pages_until_caught_up(runtime):
    FakeApi.records = 8
    seen = []
    total = backfill(
        runtime.connector("api"),
        "api",
        runtime.client,
        datetime(2026, 1, 1, tzinfo=UTC),
        lambda pages, new, cursor: seen.append((pages, new)),
    )
    assert total == 8 and seen[-1] == (3, 8)
    assert CursorStore(runtime.client).load("api") is None  # the live cursor is untouched
