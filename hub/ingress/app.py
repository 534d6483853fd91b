"""The ingress ASGI app: `/hooks/<connector id>` (hub.ingress.hooks), health, readiness,
metrics and the admin API.

A webhook is answered 200 only after its events are stored in Redis and queued (one
round trip); see `hub.ingress.hooks` for the rejections.
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

from hub.connector.base import WebhookConnector
from hub.ingress.hooks import HookHandler
from hub.runtime import keys
from hub.runtime.intake import Intake
from hub.runtime.metrics import RedisMetricsCollector
from hub.settings import HubConfig

__all__ = ["MAX_CONNECTIONS", "create_app"]

#: Redis connections one ingress process may hold (one per request in flight).
MAX_CONNECTIONS = 2000

log = logging.getLogger(__name__)


def _error(status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


def create_app(config: HubConfig, redis_url: str) -> Ingress:
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
        # redis-py's default pool (100) would refuse the 101st concurrent webhook with a 503.
        client = aioredis.Redis.from_url(
            redis_url, socket_timeout=5, socket_connect_timeout=2, max_connections=MAX_CONNECTIONS
        )
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
    return Ingress(app, HookHandler(connectors, limit=limit, state=state))


class Ingress:
    """The ASGI app: `/hooks/*` straight to the hook handler (the hot path), everything else
    (health, readiness, metrics, admin API, OpenAPI, lifespan) to the FastAPI app."""

    def __init__(self, api: FastAPI, hooks: HookHandler) -> None:
        self.api = api
        self.hooks = hooks

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/hooks/"):
            await self.hooks(scope, receive, send)
        else:
            await self.api(scope, receive, send)

    def openapi(self) -> dict[str, Any]:
        return self.api.openapi()
