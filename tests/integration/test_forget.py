"""`forget` and `crmhub forget` on a real server: exactly one person's data goes."""

from __future__ import annotations

import json

import pytest
import redis
import redis.asyncio as aioredis
import typer
from typer.testing import CliRunner

from connectors.shopify import ShopifyConnector
from hub.cli import forget_cmd
from hub.connector.base import RawRequest, SourceEvent
from hub.delivery.receipts import Receipts
from hub.runtime import keys
from hub.runtime.eventlog import EventLog
from hub.runtime.forget import forget, mentions
from hub.runtime.intake import Intake, store_polled
from hub.runtime.retry import schedule_retry
from tests.integration.conftest import SECRETS, now

pytestmark = pytest.mark.integration

HER = "Ann.Lee@Example.com"
CONFIG = """\
destinations:
  crm:
    type: local
    path: {dir}/crm.db
  archive:
    type: local
    path: {dir}/archive.db
"""


@pytest.fixture
def client(server):
    client = redis.Redis.from_url(server.url)
    client.flushall()
    yield client
    client.close()


def customer(n: int, email: str) -> dict[str, object]:
    return {"id": 7_700_000 + n, "email": email, "first_name": "Test", "tags": "", "addresses": []}


async def store_webhook(url: str, request: RawRequest, source_id: str) -> str:
    """Store a request exactly as the ingress does (its events only name type and id)."""
    aio = aioredis.Redis.from_url(url)
    try:
        [stored] = await Intake(aio).store(
            "shop", "shopify", request, [SourceEvent("customers/create", source_id, now(), {})]
        )
    finally:
        await aio.aclose()
    return stored.event_id


def raw(body: bytes, content_type: str = "application/json") -> RawRequest:
    return RawRequest(method="POST", body=body, headers={"Content-Type": content_type})


def dead_letter(client, item_id: str, event_id: str, payload: dict[str, object]) -> None:
    client.hset(
        keys.dlq_item(item_id),
        mapping={
            "payload": json.dumps(payload),
            "reason": "refused by crm: 400",
            "destination": "crm",
            "event_id": event_id,
            "died_at": 1,
            "flow": "all",
        },
    )
    client.zadd(keys.dlq_index(), {item_id: 1})


async def seed(client, url: str) -> dict[str, list[str]]:
    def signed(n: int, email: str) -> RawRequest:
        return ShopifyConnector.sample_request(
            "customers/create", customer(n, email), SECRETS["shop"], at=now()
        )

    hers = [
        await store_webhook(url, signed(1, HER), "c1"),
        # JSON-escaped (\u0061 is "a") and split by an escaped newline.
        await store_webhook(url, raw(b'{"note":"call\\nANN.LEE\\u0040example.com"}'), "c2"),
        await store_webhook(
            url, raw(b"email=ann.lee%40EXAMPLE.com&x=1", "application/x-www-form-urlencoded"), "c3"
        ),
        # A polled event whose provider id is her address (its dedupe key names her too).
        store_polled(
            client, "books", "quickbooks", [SourceEvent("Customer", HER, now(), {"PrimaryEmailAddr": HER})]
        )[0].event_id,
    ]
    others = [
        await store_webhook(url, signed(2, "joann.lee@example.com"), "c4"),
        await store_webhook(url, signed(3, "ann.lee@example.com.au"), "c5"),
        await store_webhook(url, signed(4, "bob@example.com"), "c6"),
        store_polled(
            client,
            "books",
            "quickbooks",
            [SourceEvent("Customer", "q1", now(), {"Email": "x+ann.lee@example.com"})],
        )[0].event_id,
    ]
    log = EventLog(client)
    log.set_status(hers[0], "dead", error="refused by crm")
    log.set_status(others[2], "failed", error="crm: 503")
    dead_letter(
        client, "00000000000aa", hers[0], {"event_id": hers[0], "contact": {"email": "ann.lee@example.com"}}
    )
    # Her deal alone names no email: it goes because its event is hers.
    dead_letter(client, "00000000000ab", hers[0], {"event_id": hers[0], "deal": {"title": "Order 1001"}})
    dead_letter(
        client, "00000000000ac", others[2], {"event_id": others[2], "contact": {"email": "bob@example.com"}}
    )
    schedule_retry(client, "deliver.crm", "deliver.crm", (json.dumps({"contact": {"email": HER}}), 1), 600)
    schedule_retry(
        client, "deliver.crm", "deliver.crm", (json.dumps({"contact": {"email": "bob@x.io"}}), 1), 600
    )
    crm, archive = Receipts(client, "crm"), Receipts(client, "archive")
    crm.put("contact", "email:ann.lee@example.com", "c-ann")
    crm.put("deal", "title:c-ann:Order 1001", "d-ann")
    crm.put("contact", "ext:shopify:Ann.Lee@Example.com", "c-ann")
    crm.put("contact", "email:joann.lee@example.com", "c-jo")
    crm.put("deal", "title:c-jo:Order 7", "d-jo")
    crm.put("company", "domain:example.com", "co-1")
    archive.put("contact", "email:ann.lee@example.com", "a-ann")
    # A delivery already on a dramatiq queue is counted, not pulled from under the workers.
    client.hset("dramatiq:deliver.crm.msgs", "m1", json.dumps({"args": [json.dumps({"email": HER})]}))
    client.rpush("dramatiq:deliver.crm", "m1")
    return {"hers": hers, "others": others}


