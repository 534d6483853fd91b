"""Integration fixtures: a real embedded Redis-compatible server, real `crmhub` worker and
ingress processes, real HTTP over loopback, the local CRM in SQLite."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from hub.destinations.local import LocalCrm, LocalCrmSettings
from hub.runtime.embedded import EmbeddedServer
from hub.runtime.eventlog import EventLog

TERMINAL = ("delivered", "ignored", "failed", "dead")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    srv = EmbeddedServer(tmp_path_factory.mktemp("valkey"))
    srv.start()
    yield srv
    srv.stop()


@dataclass
class Stack:
    """One hub: config file, Redis, ingress and worker processes started as `crmhub` would."""

    dir: Path
    url: str
    config: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _http: httpx.Client | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)

    @property
    def log(self) -> EventLog:
        return EventLog(self.client)

    def _spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log_file = open(self.dir / f"{name}.log", "ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", *args],
            env=self.env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[name] = proc
        return proc

    def start_ingress(self) -> None:
        self._spawn("ingress", "serve", "--config", str(self.config), "--port", str(self.port))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError("ingress did not start:\n" + (self.dir / "ingress.log").read_text())

    def start_worker(self, name: str = "worker", threads: int = 4) -> subprocess.Popen[bytes]:
        return self._spawn(name, "worker", "--config", str(self.config), "--threads", str(threads))

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def stop(self, name: str, timeout: float = 40) -> int:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout=timeout)

    def stop_all(self) -> None:
        for name in list(self.procs):
            proc = self.procs[name]
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            self.procs.pop(name)

    def post(self, connector_id: str, request: Any) -> httpx.Response:
        if self._http is None:
            self._http = httpx.Client(timeout=10)
        return self._http.post(
            f"{self.base}/hooks/{connector_id}",
            content=request.body,
            headers=dict(request.headers),
            params=dict(request.query),
        )

    def wait_for(
        self, event_ids: list[str], timeout: float = 60, statuses: tuple[str, ...] = TERMINAL
    ) -> dict[str, str]:
        log, deadline, client = self.log, time.monotonic() + timeout, self.client
        found: dict[str, str] = {}
        while time.monotonic() < deadline:
            waiting = [e for e in dict.fromkeys(event_ids) if e not in found]
            pipe = client.pipeline(transaction=False)
            for event_id in waiting:
                pipe.hget(f"crmhub:event:{event_id}", "status")
            for event_id, status in zip(waiting, pipe.execute(), strict=True):
                if status is not None and status.decode() in statuses:
                    found[event_id] = status.decode()
            if len(found) == len(set(event_ids)):
                return found
            time.sleep(0.1)
        missing = [e for e in event_ids if e not in found]
        raise AssertionError(
            f"{len(missing)} events not done in {timeout} s, e.g. "
            f"{[log.get(e, with_body=False) for e in missing[:3]]}"
        )

    def crm(self) -> LocalCrm:
        return LocalCrm(LocalCrmSettings(path=str(self.dir / "crm.db")))


CONFIG = """\
hub:
  default_region: US
  allow_insecure_urls: true  # the provider stubs listen on http://127.0.0.1
connectors:
  shop:
    type: shopify
    secret: shop-secret
  forms:
    type: typeform
    secret: typeform-secret
  cal:
    type: calendly
    secret: calendly-secret
  books:
    type: quickbooks
    secret: intuit-verifier
    api_base_url: {stub}
    token_url: {stub}/oauth2/token
    client_id: cid
    client_secret: csecret
    refresh_token: rtoken
    access_token: atoken
  leads:
    type: facebook_lead_ads
    secret: meta-secret
    verify_token: vtoken
    page_access_token: ptoken
    api_base_url: {stub}
destinations:
  crm:
    type: local
    path: {dir}/crm.db
flows:
  - name: all
    when: "*.*"
    do: [upsert_contact, upsert_company, upsert_deal, add_activity]
    to: crm
"""

SECRETS = {
    "shop": "shop-secret",
    "forms": "typeform-secret",
    "cal": "calendly-secret",
    "books": "intuit-verifier",
    "leads": "meta-secret",
}


@pytest.fixture
def make_stack(server: EmbeddedServer, tmp_path: Path) -> Iterator[Any]:
    stacks: list[Stack] = []

    def make(config_text: str = CONFIG, stub: str = "http://127.0.0.1:9") -> Stack:
        redis.Redis.from_url(server.url).flushall()
        config = tmp_path / "crmhub.yaml"
        config.write_text(config_text.format(dir=tmp_path, stub=stub))
        env = {**os.environ, "REDIS_URL": server.url, "CRMHUB_CONFIG": str(config)}
        stack = Stack(tmp_path, server.url, config, env)
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        stack.stop_all()


def now() -> datetime:
    return datetime.now(UTC)
