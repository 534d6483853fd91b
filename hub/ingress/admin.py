"""The admin API (mounted under `/admin`): list, inspect and replay events and dead letters, and
see each destination's pause and queue depth.

Every endpoint wants `Authorization: Bearer <token>` whose SHA-256 is `hub.admin_token_sha256`;
without it the answer is 401 `{"error": "unauthorized", "detail"}` with `WWW-Authenticate:
Bearer`. The handlers are sync (FastAPI runs them in its thread pool) and call the same helpers
as `crmhub events` and `crmhub dlq`, on a sync `redis.Redis` from `get_client`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args

import redis
import redis.asyncio as aioredis
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from hub.delivery.pause import pause_reason
from hub.errors import ConfigError, Issue
from hub.runtime import keys
from hub.runtime.admin import dead_letters, replay_dead_letter, replay_event
from hub.runtime.eventlog import STATUSES, EventLog

__all__ = [
    "DeadLetter",
    "DeadLetterList",
    "DestinationList",
    "DestinationStatus",
    "ErrorBody",
    "EventDetail",
    "EventList",
    "EventSummary",
    "Replayed",
    "admin_router",
]

log = logging.getLogger(__name__)

Status = Literal["received", "ignored", "mapped", "delivered", "failed", "dead"]
if get_args(Status) != STATUSES:  # pragma: no cover - guards the copy above
    raise ImportError("hub.ingress.admin.Status is out of date with hub.runtime.eventlog.STATUSES")

#: Event and dead-letter ids are lower-case hex (`new_event_id`, `new_dlq_id`).
_ID = Path(pattern=r"^[0-9a-f]{1,64}$", description="A hub id (lower-case hex).")
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")


class ErrorBody(BaseModel):
    """Every refusal: a stable error code and a sentence saying what to do."""

    error: str
    detail: str


class EventSummary(BaseModel):
    """An event without its raw request (`EventRecord.summary()`)."""

    id: str
    connector: str
    type: str
    status: str
    received_at: str = Field(description="ISO 8601, UTC; empty if unknown.")
    updated_at: str = Field(description="ISO 8601, UTC; empty if unknown.")
    source_id: str
    mapping_version: str
    attempts: int
    error: str
    results: dict[str, Any] = Field(description="Outcome per destination.")


class EventDetail(EventSummary):
    """An event; the raw request (`body`, `headers`, `query`) only with `?body=true`."""

    connector_type: str
    method: str
    occurred_at: str
    body: str | None = Field(None, description="The raw body as UTF-8 (bad bytes replaced).")
    headers: dict[str, str] | None = None
    query: dict[str, str] | None = None


class EventList(BaseModel):
    events: list[EventSummary]


class Replayed(BaseModel):
    """What was queued again."""

    replayed: int
    ids: list[str]


class DeadLetter(BaseModel):
    id: str
    event_id: str
    destination: str
    flow: str
    reason: str
    died_at: str = Field(description="ISO 8601, UTC.")


class DeadLetterList(BaseModel):
    dead_letters: list[DeadLetter]


class DestinationStatus(BaseModel):
    id: str
    type: str
    paused: str | None = Field(description="Why deliveries wait (credentials refused); null if not.")
    queue_depth: int = Field(description="Deliveries waiting on `dramatiq:deliver.<id>`.")


class DestinationList(BaseModel):
    destinations: list[DestinationStatus]


class _Refusal(Exception):
    """Turned into `{"error", "detail"}` by `_AdminRoute` (the app's handlers never see it)."""

    def __init__(self, status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail, self.headers = status, error, detail, headers


class _AdminRoute(APIRoute):
    """Answers refusals and an unreachable Redis with the hub's JSON error body."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except _Refusal as exc:
                body = {"error": exc.error, "detail": exc.detail}
                return JSONResponse(body, status_code=exc.status, headers=exc.headers)
            except redis.RedisError as exc:
                log.warning("admin API: Redis error on %s: %s", request.url.path, type(exc).__name__)
                body = {"error": "unavailable", "detail": "the event store is unreachable; retry later"}
                return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})

        return guarded


_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="AdminToken",
    description="The admin token; its SHA-256 (hex) is `hub.admin_token_sha256`.",
)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z") if ms else ""


def _not_found(what: str, item_id: str) -> _Refusal:
    return _Refusal(404, "not_found", f"no {what} {item_id!r}")


def admin_router(
    get_client: Callable[[], aioredis.Redis | Any],
    token_sha256: str,
    destinations: Mapping[str, Any],
) -> APIRouter:
    """The admin endpoints, to mount with `app.include_router(router, prefix="/admin")`.

    Args:
        get_client: returns the sync `redis.Redis` to use (called per request, so it may read
            state the app's lifespan fills in).
        token_sha256: SHA-256 (64 hex digits) of the bearer token (`hub.admin_token_sha256`).
        destinations: the configured destinations by id (`HubConfig.destinations`).

    Raises:
        ConfigError: `token_sha256` is not 64 hex digits.
    """
    if not _SHA256_HEX.fullmatch(token_sha256 or ""):
        raise ConfigError(
            [
                Issue(
                    'must be the SHA-256 of the admin token, 64 hex digits (printf %s "$TOKEN" | sha256sum)',
                    key="hub.admin_token_sha256",
                )
            ]
        )
    expected = token_sha256.lower()
    # Type and account key never change while the app runs: work them out once.
    described = []
    for destination_id, instance in destinations.items():
        built = instance.build() if hasattr(instance, "build") else instance
        type_name = getattr(instance, "type_name", None) or getattr(built, "name", "")
        described.append((destination_id, str(type_name), str(built.account_key())))

    async def authorise(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> None:
        if credentials is None:
            reason, detail = "no", "send Authorization: Bearer <admin token>"
        else:
            digest = hashlib.sha256(credentials.credentials.encode()).hexdigest()
            if hmac.compare_digest(digest, expected):
                return
            reason, detail = "a wrong", "the bearer token is not the admin token"
        log.warning("admin API: refused %s %s (%s bearer token)", request.method, request.url.path, reason)
        raise _Refusal(401, "unauthorized", detail, {"WWW-Authenticate": "Bearer"})

    async def known_query_only(request: Request) -> None:
        # A misspelt filter (`?stauts=failed`) must not silently list or replay everything.
        declared = {field.alias for field in request.scope["route"].dependant.query_params}
        unknown = [name for name in request.query_params if name not in declared]
        if unknown:
            raise RequestValidationError(
                [
                    {"type": "extra_forbidden", "loc": ("query", name), "msg": "Unknown query parameter"}
                    for name in unknown
                ]
            )

    def client() -> Any:
        found = get_client()
        if isinstance(found, aioredis.Redis):
            raise TypeError("admin_router needs a sync redis.Redis: its helpers are sync")
        return found

    error = {"model": ErrorBody}
    router = APIRouter(
        route_class=_AdminRoute,
        dependencies=[Depends(authorise), Depends(known_query_only)],
        tags=["admin"],
        responses={
            401: {**error, "description": "No or wrong bearer token."},
            503: {**error, "description": "Redis is unreachable; retry later."},
        },
    )
    unknown: dict[int | str, dict[str, Any]] = {404: {**error, "description": "No such id."}}

    @router.get("/events", response_model=EventList)
    def list_events(
        status: Status | None = None,
        connector: Annotated[str | None, Query(description="A connector instance id.")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    ) -> EventList:
        """Events, newest first, filtered by status and/or connector instance."""
        records = EventLog(client()).query(status=status, connector=connector, limit=limit)
        return EventList(events=[EventSummary.model_validate(r.summary()) for r in records])

    @router.post("/events/replay", response_model=Replayed)
    def replay_events(
        status: Status,
        limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
    ) -> Replayed:
        """Re-run every event with this status (up to `limit`) with the current mapping and flows."""
        redis_client = client()
        ids = [r.id for r in EventLog(redis_client).query(status=status, limit=limit)]
        done = [event_id for event_id in ids if replay_event(redis_client, event_id)]
        return Replayed(replayed=len(done), ids=done)

    @router.get("/events/{event_id}", response_model=EventDetail, responses=unknown)
    def get_event(event_id: Annotated[str, _ID], body: bool = False) -> EventDetail:
        """One event; its raw request only with `?body=true`."""
        record = EventLog(client()).get(event_id, with_body=body)
        if record is None:
            raise _not_found("event", event_id)
        detail = EventDetail(
            **record.summary(),
            connector_type=record.connector_type,
            method=record.method,
            occurred_at=record.occurred_at,
        )
        if body:
            detail.body = (record.body or b"").decode("utf-8", "replace")
            detail.headers, detail.query = dict(record.headers), dict(record.query)
        return detail

    @router.post("/events/{event_id}/replay", response_model=Replayed, responses=unknown)
    def replay_one(event_id: Annotated[str, _ID]) -> Replayed:
        """Re-run one event from its stored raw request."""
        if not replay_event(client(), event_id):
            raise _not_found("event", event_id)
        return Replayed(replayed=1, ids=[event_id])

    @router.get("/dlq", response_model=DeadLetterList)
    def list_dead_letters(limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> DeadLetterList:
        """Dead-lettered deliveries, newest first, with their final error."""
        items = dead_letters(client(), limit=limit)
        return DeadLetterList(
            dead_letters=[DeadLetter(**{**item, "died_at": _iso(item["died_at"])}) for item in items]
        )

    @router.post("/dlq/{item_id}/replay", response_model=Replayed, responses=unknown)
    def replay_one_dead_letter(item_id: Annotated[str, _ID]) -> Replayed:
        """Send a dead letter to its destination again (attempts start over)."""
        if not replay_dead_letter(client(), item_id):
            raise _not_found("dead letter", item_id)
        return Replayed(replayed=1, ids=[item_id])

    @router.get("/destinations", response_model=DestinationList)
    def list_destinations() -> DestinationList:
        """Each configured destination: type, why it is paused (if it is), queue depth."""
        redis_client = client()
        pipe = redis_client.pipeline(transaction=False)
        for destination_id, _, _ in described:
            pipe.llen(f"dramatiq:{keys.delivery_queue(destination_id)}")
        depths = pipe.execute()
        return DestinationList(
            destinations=[
                DestinationStatus(
                    id=destination_id,
                    type=type_name,
                    paused=pause_reason(redis_client, account),
                    queue_depth=int(depth),
                )
                for (destination_id, type_name, account), depth in zip(described, depths, strict=True)
            ]
        )

    return router
