"""Run the demo: embedded server, ingress, worker, provider stubs, signed sample webhooks."""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import redis

from hub.connector.base import WebhookConnector
from hub.demo.stub import ProviderStub
from hub.runtime.embedded import EmbeddedServer
from hub.runtime.eventlog import EventLog
from hub.runtime.stack import Children
from hub.settings import HubConfig, load_config
from hub.testing import fixture_cases

__all__ = ["DemoResult", "run_demo"]

_TERMINAL = ("delivered", "ignored", "failed", "dead")


@dataclass
class DemoResult:
    sent: int = 0
    statuses: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    crm_db: Path | None = None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stub_for(config: HubConfig) -> dict[str, Any]:
    routes: dict[str, Any] = {}
    for instance in config.connectors.values():
        cls = instance.cls
        if issubclass(cls, WebhookConnector) and cls.fetches:
            samples: list[tuple[str, Mapping[str, Any]]] = [(e, d) for e, _, d in fixture_cases(cls)]
            routes.update(cls.stub_routes(samples, instance.settings.model_dump()))
    return routes


def _wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not become ready in {timeout:.0f} s")


def run_demo(work_dir: Path, *, timeout: float = 90.0, say: Any = print) -> DemoResult:
    """Run the whole demo in `work_dir` (wiped first); returns what happened."""
    if work_dir.exists():
        shutil.rmtree(work_dir)
    work_dir.mkdir(parents=True)
    stub = ProviderStub().start()
    os.environ["CRMHUB_DEMO_STUB"] = stub.url
    os.environ["CRMHUB_DEMO_DIR"] = str(work_dir)
    config_file = work_dir / "crmhub.yaml"
    config_file.write_text(resources.files("hub.demo").joinpath("demo.yaml").read_text(encoding="utf-8"))
    config = load_config(config_file)
    stub.routes.update(_stub_for(config))
    server = EmbeddedServer(work_dir / "valkey")
    result = DemoResult(crm_db=work_dir / "crm.db")
    children: Children | None = None
    try:
        url = server.start()
        say(f"embedded server up ({url})")
        port = _free_port()
        children = Children(config_file, url)
        children.start(["serve", "--config", str(config_file), "--port", str(port)])
        children.start(["worker", "--config", str(config_file), "--threads", "4"])
        base = f"http://127.0.0.1:{port}"
        _wait_http(f"{base}/readyz", 30)
        say(f"ingress up on {base}; provider API stub on {stub.url}")
        event_ids = _send_samples(config, base, result, say)
        _wait_for(event_ids, url, result, timeout)
    finally:
        if children is not None:
            children.stop()
        server.stop()
        stub.stop()
    return result


def _send_samples(config: HubConfig, base: str, result: DemoResult, say: Any) -> list[str]:
    event_ids: list[str] = []
    with httpx.Client(timeout=10) as client:
        for instance_id, instance in config.connectors.items():
            cls = instance.cls
            if not issubclass(cls, WebhookConnector):
                continue
            secret = instance.settings.secret_bytes()[0].decode()  # type: ignore[attr-defined]
            for event_type, path, data in fixture_cases(cls):
                request = cls.sample_request(event_type, data, secret, at=datetime.now(UTC))
                response = client.post(
                    f"{base}/hooks/{instance_id}",
                    content=request.body,
                    headers=dict(request.headers),
                    params=dict(request.query),
                )
                result.sent += 1
                if response.status_code != 200:
                    result.problems.append(
                        f"{instance_id} {path.name}: HTTP {response.status_code} {response.text[:200]}"
                    )
                    continue
                for event in response.json()["events"]:
                    event_ids.append(event["id"])
        say(f"posted {result.sent} signed sample webhooks ({len(event_ids)} events)")
    return event_ids


def _wait_for(event_ids: list[str], url: str, result: DemoResult, timeout: float) -> None:
    client = redis.Redis.from_url(url)
    log = EventLog(client)
    deadline = time.monotonic() + timeout
    pending = set(event_ids)
    while pending and time.monotonic() < deadline:
        for event_id in list(pending):
            record = log.get(event_id, with_body=False)
            if record is not None and record.status in _TERMINAL:
                result.statuses[event_id] = record.status
                if record.status in ("failed", "dead"):
                    result.problems.append(
                        f"{record.connector} {record.source_type} {event_id}: {record.status}: {record.error}"
                    )
                pending.discard(event_id)
        time.sleep(0.2)
    for event_id in pending:
        result.problems.append(f"event {event_id} not processed within {timeout:.0f} s")
    client.close()


def summary(result: DemoResult) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for status in result.statuses.values():
        counts[status] = counts.get(status, 0) + 1
    return {"sent": result.sent, "events": counts, "problems": result.problems}


def dumps(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)
