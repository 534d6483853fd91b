"""An httpx transport that paces every request through the account's `RateGovernor`.

Adapters just make HTTP calls. Before each request this transport waits for a slot; a 429
is reported to the governor (which blocks and slows the whole account) and, when the wait
it asks for is short, the same request is sent again; when it is long, `RateLimited` is
raised through the adapter to the delivery layer, which re-queues the delivery for later
without counting an attempt.
"""

from __future__ import annotations

import logging
import time
from email.utils import parsedate_to_datetime

import httpx

from hub.delivery.governor import RateGovernor, RateLimited

__all__ = ["GovernedTransport", "retry_after_seconds"]

log = logging.getLogger(__name__)

#: Times one request is re-sent after a 429 before the 429 goes back to the adapter.
MAX_RESENDS = 3
_RESET_HEADERS = ("x-ratelimit-reset", "ratelimit-reset")


def retry_after_seconds(response: httpx.Response) -> float | None:
    """Seconds from `Retry-After` (delta or HTTP date) or a reset header, if present."""
    value = response.headers.get("retry-after")
    if value:
        value = value.strip()
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                when = parsedate_to_datetime(value)
            except (TypeError, ValueError):
                return None
            return max(0.0, when.timestamp() - time.time())
    for name in _RESET_HEADERS:
        reset = response.headers.get(name)
        if reset:
            try:
                number = float(reset)
            except ValueError:
                continue
            # Epoch seconds (Pipedrive) or seconds from now.
            return max(0.0, number - time.time()) if number > 1e9 else max(0.0, number)
    return None


class GovernedTransport(httpx.BaseTransport):
    """Wraps `inner`, waiting for the governor before each request and handling 429s."""

    def __init__(
        self, inner: httpx.BaseTransport, governor: RateGovernor, *, max_resend_wait: float = 30.0
    ) -> None:
        self.inner = inner
        self.governor = governor
        self.max_resend_wait = max_resend_wait

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for _ in range(MAX_RESENDS + 1):
            self.governor.acquire()  # raises RateLimited when the wait would be too long
            response = self.inner.handle_request(request)
            if response.status_code != 429:
                return response
            retry_after = retry_after_seconds(response)
            self.governor.penalize(retry_after)
            response.read()
            response.close()
            if (retry_after or 0) > self.max_resend_wait:
                break
            log.info("429 from %s; re-sending after the governor's wait", request.url.host)
        raise RateLimited(retry_after if retry_after is not None else self.governor.seconds)

    def close(self) -> None:
        self.inner.close()
