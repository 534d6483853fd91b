"""Providers sending webhooks at a steady rate and retrying like real ones: on a 503,
a connection error or a timeout the same delivery is sent again (Retry-After honoured,
capped), until a 200. Only a 200 counts as acknowledged.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from chaos.payloads import Webhook

__all__ = ["Ack", "Senders"]

#: Longest pause between two attempts of one delivery (real providers wait minutes; the run is bounded).
MAX_PAUSE = 2.0


@dataclass(frozen=True)
class Ack:
    """A 200 from the ingress: the hub's event id for the delivery."""

    index: int
    event_id: str
    at: float
    attempts: int
    duplicate: bool


@dataclass
class SendStats:
    statuses: Counter[int] = field(default_factory=Counter)
    connection_errors: int = 0
    rejected: dict[int, str] = field(default_factory=dict)
    gave_up: list[int] = field(default_factory=list)
    unavailable_at: list[float] = field(default_factory=list)


class Senders:
    """`threads` senders working through `webhooks` at `rate` per second.

    Args:
        base: the ingress URL.
        webhooks: what to send, in order.
        rate: deliveries started per second (a delivery that needs retries runs late).
        give_up_after: seconds a provider keeps retrying one delivery.
    """

    def __init__(
        self,
        base: str,
        webhooks: list[Webhook],
        *,
        rate: float,
        threads: int = 16,
        give_up_after: float = 120.0,
    ) -> None:
        self.base = base
        self.webhooks = webhooks
        self.rate = rate
        self.threads = threads
        self.give_up_after = give_up_after
        self.acks: dict[int, Ack] = {}
        self.stats = SendStats()
        self._next = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.started_at = 0.0
        self.finished_at = 0.0

    def start(self) -> None:
        self.started_at = time.monotonic()
        for n in range(self.threads):
            thread = threading.Thread(target=self._run, name=f"sender-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def done(self) -> bool:
        return all(not t.is_alive() for t in self._threads)

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        self.finished_at = time.monotonic()

    def first_ack_after(self, moment: float) -> float | None:
        with self._lock:
            times = [a.at for a in self.acks.values() if a.at >= moment]
        return min(times) if times else None

    def _take(self) -> Webhook | None:
        with self._lock:
            if self._next >= len(self.webhooks) or self._stop.is_set():
                return None
            webhook = self.webhooks[self._next]
            self._next += 1
        return webhook

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while (webhook := self._take()) is not None:
                due = self.started_at + webhook.index / self.rate
                if self._stop.wait(max(0.0, due - time.monotonic())):
                    return
                self._send(client, webhook)

    def _send(self, client: httpx.Client, webhook: Webhook) -> None:
        first = time.monotonic()
        request = webhook.request(at=datetime.now(UTC))
        pause, attempts = 0.25, 0
        while not self._stop.is_set():
            attempts += 1
            if attempts > 1 and webhook.connector.signs_timestamp:
                request = webhook.request(at=datetime.now(UTC))  # signed afresh, same body
            wait = pause
            try:
                response = client.post(
                    f"{self.base}/hooks/{webhook.instance_id}",
                    content=request.body,
                    headers=dict(request.headers),
                )
            except httpx.TransportError:
                with self._lock:
                    self.stats.connection_errors += 1
                    self.stats.unavailable_at.append(time.monotonic())
            else:
                with self._lock:
                    self.stats.statuses[response.status_code] += 1
                if response.status_code == 200:
                    (event,) = response.json()["events"]
                    with self._lock:
                        self.acks[webhook.index] = Ack(
                            webhook.index, event["id"], time.monotonic(), attempts, bool(event["duplicate"])
                        )
                    return
                if response.status_code not in (429, 502, 503, 504):
                    with self._lock:
                        self.stats.rejected[webhook.index] = f"{response.status_code} {response.text[:200]}"
                    return
                with self._lock:
                    self.stats.unavailable_at.append(time.monotonic())
                with contextlib.suppress(ValueError):
                    wait = max(wait, float(response.headers.get("retry-after", 0)))
            if time.monotonic() - first > self.give_up_after:
                with self._lock:
                    self.stats.gave_up.append(webhook.index)
                return
            self._stop.wait(min(wait, MAX_PAUSE))
            pause = min(pause * 2, MAX_PAUSE)
