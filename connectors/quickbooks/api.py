"""QuickBooks Online API reads with OAuth 2.0 bearer tokens, refreshed once on a 401.

`QuickBooksSession` holds the current access and refresh tokens in memory (Intuit rotates
the refresh token on refresh, so the newest one must be used next). Responses map to the
hub's delivery errors; nothing here retries, sleeps or logs (the delivery layer does).
Error bodies are Intuit `Fault` objects (shared/reference/sources.md §10).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from hub import AuthDeliveryError, PermanentDeliveryError, TransientDeliveryError

__all__ = ["RATE_LIMIT_WAIT", "QuickBooksSession", "fault_message", "fault_text"]

#: Seconds to wait after a 429 without Retry-After (Intuit's advice, sources.md §10).
RATE_LIMIT_WAIT = 60.0


class QuickBooksSession:
    """One connector instance's OAuth state and its reads of `/v3/company/...`."""

    def __init__(
        self,
        *,
        api_base_url: str,
        token_url: str,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        access_token: str | None,
        minor_version: int,
    ) -> None:
        self._api_base_url = api_base_url.rstrip("/")
        self._token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._refresh_token = refresh_token
        self._access_token = access_token
        self._minor_version = minor_version
        self._refresh_lock = asyncio.Lock()

    def entity_url(self, realm_id: str, entity: str, entity_id: str) -> str:
        """`{api_base_url}/v3/company/{realm}/{entity lower case}/{id}`."""
        return f"{self._api_base_url}/v3/company/{realm_id}/{entity.lower()}/{entity_id}"

    def company_url(self, realm_id: str, path: str) -> str:
        """`{api_base_url}/v3/company/{realm}/{path}`, e.g. `path="cdc"`."""
        return f"{self._api_base_url}/v3/company/{realm_id}/{path}"

    async def get_entity(
        self, client: httpx.AsyncClient, realm_id: str, entity: str, entity_id: str
    ) -> dict[str, Any]:
        """GET one entity (`{"Invoice": {...}, "time": ...}`), refreshing the token once on 401.

        Raises AuthDeliveryError (credentials refused), TransientDeliveryError (5xx, 429,
        network), PermanentDeliveryError (400/404 and other refusals).
        """
        what = f"{entity} {entity_id} in company {realm_id}"
        body = await self.get_json(client, self.entity_url(realm_id, entity, entity_id), what=what)
        if not isinstance(body, dict) or not isinstance(body.get(entity), dict):
            raise PermanentDeliveryError(
                f"QuickBooks response for {what} has no {entity} object"
            )
        return body

    async def get_json(
        self,
        client: httpx.AsyncClient,
        url: str,
        params: Mapping[str, str] | None = None,
        *,
        what: str,
    ) -> Any:
        """GET `url` (with `params` and `minorversion`) with the bearer token; the JSON body.

        Fetches a token first if there is none, and refreshes it once on a 401. `what`
        names the read in error messages. Raises AuthDeliveryError (credentials refused),
        TransientDeliveryError (5xx, 429, network), PermanentDeliveryError (400/404, other
        refusals, a body that is not JSON).
        """
        query = {**(params or {}), "minorversion": str(self._minor_version)}
        refreshed = self._access_token is None
        if refreshed:
            await self._refresh(client, failed_token=None)
        token = self._access_token
        response = await self._get(client, url, query, token)
        if response.status_code == 401 and not refreshed:
            # One-shot re-authentication, not a retry policy: an access token lives 1 h.
            await self._refresh(client, failed_token=token)
            response = await self._get(client, url, query, self._access_token)
        _raise_for_status(response, what)
        try:
            return response.json()
        except ValueError:
            raise PermanentDeliveryError(
                f"QuickBooks returned a non-JSON body for {what}"
            ) from None

    async def _get(
        self,
        client: httpx.AsyncClient,
        url: str,
        params: Mapping[str, str],
        token: str | None,
    ) -> httpx.Response:
        try:
            return await client.get(
                url,
                params=params,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            )
        except httpx.TransportError as exc:
            raise TransientDeliveryError(
                f"QuickBooks API unreachable: {type(exc).__name__}"
            ) from None

    async def _refresh(self, client: httpx.AsyncClient, *, failed_token: str | None) -> None:
        """Swap the refresh token for new tokens, unless a concurrent call already did."""
        async with self._refresh_lock:
            if self._access_token is not None and self._access_token != failed_token:
                return
            try:
                response = await client.post(
                    self._token_url,
                    data={"grant_type": "refresh_token", "refresh_token": self._refresh_token},
                    headers={"Accept": "application/json"},
                    auth=(self._client_id, self._client_secret),
                )
            except httpx.TransportError as exc:
                raise TransientDeliveryError(
                    f"Intuit token endpoint unreachable: {type(exc).__name__}"
                ) from None
            if response.status_code == 429 or response.status_code >= 500:
                raise TransientDeliveryError(
                    f"Intuit token endpoint answered {response.status_code}",
                    retry_after=_retry_after(response),
                )
            body = _json_or_none(response)
            if response.status_code != 200 or not isinstance(body, dict):
                error = body.get("error") if isinstance(body, dict) else None
                raise AuthDeliveryError(
                    f"Intuit refused the token refresh ({response.status_code}"
                    f"{', ' + str(error) if error else ''}): reconnect the QuickBooks app "
                    "and set a new refresh_token"
                )
            access, refresh = body.get("access_token"), body.get("refresh_token")
            if not isinstance(access, str) or not access:
                raise AuthDeliveryError("Intuit token response has no access_token")
            self._access_token = access
            if isinstance(refresh, str) and refresh:
                self._refresh_token = refresh


