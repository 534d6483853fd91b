"""The webhook endpoint `/hooks/<connector id>` as a plain ASGI handler (the hot path).

It bypasses the web framework's routing, dependency and middleware layers: read the body
(up to the limit), answer a handshake or verify the signature, parse, store and queue in
one Redis round trip, answer. Every rejection is a precise status with
`{"error", "detail"}`; nothing is stored for a rejected request, and the detail never
holds a secret or a stack trace.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import redis

from hub.connector.base import RawRequest, WebhookConnector
from hub.errors import PayloadError, SignatureError
from hub.runtime import keys
from hub.runtime.intake import Backpressure, Intake

__all__ = ["HookHandler", "HookResponse"]

log = logging.getLogger(__name__)

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class HookResponse:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)


def _json(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> HookResponse:
    return HookResponse(status, json.dumps(payload, separators=(",", ":")).encode(), headers=headers or {})


def _error(status: int, error: str, detail: str, headers: Mapping[str, str] | None = None) -> HookResponse:
    return _json(status, {"error": error, "detail": detail}, headers)


class HookHandler:
    """Handles `/hooks/<id>` for the configured webhook connectors."""

    def __init__(
        self, connectors: Mapping[str, WebhookConnector[Any]], *, limit: int, state: dict[str, Any]
    ) -> None:
        self.connectors = connectors
        self.limit = limit
        self.state = state  # holds "client" (redis.asyncio) and "intake", set at startup

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        connector_id = scope["path"][len("/hooks/") :]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        response = await self.handle(
            connector_id, scope["method"], headers, scope.get("query_string", b""), scope["path"], receive
        )
        out = [
            (b"content-type", response.content_type.encode()),
            (b"content-length", str(len(response.body)).encode()),
        ]
        out += [(k.lower().encode(), v.encode()) for k, v in response.headers.items()]
        await send({"type": "http.response.start", "status": response.status, "headers": out})
        await send({"type": "http.response.body", "body": response.body})

    async def _reject(self, reason: str, status: int, error: str, detail: str) -> HookResponse:
        try:
            await self.state["client"].hincrby(keys.counters(), f"rejected:{reason}", 1)
        except (redis.RedisError, OSError):
            pass
        return _error(status, error, detail)

    async def _read(self, headers: Mapping[str, str], receive: Receive) -> bytes | None:
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return None
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                return None
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)

    async def handle(
        self,
        connector_id: str,
        method: str,
        headers: dict[str, str],
        query_string: bytes,
        path: str,
        receive: Receive,
    ) -> HookResponse:
        connector = self.connectors.get(connector_id)
        if connector is None:
            return await self._reject(
                "unknown_connector",
                404,
                "unknown_connector",
                f"no connector instance {connector_id[:80]!r} is configured",
            )
        if method not in ("GET", "POST", "PUT"):
            return _error(405, "method_not_allowed", "this endpoint takes POST (GET only for handshakes)")
        body = await self._read(headers, receive)
        if body is None:
            return await self._reject(
                "too_large",
                413,
                "payload_too_large",
                f"body exceeds the {self.limit} byte limit (hub.max_body_bytes)",
            )
        query = dict(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True))
        raw = RawRequest(method=method, body=body, headers=headers, query=query, path=path)
        try:
            handshake = connector.handshake(raw)
            if handshake is not None:
                return HookResponse(handshake.status, handshake.body, handshake.content_type)
            if method == "GET":
                return _error(405, "method_not_allowed", "this endpoint takes POST (GET only for handshakes)")
            connector.verify(raw)
        except SignatureError as exc:
            return await self._reject("signature", 401, "invalid_signature", str(exc))
        except Exception as exc:
            log.warning("connector %s failed to verify a request: %s", connector_id, type(exc).__name__)
            return await self._reject(
                "signature", 401, "invalid_signature", "the request could not be verified"
            )
        try:
            events = connector.parse(raw)
        except PayloadError as exc:
            status = exc.status if exc.status in (400, 415) else 400
            return await self._reject("unparseable", status, "unparseable_body", str(exc))
        except Exception as exc:
            log.warning(
                "connector %s failed to parse a verified request: %s", connector_id, type(exc).__name__
            )
            return await self._reject(
                "unparseable",
                400,
                "unparseable_body",
                "the body is authentic but its structure is not what the connector expects",
            )
        if not events:
            return _json(200, {"status": "accepted", "events": []})
        intake: Intake = self.state["intake"]
        try:
            stored = await intake.store(connector_id, connector.name, raw, events)
        except Backpressure as exc:
            await self._reject("backpressure", 503, "unavailable", str(exc))
            return _error(503, "unavailable", f"{exc}; retry later", {"Retry-After": "30"})
        except (redis.RedisError, OSError):
            # Never acknowledge what could not be stored: the sender retries.
            return _error(
                503, "unavailable", "the event store is unreachable; retry later", {"Retry-After": "5"}
            )
        duplicates = sum(1 for s in stored if s.duplicate)
        if duplicates:
            try:
                await self.state["client"].hincrby(keys.counters(), "duplicates", duplicates)
            except (redis.RedisError, OSError):
                pass
        return _json(
            200,
            {
                "status": "accepted",
                "events": [
                    {"id": s.event_id, "source_id": s.source_id, "duplicate": s.duplicate} for s in stored
                ],
            },
        )
