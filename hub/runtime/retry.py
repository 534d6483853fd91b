"""Retries live here and only here: exponential backoff with jitter, `Retry-After`, max age.

A message to retry is parked in a Redis sorted set scored by its due time, not in a
worker's memory (dramatiq keeps delayed messages in worker memory and strands them when
the broker connection drops: dramatiq issue #527). `RetryPump` moves due messages back
onto their dramatiq queue atomically, so any number of workers can run one.
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass

import redis

from hub.runtime import keys
from hub.runtime.broker import encode_message
from hub.runtime.eventlog import now_ms

__all__ = ["Backoff", "RetryPump", "schedule_retry"]

log = logging.getLogger(__name__)

# Pop due messages (score <= now) and enqueue each on its dramatiq queue, atomically.
# Members are "<queue>\n<redis message id>\n<encoded message>".
_PUMP = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
  local q_end = string.find(member, '\\n', 1, true)
  local id_end = string.find(member, '\\n', q_end + 1, true)
  local queue = string.sub(member, 1, q_end - 1)
  local msg_id = string.sub(member, q_end + 1, id_end - 1)
  local body = string.sub(member, id_end + 1)
  redis.call('HSET', 'dramatiq:' .. queue .. '.msgs', msg_id, body)
  redis.call('RPUSH', 'dramatiq:' .. queue, msg_id)
  redis.call('ZREM', KEYS[1], member)
end
return #due
"""


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: attempt n waits U(0.5, 1) x min(cap, base x 2^n)."""

    base: float = 1.0
    cap: float = 600.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before `attempt` (0-based); never less than the server's hint."""
        exp = min(self.cap, self.base * (2 ** min(attempt, 30)))
        wait = exp * random.uniform(0.5, 1.0)
        if retry_after is not None:
            wait = max(wait, retry_after)
        return float(wait)


def schedule_retry(
    client: redis.Redis, actor: str, queue: str, args: tuple[object, ...], delay_seconds: float
) -> None:
    """Park a message for `actor` on `queue` until `delay_seconds` from now."""
    msg_id, body = encode_message(actor, queue, args)
    member = queue.encode() + b"\n" + msg_id.encode() + b"\n" + body
    client.zadd(keys.retry_schedule(), {member: now_ms() + int(delay_seconds * 1000)})


class RetryPump:
    """A daemon thread that re-enqueues due retries every `interval` seconds."""

    def __init__(self, client: redis.Redis, *, interval: float = 0.25, batch: int = 500) -> None:
        self.client = client
        self.interval = interval
        self.batch = batch
        self._script = client.register_script(_PUMP)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def pump_once(self) -> int:
        """Move every due message to its queue; returns how many moved."""
        moved = 0
        while True:
            count = int(self._script(keys=[keys.retry_schedule()], args=[now_ms(), self.batch]))
            moved += count
            if count < self.batch:
                return moved

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="crmhub-retry-pump", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.pump_once()
            except redis.RedisError as exc:
                log.warning("retry pump: broker unavailable (%s); will try again", type(exc).__name__)
