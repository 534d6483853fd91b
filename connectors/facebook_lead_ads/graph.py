"""Read one lead from the Meta Graph API and translate Graph errors into delivery errors.

Graph errors come as `{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}`,
usually with HTTP 400 whatever the cause, so the `code` decides what the caller does next
[doc: developers.facebook.com/docs/graph-api/guides/error-handling].
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime
from typing import Any

import httpx

from hub import AuthDeliveryError, PermanentDeliveryError, TransientDeliveryError
from hub.errors import DeliveryError

__all__ = [
    "LEAD_FIELDS",
    "appsecret_proof",
    "is_graph_id",
    "lead_url",
    "parse_created_time",
    "read_lead",
]

#: The lead fields requested, per shared/reference/sources.md section 13 ("Fetch").
LEAD_FIELDS = (
    "created_time,id,ad_id,ad_name,adset_id,adset_name,campaign_id,campaign_name,"
    "form_id,is_organic,platform,field_data,custom_disclaimer_responses"
)

#: 102 session / 190 access token invalid or expired; 10 and 200-299 missing permission
#: (e.g. `leads_retrieval`): all need new credentials, so the destination pauses.
_AUTH_CODES = frozenset({10, 102, 190, *range(200, 300)})
#: 1 unknown / 2 service (downtime), 4 / 17 / 32 / 613 / 341 throttling, 80000-80014
#: business-use-case rate limits (80005 is LeadGen): retry later.
_TRANSIENT_CODES = frozenset({1, 2, 4, 17, 32, 341, 613, *range(80000, 80015)})
#: Longest Graph error message kept in our error (they can be long, never useful past that).
_MESSAGE_LIMIT = 300

_GRAPH_ID = re.compile(r"^[0-9]{1,32}$")


def is_graph_id(value: str) -> bool:
    """True for a Graph object id (a numeric string), so it is safe as a URL path segment."""
    return bool(_GRAPH_ID.match(value))


def lead_url(base_url: str, graph_version: str, lead_id: str) -> str:
    """`{base}/{version}/{lead_id}`, e.g. `https://graph.facebook.com/v21.0/4441…`."""
    return f"{base_url.rstrip('/')}/{graph_version.strip('/')}/{lead_id}"


def appsecret_proof(app_secret: bytes, access_token: str) -> str:
    """The `appsecret_proof` Graph checks when the app requires it: hex HMAC-SHA256 of the
    access token under the app secret. It proves the caller knows the secret without
    revealing the token."""
    return hmac.new(app_secret, access_token.encode(), hashlib.sha256).hexdigest()


def parse_created_time(value: Any) -> datetime | None:
    """A lead's `created_time` (`2025-01-15T10:20:30+0000`) as an aware datetime, or None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


async def read_lead(
    client: Any,
    *,
    url: str,
    access_token: str,
    proof: str | None,
    lead_id: str,
) -> dict[str, Any]:
    """GET the lead through `client` (an `httpx.AsyncClient`) and return its JSON object.

    The token travels in the `Authorization` header, never in the URL, so it cannot leak
    into access logs or error messages that quote the URL.

    Raises:
        AuthDeliveryError: the token is invalid, expired or lacks a permission.
        TransientDeliveryError: throttled, Graph unavailable, or the network failed.
        PermanentDeliveryError: the lead does not exist (any more) or the request is refused.
    """
    params = {"fields": LEAD_FIELDS}
    if proof is not None:
        params["appsecret_proof"] = proof
    try:
        response = await client.get(
            url,
            params=params,
            headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
        )
    except httpx.TransportError as exc:
        raise TransientDeliveryError(
            f"Graph API unreachable reading lead {lead_id}: {type(exc).__name__}"
        ) from None
    body = _json_or_none(response)
    if response.is_success:
        if not isinstance(body, dict) or "error" in body:
            raise TransientDeliveryError(
                f"Graph API returned HTTP {response.status_code} for lead {lead_id} "
                "without a lead object"
            )
        return body
    raise _graph_error(response, body, lead_id=lead_id, secrets=(access_token,))


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _graph_error(
    response: httpx.Response, body: Any, *, lead_id: str, secrets: tuple[str, ...]
) -> DeliveryError:
    """The delivery error for a failed Graph call: by error `code`, then by HTTP status."""
    status = response.status_code
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    code = error.get("code") if isinstance(error.get("code"), int) else None
    detail = _describe(error, secrets)
    message = f"Graph API HTTP {status} reading lead {lead_id}: {detail}"
    if code in _AUTH_CODES or status == 401:
        return AuthDeliveryError(
            f"{message}; renew the page_access_token (it needs leads_retrieval)"
        )
    if code in _TRANSIENT_CODES or status == 429 or status >= 500:
        return TransientDeliveryError(message, retry_after=_retry_after(response))
    return PermanentDeliveryError(message)


def _describe(error: dict[str, Any], secrets: tuple[str, ...]) -> str:
    if not error:
        return "no Graph error object in the response"
    parts = [str(error.get("type") or "GraphError")]
    if error.get("code") is not None:
        code = f"#{error['code']}"
        if error.get("error_subcode") is not None:
            code += f"/{error['error_subcode']}"
        parts.append(f"({code})")
    text = str(error.get("message") or "")[:_MESSAGE_LIMIT]
    for secret in secrets:
        # Graph does not echo tokens, but never let one reach a log through us.
        if secret:
            text = text.replace(secret, "***")
    if text:
        parts.append(text)
    if error.get("fbtrace_id"):
        parts.append(f"[fbtrace_id {error['fbtrace_id']}]")
    return " ".join(parts)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
