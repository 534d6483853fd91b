"""HubSpot responses -> the hub's delivery errors: the one classification table of this adapter.

Sources: shared/reference/crm-apis.md §1.6 (429 bodies, `policyName`), §1.7 (error body,
statuses) and §5 (error -> delivery class). Messages carry HubSpot's own text and
correlation id, never the access token.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Final

import httpx

from hub.errors import AuthDeliveryError, DeliveryError, PermanentDeliveryError, TransientDeliveryError

__all__ = [
    "CLASSIFICATION",
    "ConflictError",
    "classify",
    "classify_item_error",
    "crm_message",
    "existing_id",
    "retry_after",
    "transport_error",
]

#: Status -> (error class, why). Not listed: other 5xx transient, other 4xx permanent.
CLASSIFICATION: Final[Mapping[int, tuple[type[DeliveryError], str]]] = {
    400: (PermanentDeliveryError, "VALIDATION_ERROR: HubSpot refused the data"),
    401: (AuthDeliveryError, "the access token is missing, wrong, expired or revoked"),
    403: (AuthDeliveryError, "the token lacks a scope for this call"),
    404: (PermanentDeliveryError, "OBJECT_NOT_FOUND"),
    409: (PermanentDeliveryError, "CONFLICT: the record exists (callers resolve `Existing ID`)"),
    414: (PermanentDeliveryError, "request URI too long"),
    423: (TransientDeliveryError, "record locked by a sync: wait at least 2 s"),
    429: (TransientDeliveryError, "rate limited (TEN_SECONDLY_ROLLING, DAILY or search secondly)"),
    477: (TransientDeliveryError, "portal migration in progress: wait for Retry-After"),
    500: (TransientDeliveryError, "HubSpot internal error"),
    502: (TransientDeliveryError, "bad gateway"),
    503: (TransientDeliveryError, "service unavailable"),
    504: (TransientDeliveryError, "gateway timeout"),
    521: (TransientDeliveryError, "origin down"),
    522: (TransientDeliveryError, "connection timed out (alert if it persists)"),
    523: (TransientDeliveryError, "origin unreachable"),
    524: (TransientDeliveryError, "origin timeout"),
    525: (TransientDeliveryError, "SSL handshake failed (alert if it persists)"),
    526: (TransientDeliveryError, "invalid SSL certificate (alert if it persists)"),
}

#: Per-input error `category` in a 207 batch response -> error class.
_ITEM_CATEGORIES: Final[Mapping[str, type[DeliveryError]]] = {
    "RATE_LIMITS": TransientDeliveryError,
    "RATE_LIMIT": TransientDeliveryError,
    "LOCKED": TransientDeliveryError,
    "INTERNAL_ERROR": TransientDeliveryError,
    "TIMEOUT": TransientDeliveryError,
}

_EXISTING_ID = re.compile(r"Existing ID:\s*(\d+)")
#: HubSpot private-app tokens and service keys (`pat-na1-…`); redacted wherever they appear.
_TOKEN = re.compile(r"\bpat-[a-z0-9]+-[0-9a-f-]{8,}\b", re.IGNORECASE)
_MAX_MESSAGE = 600
_MIN_LOCK_WAIT = 2.0


class ConflictError(PermanentDeliveryError):
    """409 CONFLICT: the record already exists; `existing_id` is HubSpot's id for it, if given."""

    def __init__(self, message: str, *, existing_id: str | None) -> None:
        super().__init__(message)
        self.existing_id = existing_id


def _redact(text: str, secret: str | None) -> str:
    if secret:
        text = text.replace(secret, "[token]")
    return _TOKEN.sub("[token]", text)


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        return None


