"""A background sampler: worker peak RSS every second, queue and retry depths (the largest
seen, and retries overdue by more than 10 s, which would mean nobody pumps them), and a
progress line every `every` seconds."""

from __future__ import annotations

import contextlib
import threading
import time

import redis

from chaos.crm import FaultyCrm
from chaos.senders import Senders
from chaos.stack import ChaosStack
from hub.runtime import keys
from hub.runtime.eventlog import EventLog, now_ms

__all__ = ["Monitor"]

#: A parked retry this late (seconds past its due time) counts as stranded.
OVERDUE = 10.0


class Monitor(threading.Thread):
    def __init__(
        self, stack: ChaosStack, senders: Senders, crm: FaultyCrm, *, every: float, t0: float
    ) -> None:
        super().__init__(name="monitor", daemon=True)
        self.stack = stack
        self.senders = senders
        self.crm = crm
        self.every = every
        self.t0 = t0
        self.max_parked = 0
        self.max_overdue = 0
        self.max_queued = 0
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)

    def run(self) -> None:
        client = redis.Redis.from_url(self.stack.url, socket_timeout=2, socket_connect_timeout=1)
        last_print = 0.0
        while not self._halt.wait(1.0):
            self.stack.sample_rss()
            line = None
            with contextlib.suppress(redis.RedisError):
                parked = int(client.zcard(keys.retry_schedule()))
                overdue = int(client.zcount(keys.retry_schedule(), "-inf", now_ms() - int(OVERDUE * 1000)))
                queued = sum(
                    int(client.llen(f"dramatiq:{q}")) for q in (keys.EVENTS_QUEUE, keys.delivery_queue("crm"))
                )
                self.max_parked = max(self.max_parked, parked)
                self.max_overdue = max(self.max_overdue, overdue)
                self.max_queued = max(self.max_queued, queued)
                if time.monotonic() - last_print >= self.every:
                    counts = EventLog(client).counts()
                    line = (
                        f"acked {len(self.senders.acks)}/{len(self.senders.webhooks)}  "
                        f"delivered {counts['delivered']}  failed(retrying) {counts['failed']}  "
                        f"mapped {counts['mapped']}  received {counts['received']}  dead {counts['dead']}  "
                        f"queued {queued}  parked {parked}  CRM calls {self.crm.faults.calls}"
                    )
            if line is None and time.monotonic() - last_print >= self.every:
                line = "(server unreachable)"
            if line is not None:
                last_print = time.monotonic()
                print(f"[{time.monotonic() - self.t0:7.1f}s] {line}", flush=True)
        client.close()
