"""ActiveCampaign responses -> the hub's delivery errors: the one classification table.

ActiveCampaign has no common error envelope (shared/reference/crm-apis.md §2 *Errors*):
422 `{"errors": [{"title", "detail", "code", "source"}]}`, 404 `{"message": ...}` or
`{"errors": [{"status": 404, "title": "Not Found", "detail": ...}]}`, 403 `{"message": "Forbidden"}`,
some 400s `{}`. A missing or wrong `Api-Token` gets 403 (not 401) on most of v3; both are auth.
429 carries `Retry-After` (whole seconds); 5xx are worth a retry; every other 4xx is permanent.
"""

from __future__ import annotations

from typing import Any, Final

import httpx

from hub.errors import (
    AuthDeliveryError,
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
)

__all__ = ["crm_message", "delivery_error", "is_duplicate", "transport_error"]

#: status -> error class; statuses not listed: 5xx transient, other 4xx permanent.
_TABLE: Final[dict[int, type[DeliveryError]]] = {
    401: AuthDeliveryError,
    403: AuthDeliveryError,
    408: TransientDeliveryError,
    425: TransientDeliveryError,
    429: TransientDeliveryError,
}
_MAX_MESSAGE: Final = 500


def crm_message(response: httpx.Response) -> str:
    """The CRM's own words from an error body (titles and details joined), or the reason phrase."""
    body: Any
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:_MAX_MESSAGE] if text and not text.startswith("<") else response.reason_phrase
    parts: list[str] = []
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list):
            for error in errors:
                if isinstance(error, dict):
                    parts.extend(
                        str(error[key]) for key in ("title", "detail") if error.get(key) not in (None, "")
                    )
                elif isinstance(error, str):
                    parts.append(error)
        for key in ("message", "error"):
            if isinstance(body.get(key), str) and body[key]:
                parts.append(body[key])
    message = "; ".join(dict.fromkeys(parts)) or response.reason_phrase or "no error message"
    return message[:_MAX_MESSAGE]


def is_duplicate(response: httpx.Response) -> bool:
    """A 422 whose errors say `code: duplicate` (e.g. POST /contacts with a known email)."""
    if response.status_code != 422:
        return False
    try:
        errors = response.json().get("errors")
    except (ValueError, AttributeError):
        return False
    return isinstance(errors, list) and any(
        isinstance(e, dict) and e.get("code") == "duplicate" for e in errors
    )


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        return None


def delivery_error(response: httpx.Response, what: str) -> DeliveryError:
    """The delivery error for a non-2xx `response` to the request described by `what`.

    `what` names the call without its query string (which can carry an email address);
    the message never contains the API token, which ActiveCampaign never echoes.
    """
    status = response.status_code
    kind = _TABLE.get(status) or (TransientDeliveryError if status >= 500 else PermanentDeliveryError)
    message = f"ActiveCampaign {what}: HTTP {status}: {crm_message(response)}"
    if kind is TransientDeliveryError:
        return TransientDeliveryError(message, retry_after=_retry_after(response))
    return kind(message)


def transport_error(exc: httpx.HTTPError, what: str) -> TransientDeliveryError:
    """A timeout or connection failure: the request may or may not have been applied."""
    return TransientDeliveryError(f"ActiveCampaign {what}: {type(exc).__name__}: no answer ({exc})")