def crm_message(body: Any, *, fallback: str = "", secret: str | None = None) -> str:
    """HubSpot's own words: category, message, each error detail, correlation id."""
    if not isinstance(body, Mapping):
        return _redact(fallback.strip()[:_MAX_MESSAGE], secret)
    parts = [str(body.get("category") or body.get("errorType") or "").strip()]
    parts.append(str(body.get("message") or "").strip())
    for detail in body.get("errors") or ():
        if isinstance(detail, Mapping) and detail.get("message"):
            code = f" [{detail['code']}]" if detail.get("code") else ""
            parts.append(f"{detail['message']}{code}")
    text = ": ".join(p for p in parts[:2] if p)
    if parts[2:]:
        text += " (" + "; ".join(parts[2:]) + ")"
    if body.get("correlationId"):
        text += f" [correlationId {body['correlationId']}]"
    return _redact(text[:_MAX_MESSAGE], secret)


def existing_id(body: Any) -> str | None:
    """The id in a 409 CONFLICT message (`Contact already exists. Existing ID: 123`).
    The message format is not a documented contract (crm-apis.md §1.1, NV)."""
    if isinstance(body, Mapping):
        found = _EXISTING_ID.search(str(body.get("message") or ""))
        return found.group(1) if found else None
    return None


def _seconds_to_utc_midnight(now: float) -> float:
    current = datetime.fromtimestamp(now, UTC)
    midnight = (current + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - current).total_seconds()


def retry_after(response: httpx.Response, body: Any = None, *, now: float | None = None) -> float | None:
    """Seconds to wait: `Retry-After` (delta or HTTP date), else what the 429 body implies.

    `DAILY` resets at midnight in the account's time zone, which the adapter does not know:
    the wait runs to the next UTC midnight (NV; a retry that is still early gets a new 429).
    """
    now = time.time() if now is None else now
    header = response.headers.get("retry-after", "").strip()
    if header:
        try:
            return max(0.0, float(header))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(header).timestamp() - now)
            except (TypeError, ValueError):
                pass
    if response.status_code == 423:
        return _MIN_LOCK_WAIT
    if response.status_code != 429 or not isinstance(body, Mapping):
        return None
    policy = str(body.get("policyName") or "").upper()
    if policy == "DAILY":
        return _seconds_to_utc_midnight(now)
    if policy == "TEN_SECONDLY_ROLLING":
        interval = response.headers.get("x-hubspot-ratelimit-interval-milliseconds")
        try:
            return float(interval) / 1000.0 if interval else 10.0
        except ValueError:
            return 10.0
    if "secondly" in str(body.get("message") or "").lower():  # the search API's own limit
        return 1.0
    return None


def classify(response: httpx.Response, *, what: str, secret: str | None = None) -> DeliveryError:
    """The delivery error for a non-2xx HubSpot response to `what` (e.g. "contacts batch upsert")."""
    status = response.status_code
    body = _body(response)
    cls, why = CLASSIFICATION.get(
        status, (TransientDeliveryError if status >= 500 else PermanentDeliveryError, f"HTTP {status}")
    )
    detail = crm_message(body, fallback=response.text if body is None else "", secret=secret)
    message = f"HubSpot {what}: {status} {detail or why}"
    if cls is TransientDeliveryError:
        wait = retry_after(response, body)
        if status == 423 and wait is not None:
            wait = max(wait, _MIN_LOCK_WAIT)
        return TransientDeliveryError(
            message, retry_after=None if wait is None else math.ceil(wait * 10) / 10
        )
    if status == 409:
        return ConflictError(message, existing_id=existing_id(body))
    return cls(message)


def classify_item_error(error: Mapping[str, Any], *, what: str, secret: str | None = None) -> DeliveryError:
    """The delivery error for one input's entry in a 207 multi-status `errors` list."""
    category = str(error.get("category") or "")
    message = f"HubSpot {what}: {crm_message(error, secret=secret)}"
    if category == "CONFLICT":
        return ConflictError(message, existing_id=existing_id(error))
    return _ITEM_CATEGORIES.get(category, PermanentDeliveryError)(message)


def transport_error(exc: httpx.TransportError, *, what: str) -> TransientDeliveryError:
    """A timeout or connection failure: transient; a write may still have committed, so the
    retry must go through the keyed upsert / lookup again (crm-apis.md §6)."""
    return TransientDeliveryError(f"HubSpot {what}: no answer ({type(exc).__name__}: {exc})")
