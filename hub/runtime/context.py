"""Per-process runtime state for the actors: config, Redis, event log, plugin instances."""

from __future__ import annotations

import threading
from typing import Any

import redis

from hub.connector.base import Connector
from hub.destination import Destination
from hub.runtime.eventlog import EventLog
from hub.runtime.retry import Backoff
from hub.settings import HubConfig

__all__ = ["Runtime"]


class Runtime:
    """What `process_event` and `deliver` need, built once per worker process.

    Connector instances are shared by the process (they hold e.g. refreshed OAuth tokens);
    destination instances are per thread (a SQLite connection or HTTP client each).
    """

    def __init__(self, config: HubConfig, client: redis.Redis, *, backoff: Backoff | None = None) -> None:
        self.config = config
        self.client = client
        self.log = EventLog(client)
        self.backoff = backoff or Backoff()
        self._connectors: dict[str, Connector[Any]] = {}
        self._lock = threading.Lock()
        self._local = threading.local()

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

    def destination(self, destination_id: str) -> Destination | None:
        cache: dict[str, Destination] = getattr(self._local, "destinations", None) or {}
        self._local.destinations = cache
        if destination_id not in cache:
            instance = self.config.destinations.get(destination_id)
            if instance is None:
                return None
            built = instance.build()
            assert isinstance(built, Destination)
            cache[destination_id] = built
        return cache[destination_id]

    def close(self) -> None:
        for destination in (getattr(self._local, "destinations", None) or {}).values():
            destination.close()
