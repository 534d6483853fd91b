"""The admin API on the ingress app, against a real server: auth, events, replay, dead
letters, destinations, and a schemathesis run over its OpenAPI schema."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging

import httpx
import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.backoff import NoBackoff
from redis.retry import Retry
from schemathesis import GenerationMode

from hub.connector.base import SourceEvent
from hub.delivery.pause import pause
from hub.ingress.admin import admin_router
from hub.ingress.app import create_app
from hub.runtime import keys
from hub.runtime.eventlog import EventLog
from hub.runtime.intake import store_polled
from hub.settings import load_config_text
from tests.integration.conftest import CONFIG, free_port, now

pytestmark = pytest.mark.integration

TOKEN = "s3cret-admin-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
DEAD_LETTER = "0000000000001"


@pytest.fixture
def client(server):
    client = redis.Redis.from_url(server.url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def config(tmp_path):
    text = CONFIG.format(dir=tmp_path, stub="http://127.0.0.1:9")
    hashed = hashlib.sha256(TOKEN.encode()).hexdigest()
    return load_config_text(text.replace("hub:\n", f"hub:\n  admin_token_sha256: {hashed}\n"))


def build_app(config, url: str, redis_client):
    """The ingress app with the admin router mounted as `create_app` mounts it, on a given
    Redis client (the ingress itself is built without the token so it mounts no router)."""
    hub = config.hub.model_copy(update={"admin_token_sha256": None})
    app = create_app(dataclasses.replace(config, hub=hub), url)
    app.api.include_router(
        admin_router(lambda: redis_client, config.hub.admin_token_sha256, config.destinations),
        prefix="/admin",
    )
    return app


def seed(client) -> list[str]:
    """Four polled events (two failed, one delivered) and one dead letter; crm paused."""
    stored = store_polled(
        client,
        "books",
        "quickbooks",
        [SourceEvent("Customer", f"q{n}", now(), {"Id": str(n)}) for n in range(4)],
    )
    ids = [s.event_id for s in stored]
    log = EventLog(client)
    log.set_status(ids[0], "failed", error="crm: 503")
    log.set_status(ids[1], "failed", error="crm: 503")
    log.set_status(ids[2], "delivered")
    log.set_status(ids[3], "dead", error="refused by crm")
    client.hset(
        keys.dlq_item(DEAD_LETTER),
        mapping={
            "payload": json.dumps({"event_id": ids[3], "destination": "crm", "received_at": 1}),
            "reason": "refused by crm: 400",
            "destination": "crm",
            "event_id": ids[3],
            "died_at": 1_700_000_000_000,
            "flow": "all",
        },
    )
    client.zadd(keys.dlq_index(), {DEAD_LETTER: 1})
    client.delete("dramatiq:events", "dramatiq:events.msgs")
    return ids


@pytest.fixture
def seeded(client) -> list[str]:
    return seed(client)


@pytest.fixture
def app(config, client, server, seeded):
    return build_app(config, server.url, client)


@pytest.fixture
async def http(app):
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
        yield http


async def test_every_endpoint_wants_the_token(http, caplog):
    caplog.set_level(logging.DEBUG)
    requests = [
        ("GET", "/admin/events"),
        ("GET", "/admin/events/0123abc"),
        ("POST", "/admin/events/0123abc/replay"),
        ("POST", "/admin/events/replay?status=failed"),
        ("GET", "/admin/dlq"),
        ("POST", f"/admin/dlq/{DEAD_LETTER}/replay"),
        ("GET", "/admin/destinations"),
    ]
    for method, path in requests:
        for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": f"Basic {TOKEN}"}):
            response = await http.request(method, path, headers=headers)
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.json()["error"] == "unauthorized" and response.json()["detail"]
            assert TOKEN not in response.text and "wrong-token" not in response.text
    assert "admin API: refused" in caplog.text
    assert TOKEN not in caplog.text and "wrong-token" not in caplog.text


async def test_list_and_detail(http, client):
    events = (await http.get("/admin/events", headers=AUTH)).json()["events"]
    assert len(events) == 4 and {e["status"] for e in events} == {"failed", "delivered", "dead"}
    failed = (await http.get("/admin/events?status=failed", headers=AUTH)).json()["events"]
    assert [e["error"] for e in failed] == ["crm: 503", "crm: 503"]
    assert len((await http.get("/admin/events?connector=books&limit=1", headers=AUTH)).json()["events"]) == 1
    assert (await http.get("/admin/events?connector=shop", headers=AUTH)).json()["events"] == []
    assert (await http.get("/admin/events?status=bogus", headers=AUTH)).status_code == 422

    event_id = failed[0]["id"]
    detail = (await http.get(f"/admin/events/{event_id}", headers=AUTH)).json()
    assert detail["status"] == "failed" and detail["method"] == "POLL"
    assert detail["body"] is None and detail["headers"] is None
    detail = (await http.get(f"/admin/events/{event_id}?body=true", headers=AUTH)).json()
    assert json.loads(detail["body"]) == {"Id": json.loads(detail["body"])["Id"]}

    missing = await http.get("/admin/events/0123abc", headers=AUTH)
    assert missing.status_code == 404
    assert missing.json() == {"error": "not_found", "detail": "no event '0123abc'"}
    assert (await http.post("/admin/events/0123abc/replay", headers=AUTH)).status_code == 404


async def test_replay_one_and_by_status(http, client):
    failed = (await http.get("/admin/events?status=failed", headers=AUTH)).json()["events"]
    response = await http.post(f"/admin/events/{failed[0]['id']}/replay", headers=AUTH)
    assert response.json() == {"replayed": 1, "ids": [failed[0]["id"]]}
    assert EventLog(client).get(failed[0]["id"]).status == "received"
    assert client.llen("dramatiq:events") == 1

    response = (await http.post("/admin/events/replay?status=failed", headers=AUTH)).json()
    assert response == {"replayed": 1, "ids": [failed[1]["id"]]}
    assert EventLog(client).counts()["failed"] == 0 and client.llen("dramatiq:events") == 2
    assert (await http.post("/admin/events/replay", headers=AUTH)).status_code == 422


async def test_dead_letters_and_destinations(http, client, config):
    items = (await http.get("/admin/dlq", headers=AUTH)).json()["dead_letters"]
    assert items == [
        {
            "id": DEAD_LETTER,
            "event_id": items[0]["event_id"],
            "destination": "crm",
            "flow": "all",
            "reason": "refused by crm: 400",
            "died_at": "2023-11-14T22:13:20Z",
        }
    ]
    response = await http.post(f"/admin/dlq/{DEAD_LETTER}/replay", headers=AUTH)
    assert response.json() == {"replayed": 1, "ids": [DEAD_LETTER]}
    assert client.llen("dramatiq:deliver.crm") == 1
    assert EventLog(client).get(items[0]["event_id"]).status == "mapped"
    assert (await http.get("/admin/dlq", headers=AUTH)).json() == {"dead_letters": []}
    again = await http.post(f"/admin/dlq/{DEAD_LETTER}/replay", headers=AUTH)
    assert again.status_code == 404 and again.json()["error"] == "not_found"

    account = config.destinations["crm"].build().account_key()
    pause(client, account, "credentials refused (401)")
    response = (await http.get("/admin/destinations", headers=AUTH)).json()
    assert response == {
        "destinations": [
            {"id": "crm", "type": "local", "paused": "credentials refused (401)", "queue_depth": 1}
        ]
    }


async def test_unreachable_redis_is_503(config, server):
    dead = redis.Redis(port=free_port(), socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    app = build_app(config, server.url, dead)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as http:
        response = await http.get("/admin/events", headers=AUTH)
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    assert response.json()["error"] == "unavailable"


def test_schema_declares_bearer_auth(config, server, client):
    schema = build_app(config, server.url, client).openapi()
    assert schema["components"]["securitySchemes"]["AdminToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "The admin token; its SHA-256 (hex) is `hub.admin_token_sha256`.",
    }
    admin = {p: ops for p, ops in schema["paths"].items() if p.startswith("/admin/")}
    assert len(admin) == 7
    for operations in admin.values():
        for operation in operations.values():
            assert operation["security"] == [{"AdminToken": []}]
            assert "401" in operation["responses"]


def test_admin_api_conforms_to_its_schema(app, seeded):
    """Generated requests (valid and invalid) with the token: never a 5xx, and every answer
    (status, headers, body) is the one the OpenAPI schema declares."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app).include(path_regex="^/admin/")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 7
    for operation in operations:
        strategies = [
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        ]
        # Random ids are all unknown (404): also ask about the seeded ones.
        for name, value in (("event_id", seeded[0]), ("item_id", DEAD_LETTER)):
            if f"{{{name}}}" in operation.path:
                strategies.append(operation.as_strategy(path_parameters={name: value}))
        cases = st.one_of(strategies)

        @given(case=cases)
        @settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def conforms(case):
            response = case.call_and_validate(headers=AUTH)
            assert response.status_code < 500

        conforms()


async def test_create_app_mounts_the_admin_api_when_a_token_hash_is_configured(config, server, client):
    app = create_app(config, server.url)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as http:
        assert (await http.get("/admin/events")).status_code == 401
        assert (await http.get("/admin/events", headers=AUTH)).status_code == 200
    hub = config.hub.model_copy(update={"admin_token_sha256": None})
    bare = create_app(dataclasses.replace(config, hub=hub), server.url)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=bare), base_url="http://hub") as http:
        assert (await http.get("/admin/events", headers=AUTH)).status_code == 404
