"""The ingress ASGI app: `POST /hooks/<connector id>`, health, readiness and metrics.

A webhook is answered 200 only after its events are stored in Redis and queued (one
round trip). Every rejection is a precise status with `{"error", "detail"}`; nothing is
stored for a rejected request, and the detail never holds a secret or a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis
import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from hub.connector.base import RawRequest, WebhookConnector
from hub.errors import PayloadError, SignatureError
from hub.runtime import keys
from hub.runtime.intake import Backpressure, Intake
from hub.runtime.metrics import RedisMetricsCollector
from hub.settings import HubConfig

__all__ = ["create_app"]

log = logging.getLogger(__name__)


def _error(status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


class _BodyTooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _BodyTooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(config: HubConfig, redis_url: str) -> FastAPI:
    """Build the ingress for a validated config and a Redis URL."""
    connectors: dict[str, WebhookConnector[Any]] = {}
    for instance_id, instance in config.connectors.items():
        built = instance.build()
        if isinstance(built, WebhookConnector):
            connectors[instance_id] = built
    limit = config.hub.max_body_bytes
    queues = [keys.EVENTS_QUEUE, *(keys.delivery_queue(d) for d in config.destinations)]
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = aioredis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=2)
        sync_client = redis.Redis.from_url(redis_url, socket_timeout=5, socket_connect_timeout=2)
        registry = CollectorRegistry()
        registry.register(RedisMetricsCollector(sync_client, queues))
        intake = Intake(
            client, max_depth=config.hub.max_queue_depth, strict=config.hub.durability == "strict"
        )
        state.update(client=client, intake=intake, registry=registry, sync=sync_client)
        yield
        await client.aclose()
        sync_client.close()

    app = FastAPI(title="CRM Hub ingress", lifespan=lifespan, docs_url=None, redoc_url=None)

    async def reject(reason: str, status: int, error: str, detail: str) -> JSONResponse:
        try:
            await state["client"].hincrby(keys.counters(), f"rejected:{reason}", 1)
        except redis.RedisError:
            pass
        return _error(status, error, detail)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        names = {404: "not_found", 405: "method_not_allowed"}
        return _error(exc.status_code, names.get(exc.status_code, "http_error"), str(exc.detail))

    @app.api_route("/hooks/{connector_id}", methods=["GET", "POST", "PUT"], include_in_schema=False)
    async def receive(connector_id: str, request: Request) -> Response:
        connector = connectors.get(connector_id)
        if connector is None:
            return await reject(
                "unknown_connector",
                404,
                "unknown_connector",
                f"no connector instance {connector_id!r} is configured",
            )
        try:
            body = await _read_body(request, limit)
        except _BodyTooLarge:
            return await reject(
                "too_large",
                413,
                "payload_too_large",
                f"body exceeds the {limit} byte limit (hub.max_body_bytes)",
            )
        raw = RawRequest(
            method=request.method,
            body=body,
            headers=dict(request.headers),
            query=dict(request.query_params),
            path=request.url.path,
        )
        try:
            handshake = connector.handshake(raw)
            if handshake is not None:
                return Response(
                    handshake.body, status_code=handshake.status, media_type=handshake.content_type
                )
            if request.method == "GET":
                return _error(405, "method_not_allowed", "this endpoint takes POST (GET only for handshakes)")
            connector.verify(raw)
        except SignatureError as exc:
            return await reject("signature", 401, "invalid_signature", str(exc))
        except Exception as exc:
            log.warning("connector %s failed to verify a request: %s", connector_id, type(exc).__name__)
            return await reject("signature", 401, "invalid_signature", "the request could not be verified")
        try:
            events = connector.parse(raw)
        except PayloadError as exc:
            status = exc.status if exc.status in (400, 415) else 400
            return await reject("unparseable", status, "unparseable_body", str(exc))
        except Exception as exc:
            log.warning(
                "connector %s failed to parse a verified request: %s", connector_id, type(exc).__name__
            )
            return await reject(
                "unparseable",
                400,
                "unparseable_body",
                "the body is authentic but its structure is not what the connector expects",
            )
        if not events:
            return JSONResponse({"status": "accepted", "events": []})
        try:
            stored = await state["intake"].store(connector_id, connector.name, raw, events)
        except Backpressure as exc:
            await reject("backpressure", 503, "unavailable", str(exc))
            return _error(503, "unavailable", f"{exc}; retry later", headers={"Retry-After": "30"})
        except (redis.RedisError, OSError):
            # Never acknowledge what could not be stored: the sender retries.
            return _error(
                503,
                "unavailable",
                "the event store is unreachable; retry later",
                headers={"Retry-After": "5"},
            )
        duplicates = sum(1 for s in stored if s.duplicate)
        if duplicates:
            try:
                await state["client"].hincrby(keys.counters(), "duplicates", duplicates)
            except redis.RedisError:
                pass
        return JSONResponse(
            {
                "status": "accepted",
                "events": [
                    {"id": s.event_id, "source_id": s.source_id, "duplicate": s.duplicate} for s in stored
                ],
            }
        )

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> Response:
        try:
            await state["client"].ping()
        except redis.RedisError as exc:
            return _error(503, "broker_unreachable", f"Redis did not answer ({type(exc).__name__})")
        return JSONResponse({"status": "ready"})

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(state["registry"]), media_type=CONTENT_TYPE_LATEST)

    if config.hub.admin_token_sha256:
        from hub.ingress.admin import admin_router

        app.include_router(
            admin_router(
                lambda: state.get("sync") or state.setdefault("sync", redis.Redis.from_url(redis_url)),
                config.hub.admin_token_sha256,
                config.destinations,
            ),
            prefix="/admin",
        )
    return app