def _raise_for_status(response: httpx.Response, what: str) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    tid = response.headers.get("intuit_tid")
    suffix = f" (intuit_tid {tid})" if tid else ""
    if status in (401, 403):
        # Auth faults: Message and code only; Detail is not needed to act and is kept out.
        raise AuthDeliveryError(
            f"QuickBooks refused the credentials for {what}: {status} "
            f"{fault_message(response, detail=False)}{suffix}"
        )
    if status == 429 or status >= 500:
        retry_after = _retry_after(response)
        raise TransientDeliveryError(
            f"QuickBooks answered {status} for {what}: {fault_message(response)}{suffix}",
            retry_after=RATE_LIMIT_WAIT if retry_after is None and status == 429 else retry_after,
        )
    raise PermanentDeliveryError(
        f"QuickBooks answered {status} for {what}: {fault_message(response)}{suffix}"
    )


def fault_message(response: httpx.Response, *, detail: bool = True) -> str:
    """The Fault's messages, e.g. `Object Not Found (610): Another user deleted this`.

    Intuit spells the keys `Fault/Error/Message` and, on some 401s, `fault/error/message`.
    """
    text = fault_text(_json_or_none(response), detail=detail)
    return text or f"HTTP {response.status_code} {response.reason_phrase}".strip()


def fault_text(body: Any, *, detail: bool = True) -> str | None:
    """The messages of the `Fault` in a parsed body (any key case), or None if it has none."""
    fault = _get_ci(body, "fault")
    errors = _get_ci(fault, "error")
    if not isinstance(errors, list) or not errors:
        return None
    parts: list[str] = []
    for error in errors:
        message = str(_get_ci(error, "message") or "error")
        code = _get_ci(error, "code")
        text = f"{message} ({code})" if code else message
        more = _get_ci(error, "detail") if detail else None
        parts.append(f"{text}: {more}" if more else text)
    return "; ".join(parts)


def _get_ci(node: Any, key: str) -> Any:
    if not isinstance(node, dict):
        return None
    for name, value in node.items():
        if name.lower() == key:
            return value
    return None


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
