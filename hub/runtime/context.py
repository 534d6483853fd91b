"""Per-process runtime state for the actors: config, Redis, event log, plugin instances."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import httpx
import redis

from hub.connector.base import Connector
from hub.delivery.governor import RateGovernor
from hub.delivery.receipts import Receipts
from hub.delivery.transport import GovernedTransport
from hub.delivery.writer import DestinationWriter
from hub.destination import Destination
from hub.runtime.eventlog import EventLog
from hub.runtime.retry import Backoff
from hub.settings import HubConfig

__all__ = ["HTTP_TIMEOUT", "Runtime"]

#: Timeouts for CRM API calls: connect, and the whole request (a write may be slow).
HTTP_TIMEOUT = httpx.Timeout(30.0, connect=5.0)


class Runtime:
    """What `process_event` and `deliver` need, built once per worker process.

    Connector instances and destination writers are shared by the process's threads
    (connectors hold e.g. refreshed OAuth tokens; writers batch across threads).
    """

    def __init__(self, config: HubConfig, client: redis.Redis, *, backoff: Backoff | None = None) -> None:
        self.config = config
        self.client = client
        self.log = EventLog(client)
        self.backoff = backoff or Backoff()
        self._connectors: dict[str, Connector[Any]] = {}
        self._lock = threading.Lock()
        self._writers: dict[str, DestinationWriter] = {}
        #: Lua scripts registered once per process (register_script is not free).
        self.scripts: dict[str, Any] = {}
        #: Builds the innermost HTTP transport (tests may swap it for a fake CRM).
        self.transport_factory: Callable[[], httpx.BaseTransport] = lambda: httpx.HTTPTransport(retries=0)

    @property
    def max_age_ms(self) -> int:
        return int(self.config.hub.max_age_hours * 3600 * 1000)

    def connector(self, instance_id: str) -> Connector[Any] | None:
        with self._lock:
            if instance_id not in self._connectors:
                instance = self.config.connectors.get(instance_id)
                if instance is None:
                    return None
                self._connectors[instance_id] = instance.build()
            return self._connectors[instance_id]

    def writer(self, destination_id: str) -> DestinationWriter | None:
        """The process-wide writer of a destination (built on first use, with its governed
        HTTP client, receipts and batchers); None if the destination is not configured."""
        with self._lock:
            if destination_id not in self._writers:
                instance = self.config.destinations.get(destination_id)
                if instance is None:
                    return None
                built = instance.build()
                assert isinstance(built, Destination)
                built.client = self.http_client(built)
                self._writers[destination_id] = DestinationWriter(
                    built, Receipts(self.client, destination_id)
                )
            return self._writers[destination_id]

    def http_client(self, destination: Destination) -> httpx.Client | None:
        """An HTTP client for an adapter: its base URL, timeouts, and every request paced by
        the account's shared rate governor (None for destinations that are not HTTP APIs)."""
        base_url = destination.base_url()
        if base_url is None:
            return None
        inner: httpx.BaseTransport = self.transport_factory()
        budget = destination.request_budget()
        if budget is not None:
            governor = RateGovernor(self.client, destination.account_key(), budget[0], budget[1])
            inner = GovernedTransport(inner, governor)
        return httpx.Client(base_url=base_url, transport=inner, timeout=HTTP_TIMEOUT)

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