def test_mentions_whole_addresses_in_any_encoding():
    email = "ann.lee@example.com"
    assert mentions(b'{"email":"Ann.Lee@Example.com"}', email)
    assert mentions('"\\u0041nn.lee\\u0040example.com"', email)
    assert mentions("to=ANN.LEE%40example.com", email)
    assert mentions("<ann.lee@example.com>.", email)
    for other in (
        "joann.lee@example.com",
        "ann.lee@example.com.au",
        "x+ann.lee@example.com",
        "ann.lee@example.community",
    ):
        assert not mentions(other, email), other
    with pytest.raises(ValueError):
        mentions("x", "not an address")


async def test_forget_removes_exactly_her_data(client, server):
    seeded = await seed(client, server.url)
    hers, others = seeded["hers"], seeded["others"]
    before = client.zcard(keys.events_by_connector("shop"))

    report = forget(client, "ann.lee@example.com", ["crm", "archive"])

    assert report.as_dict() == {
        "events": 4,
        "dead_letters": 2,
        "retries": 1,
        "receipts": {"crm": 3, "archive": 1},
        "queued": 1,
    }
    log = EventLog(client)
    assert all(log.get(e) is None for e in hers)
    assert all(log.get(e) is not None for e in others)
    index = {m.decode() for m in client.zrange(keys.events_index(), 0, -1)}
    assert index == set(others)
    assert client.zcard(keys.events_by_connector("shop")) == before - 3
    assert client.zcard(keys.events_by_connector("books")) == 1
    assert client.zcard(keys.events_by_status("dead")) == 0
    assert client.zcard(keys.events_by_status("failed")) == 1
    assert client.exists(keys.dedupe("books", HER)) == 0
    assert client.exists(keys.dedupe("shop", "c1")) == 1  # a provider retry is still a duplicate
    assert [m.decode() for m in client.zrange(keys.dlq_index(), 0, -1)] == ["00000000000ac"]
    assert not client.exists(keys.dlq_item("00000000000aa"), keys.dlq_item("00000000000ab"))
    [retry] = client.zrange(keys.retry_schedule(), 0, -1)
    assert b"bob@x.io" in retry
    assert client.hgetall(keys.receipts("crm", "contact")) == {b"email:joann.lee@example.com": b"c-jo"}
    assert client.hgetall(keys.receipts("crm", "deal")) == {b"title:c-jo:Order 7": b"d-jo"}
    assert client.hlen(keys.receipts("crm", "company")) == 1
    assert client.exists(keys.receipts("archive", "contact")) == 0
    assert client.llen("dramatiq:deliver.crm") == 1

    again = forget(client, HER, ["crm", "archive"])
    assert (again.events, again.dead_letters, again.retries, again.total_receipts) == (0, 0, 0, 0)


def cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        """crmhub"""

    forget_cmd.register(app)
    return app


async def test_cli_prints_the_report(client, server, tmp_path):
    await seed(client, server.url)
    config = tmp_path / "crmhub.yaml"
    config.write_text(CONFIG.format(dir=tmp_path))
    env = {"REDIS_URL": server.url}

    result = CliRunner().invoke(cli(), ["forget", HER, "--config", str(config)], env=env)

    assert result.exit_code == 0, result.output
    text = result.output
    assert "events removed:            4" in text
    assert "dead letters removed:      2" in text
    assert "scheduled retries removed: 1" in text
    assert "write receipts removed:    4 (crm 3, archive 1)" in text
    assert "1 queued deliveries still mention it" in text
    assert "CRMs keep their own records" in text and "crm (local), archive (local)" in text

    result = CliRunner().invoke(cli(), ["forget", HER, "--config", str(config), "--json"], env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["events"] == 0 and report["receipts"] == {"crm": 0, "archive": 0}
    assert "erase them there too" in report["crm_records"]

    result = CliRunner().invoke(cli(), ["forget", "nobody", "--config", str(config)], env=env)
    assert result.exit_code == 1
