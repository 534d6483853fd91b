"""Measurements taken while the chaos runs: what a killed worker held and how long until
it was redelivered and delivered; how long the ingress and each worker took to reconnect
after the server restart.

Redelivery method. dramatiq's Redis broker keeps each message a worker fetched, until
acked, in that worker's ack set `dramatiq:__acks__.<broker id>.<queue>`. Right after the
SIGKILL (the ack sets are frozen then: nobody else touches them until a surviving worker's
maintenance requeues them) we read the dead worker's ack sets, decode each message to its
event id (`process_event(event_id)` or `deliver(payload)` whose payload names the event),
and keep the events not yet terminal. Then, polling every 0.2 s, from the moment of the kill:
- requeued: the dead worker's ack sets are gone (maintenance pushed the ids back on their
  queues: heartbeat timeout 15 s + maintenance every 0.5 s);
- redelivered: every one of those messages has been fetched by a live worker (it is in a
  live worker's ack set, or already acked);
- run: every one of those events has been run again to an outcome (its event-log
  `updated_at` is later than the kill: delivered, mapped, or failed and parked for a retry
  because the CRM failed that attempt);
- delivered: every one of them is `delivered` (or `dead`): the issue's measure. Past `run`
  it adds the hub's retry backoff for CRM faults met on the way, and past `redelivered`
  the wait for the CRM's request budget (shared with every other event).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from chaos.stack import HEARTBEATS
from hub.runtime import keys

__all__ = ["Kill", "RedeliveryProbe", "RestartProbe", "inflight_events"]

QUEUES = (keys.EVENTS_QUEUE, keys.POLLS_QUEUE, keys.delivery_queue("crm"))
DONE = (b"delivered", b"ignored", b"dead")


def _event_of(raw: bytes) -> str | None:
    message = json.loads(raw)
    args = message.get("args") or []
    if not args:
        return None
    if message.get("actor_name") == "process_event":
        return str(args[0])
    if str(message.get("actor_name", "")).startswith("deliver."):
        return str(json.loads(args[0])["event_id"])
    return None


def inflight_events(client: redis.Redis, broker_id: str) -> tuple[dict[str, tuple[str, bytes]], list[str]]:
    """The events a (dead) worker held unacked, {event id: (queue, message id)}, and its
    ack-set keys."""
    held: dict[str, tuple[str, bytes]] = {}
    ack_keys = [f"dramatiq:__acks__.{broker_id}.{queue}" for queue in QUEUES]
    for queue, ack_key in zip(QUEUES, ack_keys, strict=True):
        ids = list(client.smembers(ack_key))
        if not ids:
            continue
        for message_id, raw in zip(ids, client.hmget(f"dramatiq:{queue}.msgs", ids), strict=True):
            if raw is not None and (event_id := _event_of(raw)) is not None:
                held.setdefault(event_id, (queue, message_id))
    if held:
        statuses = client.pipeline(transaction=False)
        for event_id in held:
            statuses.hget(keys.event(event_id), "status")
        held = {e: q for (e, q), s in zip(held.items(), statuses.execute(), strict=True) if s not in DONE}
    return held, ack_keys


@dataclass
class Kill:
    """One SIGKILL and what followed it (seconds from the kill)."""

    worker: str
    at: float
    epoch_ms: int
    inflight: dict[str, tuple[str, bytes]]
    queue_depth: int
    requeued_after: float | None = None
    queued_at_requeue: int = 0  #: messages ahead of the requeued ones
    redelivered_after: float | None = None
    run_after: float | None = None
    delivered_after: float | None = None
    undelivered: int = 0
    disturbed_by: list[str] = field(default_factory=list)


class RedeliveryProbe(threading.Thread):
    """Watches one kill until its in-flight events are delivered (or `timeout` passes)."""

    def __init__(
        self,
        url: str,
        kill: Kill,
        ack_keys: list[str],
        live_brokers: Callable[[], list[str]],
        *,
        timeout: float = 1200.0,
    ) -> None:
        super().__init__(name=f"probe-{kill.worker}", daemon=True)
        self.url = url
        self.kill = kill
        self.ack_keys = ack_keys
        self.live_brokers = live_brokers
        self.timeout = timeout
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        kill = self.kill
        client = redis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)
        remaining, unrun, unfetched = set(kill.inflight), set(kill.inflight), dict(kill.inflight)
        if not remaining:
            kill.delivered_after = kill.redelivered_after = kill.run_after = 0.0
        while not self._halt.is_set() and time.monotonic() - kill.at < self.timeout:
            now = time.monotonic()
            with contextlib.suppress(redis.RedisError):
                if kill.requeued_after is None and not client.exists(*self.ack_keys):
                    kill.requeued_after = now - kill.at
                    kill.queued_at_requeue = sum(int(client.llen(f"dramatiq:{q}")) for q in QUEUES)
                if unfetched and kill.requeued_after is not None:
                    unfetched = self._unfetched(client, unfetched)
                    if not unfetched:
                        kill.redelivered_after = now - kill.at
                if remaining:
                    pipe = client.pipeline(transaction=False)
                    ordered = sorted(remaining)
                    for event_id in ordered:
                        pipe.hmget(keys.event(event_id), "status", "updated_at")
                    found = dict(zip(ordered, pipe.execute(), strict=True))
                    unrun -= {e for e, (s, u) in found.items() if s in DONE or int(u or 0) > kill.epoch_ms}
                    remaining -= {e for e, (s, _) in found.items() if s in DONE}
                    if not unrun and kill.run_after is None:
                        kill.run_after = now - kill.at
                    if not remaining:
                        kill.delivered_after = now - kill.at
            kill.undelivered = len(remaining)
            if kill.requeued_after is not None and kill.delivered_after is not None:
                break
            self._halt.wait(0.25)
        client.close()

    def _unfetched(
        self, client: redis.Redis, messages: dict[str, tuple[str, bytes]]
    ) -> dict[str, tuple[str, bytes]]:
        """The messages no live worker has fetched yet (an acked message counts as fetched)."""
        brokers = self.live_brokers()
        pipe = client.pipeline(transaction=False)
        for queue, message_id in messages.values():
            pipe.hexists(f"dramatiq:{queue}.msgs", message_id)
            for broker in brokers:
                pipe.sismember(f"dramatiq:__acks__.{broker}.{queue}", message_id)
        answers = iter(pipe.execute())
        left = {}
        for event_id, message in messages.items():
            exists, held = next(answers), [next(answers) for _ in brokers]
            if exists and not any(held):
                left[event_id] = message
        return left


class RestartProbe(threading.Thread):
    """After the server is back, when did each live worker heartbeat again (seconds)."""

    def __init__(self, url: str, broker_ids: dict[str, str], up_at: float, up_epoch_ms: int) -> None:
        super().__init__(name="restart-probe", daemon=True)
        self.url = url
        self.broker_ids = broker_ids
        self.up_at = up_at
        self.up_epoch_ms = up_epoch_ms
        self.reconnected_after: dict[str, float] = {}
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        client = redis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)
        while not self._halt.is_set() and time.monotonic() - self.up_at < 120:
            with contextlib.suppress(redis.RedisError):
                for name, broker_id in self.broker_ids.items():
                    if name in self.reconnected_after:
                        continue
                    score: Any = client.zscore(HEARTBEATS, broker_id)
                    if score is not None and score > self.up_epoch_ms:
                        self.reconnected_after[name] = time.monotonic() - self.up_at
            if len(self.reconnected_after) == len(self.broker_ids):
                break
            self._halt.wait(0.1)
        client.close()
