"""Pipedrive responses -> the hub's delivery errors: the one classification table.

Statuses and bodies per shared/reference/crm-apis.md §3 and §5. Pipedrive errors look like
`{"success": false, "error": "<message>", "error_info": "...", "code": "..."}`; gateway 401s
add `"errorCode": 401`. Messages keep the CRM's own `error` text and never the credential.
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime
from typing import Final

import httpx

from hub.errors import (
    AuthDeliveryError,
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
)

__all__ = ["NotFoundError", "classify", "retry_after", "transport_failure"]

#: How long to back off after Cloudflare's HTML 403, which Pipedrive serves to api_token
#: clients that keep calling after a 429 (crm-apis.md §3); no header says how long.
CLOUDFLARE_BLOCK_WAIT: Final = 60.0
_MAX_MESSAGE: Final = 300


class NotFoundError(PermanentDeliveryError):
    """404/410: the record does not exist (any more). A `known_id` write falls back to lookup."""


#: status -> class, for the statuses that do not depend on the body.
_BY_STATUS: Final[dict[int, type[DeliveryError]]] = {
    400: PermanentDeliveryError,  # validation: dead-letter with Pipedrive's message
    401: AuthDeliveryError,  # bad or revoked API token
    402: AuthDeliveryError,  # "company account is not open" (billing): pause until fixed
    404: NotFoundError,
    405: PermanentDeliveryError,
    410: NotFoundError,  # deleted
    415: PermanentDeliveryError,  # feature not enabled on the account
    422: PermanentDeliveryError,
    429: TransientDeliveryError,  # burst window or daily token budget
    500: TransientDeliveryError,
    501: PermanentDeliveryError,  # not implemented: retrying cannot help
    502: TransientDeliveryError,
    503: TransientDeliveryError,
    504: TransientDeliveryError,
}


def _is_json(response: httpx.Response) -> bool:
    return "json" in response.headers.get("content-type", "")


def _crm_message(response: httpx.Response) -> str:
    """Pipedrive's own `error` text (plus its `code`), or a short note for non-JSON bodies."""
    if _is_json(response):
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            message = str(body.get("error") or body.get("message") or "no error message")
            code = body.get("code")
            return f"{message} ({code})" if code else message
    text = response.text.strip()
    if text.lower().startswith(("<!doctype", "<html")):
        return "non-JSON (HTML) response, e.g. a Cloudflare block page"
    return text or "empty response body"


def retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait: `Retry-After` (seconds or HTTP date), else `x-ratelimit-reset`.

    Pipedrive documents only `x-ratelimit-reset` ("the remaining window", seconds);
    `Retry-After` has been seen on 429s (crm-apis.md §3, NV), so it wins when present.
    """
    value = response.headers.get("retry-after", "").strip()
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
            except (TypeError, ValueError):
                pass
    reset = response.headers.get("x-ratelimit-reset", "").strip()
    if reset:
        try:
            number = float(reset)
        except ValueError:
            return None
        # Seconds from now as documented; an epoch timestamp is tolerated.
        return max(0.0, number - time.time()) if number > 1e9 else max(0.0, number)
    return None


def classify(response: httpx.Response, action: str, *, secret: str | None = None) -> DeliveryError:
    """The delivery error for a failed Pipedrive response to `action` (e.g. "create person")."""
    status = response.status_code
    message = _crm_message(response)[:_MAX_MESSAGE]
    text = f"pipedrive: {action}: HTTP {status}: {message}"
    if secret:
        text = text.replace(secret, "***")
    if status == 403:
        if not _is_json(response):  # Cloudflare's abuse block after ignored 429s: a throttle
            return TransientDeliveryError(text, retry_after=retry_after(response) or CLOUDFLARE_BLOCK_WAIT)
        return AuthDeliveryError(text)  # permission denied or an account limit (`code`)
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = TransientDeliveryError if status >= 500 else PermanentDeliveryError
    if cls is TransientDeliveryError:
        return TransientDeliveryError(text, retry_after=retry_after(response))
    return cls(text)


def transport_failure(exc: httpx.RequestError, action: str) -> TransientDeliveryError:
    """A timeout or connection failure: retry (the write may have happened; callers look up first)."""
    return TransientDeliveryError(f"pipedrive: {action}: {type(exc).__name__}: no response from Pipedrive")
