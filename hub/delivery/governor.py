"""A rate governor shared by every worker and process: one Redis sliding-log per CRM account.

CRMs enforce "N requests in any rolling W seconds" (HubSpot: 100 / 10 s). A token bucket
with a full burst breaks that rule at the window's edge, so the governor keeps the times of
the last N requests and hands out *reservations*: request k may start at
`max(now, time of request k-N + W)`. Callers wait for their slot (a wait never fails and
never uses a retry). On a 429 the governor blocks the account until `Retry-After` and
slows down (x0.7), then recovers by 10 % of the budget per window.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from hub.errors import TransientDeliveryError
from hub.runtime import keys

__all__ = ["RateGovernor", "RateLimited"]

# KEYS: log (list of reserved slot times, newest first), state (hash)
# ARGV: n, window_ms, max_wait_ms, margin_ms
# Returns the wait in ms (>= 0, a slot was reserved) or -wait (too long: nothing reserved).
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[2], 'factor', 'penalty_at', 'blocked_until')
local factor = tonumber(state[1]) or 1.0
local penalty_at = tonumber(state[2]) or 0
local blocked = tonumber(state[3]) or 0
if factor < 1.0 then
  factor = math.min(1.0, factor + 0.1 * (now - penalty_at) / window)
end
local effective = window / factor + tonumber(ARGV[4])
local slot = math.max(now, blocked)
local newest = tonumber(redis.call('LINDEX', KEYS[1], 0) or '0')
if newest > slot then slot = newest end
local len = redis.call('LLEN', KEYS[1])
if len >= n then
  local oldest = tonumber(redis.call('LINDEX', KEYS[1], n - 1))
  if oldest + effective > slot then slot = oldest + effective end
end
local wait = slot - now
if wait > tonumber(ARGV[3]) then return -wait end
redis.call('LPUSH', KEYS[1], slot)
redis.call('LTRIM', KEYS[1], 0, n - 1)
redis.call('PEXPIRE', KEYS[1], math.floor(effective * 2 + wait))
return wait
"""

# KEYS: state. ARGV: retry_after_ms, window_ms. Slow down and block until Retry-After.
_PENALIZE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local factor = tonumber(redis.call('HGET', KEYS[1], 'factor') or '1')
local penalty_at = tonumber(redis.call('HGET', KEYS[1], 'penalty_at') or '0')
if factor < 1.0 then factor = math.min(1.0, factor + 0.1 * (now - penalty_at) / tonumber(ARGV[2])) end
factor = math.max(0.1, factor * 0.7)
local blocked = now + tonumber(ARGV[1])
local current = tonumber(redis.call('HGET', KEYS[1], 'blocked_until') or '0')
if current > blocked then blocked = current end
redis.call('HSET', KEYS[1], 'factor', factor, 'penalty_at', now, 'blocked_until', blocked)
redis.call('HINCRBY', KEYS[1], 'rate_limited', 1)
redis.call('PEXPIRE', KEYS[1], 86400000)
return tostring(factor)
"""


class RateLimited(TransientDeliveryError):
    """The CRM account is rate-limited for longer than a caller should wait: try again after
    `retry_after` seconds. A wait, not a failure: it never uses one of a delivery's retries."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(
            f"rate limited: the CRM's request budget is used up for {retry_after:.1f} s",
            retry_after=retry_after,
        )


@dataclass
class RateGovernor:
    """Paces one CRM account at `requests` per `seconds` across every process.

    Args:
        client: Redis client.
        account: the destination's `account_key()` (never a credential).
        requests, seconds: the documented budget.
        max_wait: longest a caller waits for a slot; beyond it `reserve` raises RateLimited.
        margin: seconds added to the window, for clock skew and network jitter.
    """

    client: Any
    account: str
    requests: int
    seconds: float
    max_wait: float = 60.0
    margin: float = 0.15

    def __post_init__(self) -> None:
        self._acquire = self.client.register_script(_ACQUIRE)
        self._penalize = self.client.register_script(_PENALIZE)

    @property
    def _keys(self) -> list[str]:
        return [keys.rate_log(self.account), keys.rate_state(self.account)]

    def reserve(self) -> float:
        """Reserve the next request slot; seconds to wait before sending (RateLimited if too far)."""
        wait_ms = int(
            self._acquire(
                keys=self._keys,
                args=[
                    self.requests,
                    int(self.seconds * 1000),
                    int(self.max_wait * 1000),
                    int(self.margin * 1000),
                ],
            )
        )
        if wait_ms < 0:
            raise RateLimited(-wait_ms / 1000)
        return wait_ms / 1000

    def acquire(self) -> None:
        """Wait (sleeping this thread) until a request may be sent."""
        wait = self.reserve()
        if wait > 0:
            time.sleep(wait)

    def penalize(self, retry_after: float | None) -> float:
        """Record a 429: block until `retry_after` (default one window) and slow down."""
        delay = retry_after if retry_after is not None else self.seconds
        factor = self._penalize(
            keys=[keys.rate_state(self.account)], args=[int(delay * 1000), int(self.seconds * 1000)]
        )
        return float(factor)

    def stats(self) -> dict[str, float]:
        raw = self.client.hgetall(keys.rate_state(self.account))
        return {k.decode(): float(v) for k, v in raw.items()}
