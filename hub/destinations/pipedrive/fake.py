"""`FakePipedrive`: an in-memory Pipedrive behaving like the documented API, for tests and benchmarks.

Use it as an `httpx.MockTransport` handler::

    fake = FakePipedrive()
    client = httpx.Client(transport=httpx.MockTransport(fake), base_url="https://acme.pipedrive.com")

What it reproduces (shared/reference/crm-apis.md §3): the `x-api-token` check with the gateway's
401 body; v2 strict validation (ids and numbers as numbers, booleans as booleans, unknown
fields rejected, custom-field keys and value types checked, `person_id` read-only on
activities, Contact Sync fields refused with 403 when the feature is off); `name`/`title`
required; references (organization, person, pipeline, stage, activity type, labels) checked;
exact and partial search with the real term-length rule; cursor pagination (v2) and
start/limit pagination (v1 notes); the per-token burst limit over a rolling 2 s window plus the
search limit (10 per 2 s) answered with 429 and the `x-ratelimit-*` headers. Message texts of
errors Pipedrive does not document are marked NV.

Fault injection for chaos tests: `fail_rate` (500 before doing anything), `commit_then_fail_rate`
(the write happens, then a 504 HTML page as if the connection died), `down` (every call 503),
all drawn from a seeded random. Inspection: `contacts`, `organizations`, `deals`, `notes`,
`activities` (stored records), `calls` (count per "METHOD /path/{id}"), `rate_limited`.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import math
import random
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

import httpx

__all__ = ["FakePipedrive"]

Record = dict[str, Any]
Check = Callable[[Any], bool]

_ERROR_INFO: Final = "Please check developers.pipedrive.com for more information about Pipedrive API."
_SEARCHABLE: Final = frozenset({"address", "varchar", "text", "varchar_auto", "double", "monetary", "phone"})
_SEARCH_FIELDS: Final = {
    "persons": frozenset({"custom_fields", "email", "notes", "phone", "name"}),
    "organizations": frozenset({"address", "custom_fields", "notes", "name"}),
    "deals": frozenset({"custom_fields", "notes", "title"}),
}
_SCOPE: Final = {"persons": "person", "organizations": "organization", "deals": "deal"}
_CONTACT_SYNC_FIELDS: Final = frozenset({"job_title", "postal_address", "notes", "birthday", "im"})


# -- v2 type checks -----------------------------------------------------------------------


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _nullable(check: Check) -> Check:
    return lambda v: v is None or check(v)


def _is_date(v: Any) -> bool:
    return isinstance(v, str) and bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", v))


def _is_time(v: Any) -> bool:
    return isinstance(v, str) and bool(re.fullmatch(r"\d{2}:\d{2}(:\d{2})?", v))


def _is_int_list(v: Any) -> bool:
    return isinstance(v, list) and all(_is_int(i) for i in v)


def _is_entries(v: Any) -> bool:
    """emails/phones: [{"value": str, "primary": bool, "label": str}] (only value required)."""
    return isinstance(v, list) and all(
        isinstance(e, dict)
        and _is_str(e.get("value"))
        and set(e) <= {"value", "primary", "label"}
        and _is_bool(e.get("primary", False))
        and _is_str(e.get("label", "work"))
        for e in v
    )


def _is_participants(v: Any) -> bool:
    return isinstance(v, list) and all(
        isinstance(p, dict) and _is_int(p.get("person_id")) and _is_bool(p.get("primary", False)) for p in v
    )


def _is_object(v: Any) -> bool:
    return isinstance(v, dict)


def _is_address(v: Any) -> bool:
    return isinstance(v, dict) and _is_str(v.get("value"))


_COMMON: Final[dict[str, Check]] = {
    "owner_id": _is_int,
    "add_time": _is_str,
    "update_time": _is_str,
    "visible_to": _is_int,
    "label_ids": _is_int_list,
    "custom_fields": _is_object,
}
_SCHEMAS: Final[dict[str, dict[str, Check]]] = {
    "persons": {
        **_COMMON,
        "name": _is_str,
        "org_id": _nullable(_is_int),
        "emails": _is_entries,
        "phones": _is_entries,
        "marketing_status": lambda v: v in ("no_consent", "unsubscribed", "subscribed", "archived"),
        "job_title": _is_str,
        "postal_address": _is_address,
        "notes": _is_str,
        "birthday": _is_date,
        "im": lambda v: isinstance(v, list),
    },
    "organizations": {
        **_COMMON,
        "name": _is_str,
        "address": _is_address,
        "website": _is_str,
        "linkedin": _is_str,
        "industry": _is_int,
        "annual_revenue": _is_number,
        "employee_count": _is_int,
    },
    "deals": {
        **_COMMON,
        "title": _is_str,
        "person_id": _nullable(_is_int),
        "org_id": _nullable(_is_int),
        "pipeline_id": _is_int,
        "stage_id": _is_int,
        "value": _is_number,
        "currency": lambda v: isinstance(v, str) and bool(re.fullmatch(r"[A-Za-z]{3}", v)),
        "is_deleted": _is_bool,
        "is_archived": _is_bool,
        "archive_time": _is_str,
        "status": lambda v: v in ("open", "won", "lost"),
        "probability": _nullable(_is_number),
        "lost_reason": _nullable(_is_str),
        "close_time": _nullable(_is_str),
        "won_time": _is_str,
        "lost_time": _is_str,
        "expected_close_date": _is_date,
    },
    "activities": {
        "subject": _is_str,
        "type": _is_str,
        "owner_id": _is_int,
        "deal_id": _nullable(_is_int),
        "lead_id": _is_str,
        "org_id": _nullable(_is_int),
        "project_id": _is_int,
        "due_date": _is_date,
        "due_time": _is_time,
        "duration": _is_time,
        "busy": _is_bool,
        "done": _is_bool,
        "location": _is_object,
        "participants": _is_participants,
        "attendees": lambda v: isinstance(v, list),
        "public_description": _is_str,
        "priority": _is_int,
        "note": _is_str,
    },
}
_CUSTOM_TYPES: Final[dict[str, Check]] = {
    "varchar": lambda v: isinstance(v, str) and len(v) <= 255,
    "varchar_auto": lambda v: isinstance(v, str) and len(v) <= 255,
    "text": lambda v: isinstance(v, str) and len(v) <= 65_000,
    "phone": _is_str,
    "double": _is_number,
    "monetary": lambda v: isinstance(v, dict) and _is_number(v.get("value")),
    "enum": _is_int,
    "set": lambda v: isinstance(v, list) and bool(v) and all(_is_int(i) for i in v),
    "date": _is_date,
    "address": _is_address,
    "user": _is_int,
    "org": _is_int,
    "people": _is_int,
}


class _Reject(Exception):
    """A request the fake refuses: becomes the response's status and Pipedrive error body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _now_v2() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now_v1() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        return int(base64.urlsafe_b64decode(cursor.encode()).decode().split(":", 1)[1])
    except (ValueError, IndexError) as exc:
        raise _Reject(400, "Invalid cursor") from exc


def _digits(value: str) -> str:
    return re.sub(r"\D", "", value)


def _field(
    name: str, code: str, field_type: str, *, custom: bool, options: list[Record] | None = None
) -> Record:
    return {
        "field_name": name,
        "field_code": code,
        "description": None,
        "field_type": field_type,
        "options": options,
        "subfields": None,
        "is_custom_field": custom,
        "is_optional_response_field": False,
    }


class FakePipedrive:
    """In-memory Pipedrive company. Thread-safe: every request runs under one lock.

    Args:
        api_token: the token requests must carry in `x-api-token`.
        burst: (requests, seconds) per token over a rolling window; None disables.
            Default (20, 2.0), the Lite plan's API-token burst.
        search_burst: the separate limit of search endpoints; None disables. Default (10, 2.0).
        fail_rate / commit_then_fail_rate: probability per request / per write, in [0, 1].
        down: answer every request with 503.
        contact_sync: whether person Contact Sync fields (`job_title`, ...) are writable.
        clock: seconds, monotonic; inject one to test the rate limit without sleeping.
    """

    def __init__(
        self,
        *,
        api_token: str = "test-token",  # noqa: S107 - the fake's own token, not a secret
        burst: tuple[int, float] | None = (20, 2.0),
        search_burst: tuple[int, float] | None = (10, 2.0),
        fail_rate: float = 0.0,
        commit_then_fail_rate: float = 0.0,
        down: bool = False,
        seed: int = 0,
        contact_sync: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api_token = api_token
        self.burst = burst
        self.search_burst = search_burst
        self.fail_rate = fail_rate
        self.commit_then_fail_rate = commit_then_fail_rate
        self.down = down
        self.contact_sync = contact_sync
        self.clock = clock
        self.calls: Counter[str] = Counter()
        self.rate_limited = 0
        self._random = random.Random(seed)
        self._lock = threading.RLock()
        self._window: deque[float] = deque()
        self._search_window: deque[float] = deque()
        self._ids = {name: itertools.count(1) for name in ("persons", "organizations", "deals", "activities")}
        self._ids.update(
            {"notes": itertools.count(1), "pipelines": itertools.count(1), "stages": itertools.count(1)}
        )
        self._store: dict[str, dict[int, Record]] = {k: {} for k in self._ids}
        self._activity_types: list[Record] = []
        self._fields: dict[str, list[Record]] = {
            "person": [
                _field("Name", "name", "varchar", custom=False),
                _field("Email", "emails", "varchar", custom=False),
                _field("Phone", "phones", "phone", custom=False),
                _field("Organization", "org_id", "org", custom=False),
                _field("Owner", "owner_id", "user", custom=False),
                _field(
                    "Labels",
                    "label_ids",
                    "set",
                    custom=False,
                    options=[
                        {"id": i, "label": label, "color": color}
                        for i, (label, color) in enumerate(
                            [
                                ("Customer", "green"),
                                ("Hot lead", "red"),
                                ("Warm lead", "yellow"),
                                ("Cold lead", "blue"),
                            ],
                            start=1,
                        )
                    ],
                ),
                _field("Visible to", "visible_to", "visible_to", custom=False),
            ],
            "organization": [
                _field("Name", "name", "varchar", custom=False),
                _field("Address", "address", "address", custom=False),
                _field("Owner", "owner_id", "user", custom=False),
                _field("Labels", "label_ids", "set", custom=False, options=[]),
            ],
            "deal": [
                _field("Title", "title", "varchar", custom=False),
                _field("Value", "value", "monetary", custom=False),
                _field("Currency", "currency", "varchar", custom=False),
                _field("Person", "person_id", "people", custom=False),
                _field("Organization", "org_id", "org", custom=False),
                _field("Pipeline", "pipeline_id", "double", custom=False),
                _field("Stage", "stage_id", "stage", custom=False),
                _field("Status", "status", "status", custom=False),
                _field("Expected close date", "expected_close_date", "date", custom=False),
                _field("Labels", "label_ids", "set", custom=False, options=[]),
            ],
        }
        if contact_sync:
            self._fields["person"] += [
                _field("Job title", "job_title", "varchar", custom=False),
                _field("Postal address", "postal_address", "address", custom=False),
            ]
        pipeline = self.add_pipeline("Pipeline")
        for stage in ("Qualified", "Contact Made", "Demo Scheduled", "Proposal Made", "Negotiations Started"):
            self.add_stage(pipeline, stage)
        for key in ("call", "meeting", "task", "deadline", "email", "lunch"):
            self.add_activity_type(key)

    # -- set-up helpers (tests) -----------------------------------------------------------

    def add_pipeline(self, name: str) -> int:
        with self._lock:
            pipeline_id = next(self._ids["pipelines"])
            self._store["pipelines"][pipeline_id] = {
                "id": pipeline_id,
                "name": name,
                "order_nr": pipeline_id,
                "is_deleted": False,
                "is_deal_probability_enabled": False,
                "add_time": _now_v2(),
                "update_time": _now_v2(),
            }
            return pipeline_id

    def add_stage(self, pipeline_id: int, name: str) -> int:
        with self._lock:
            stage_id = next(self._ids["stages"])
            order = 1 + sum(1 for s in self._store["stages"].values() if s["pipeline_id"] == pipeline_id)
            self._store["stages"][stage_id] = {
                "id": stage_id,
                "order_nr": order,
                "name": name,
                "is_deleted": False,
                "deal_probability": 100,
                "pipeline_id": pipeline_id,
                "is_deal_rot_enabled": False,
                "days_to_rotten": None,
                "add_time": _now_v2(),
                "update_time": _now_v2(),
            }
            return stage_id

    def add_field(
        self, scope: str, name: str, field_type: str = "varchar", options: list[str] | None = None
    ) -> str:
        """A custom field of `scope` (`person`, `deal`, `organization`); its 40-character key."""
        with self._lock:
            code = hashlib.sha1(f"{scope}:{name}".encode()).hexdigest()  # noqa: S324 - an id, not security
            opts = [{"id": i, "label": label} for i, label in enumerate(options or [], start=1)] or None
            self._fields[scope].append(_field(name, code, field_type, custom=True, options=opts))
            return code

    def option_id(self, scope: str, code: str, label: str) -> int:
        field = self._field_def(scope, code)
        assert field is not None, f"no {scope} field {code}"
        return next(int(o["id"]) for o in field["options"] or [] if o["label"] == label)

    def add_activity_type(self, key: str, *, active: bool = True) -> None:
        with self._lock:
            self._activity_types.append(
                {
                    "id": len(self._activity_types) + 1,
                    "name": key.capitalize(),
                    "key_string": key,
                    "icon_key": key,
                    "active_flag": active,
                    "is_custom_flag": False,
                    "order_nr": len(self._activity_types) + 1,
                }
            )

    def seed(self, collection: str, **fields: Any) -> int:
        """Store a record directly (no validation), as if someone created it in the app."""
        with self._lock:
            record_id = next(self._ids[collection])
            self._store[collection][record_id] = self._defaults(collection, record_id) | fields
            return record_id

    def delete(self, collection: str, record_id: int) -> None:
        """Soft-delete, as Pipedrive does: reads answer 404 afterwards."""
        with self._lock:
            record = self._store[collection][record_id]
            record["is_deleted"] = True
            if collection == "notes":
                record["active_flag"] = False

    # -- inspection -----------------------------------------------------------------------

    def _live(self, collection: str) -> list[Record]:
        with self._lock:
            return [dict(r) for r in self._store[collection].values() if not r.get("is_deleted")]

    @property
    def contacts(self) -> list[Record]:
        """Stored persons (not deleted), oldest first."""
        return self._live("persons")

    @property
    def organizations(self) -> list[Record]:
        return self._live("organizations")

    @property
    def deals(self) -> list[Record]:
        return self._live("deals")

    @property
    def notes(self) -> list[Record]:
        return self._live("notes")

    @property
    def activities(self) -> list[Record]:
        return self._live("activities")

    # -- the handler ----------------------------------------------------------------------

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        route = re.sub(r"/\d+(?=/|$)", "/{id}", path)
        with self._lock:
            self.calls[f"{request.method} {route}"] += 1
            if self.down:
                return self._error(503, "Service temporarily unavailable")  # NV text
            if request.headers.get("x-api-token") != self.api_token:
                return httpx.Response(
                    401,
                    json={
                        "success": False,
                        "error": "unauthorized access",
                        "errorCode": 401,
                        "error_info": "Please check developers.pipedrive.com",
                    },
                    headers={"x-401-by-gw": "true"},
                )
            limited = self._throttle(path.endswith("/search"))
            if limited is not None:
                return limited
            headers = self._limit_headers()
            if self.fail_rate and self._random.random() < self.fail_rate:
                return self._error(500, "Internal server error", headers)  # NV text
            try:
                response = self._route(request, path)
            except _Reject as exc:
                return self._error(exc.status, exc.message, headers)
            response.headers.update(headers)
            is_write = request.method in ("POST", "PATCH", "PUT")
            if is_write and self.commit_then_fail_rate and self._random.random() < self.commit_then_fail_rate:
                return httpx.Response(
                    504,
                    text="<html><body><h1>504 Gateway Time-out</h1></body></html>",
                    headers={"content-type": "text/html"},
                )
            return response

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> httpx.Response:
        body = {
            "success": False,
            "error": message,
            "error_info": _ERROR_INFO,
            "data": None,
            "additional_data": None,
        }
        return httpx.Response(status, json=body, headers=headers or {})

    @staticmethod
    def _ok(data: Any, additional: Any = None) -> httpx.Response:
        return httpx.Response(200, json={"success": True, "data": data, "additional_data": additional})

    # -- rate limit -----------------------------------------------------------------------

    def _throttle(self, is_search: bool) -> httpx.Response | None:
        now = self.clock()
        limits = [(self._window, self.burst)]
        if is_search:
            limits.append((self._search_window, self.search_burst))
        for window, limit in limits:
            if limit is None:
                continue
            count, seconds = limit
            while window and window[0] <= now - seconds:
                window.popleft()
            if len(window) >= count:
                self.rate_limited += 1
                wait = max(1, math.ceil(window[0] + seconds - now))
                # 429 body text is NV; headers per the rate-limiting docs (Retry-After seen on 429s).
                return httpx.Response(
                    429,
                    json={
                        "success": False,
                        "error": "Request over limit",
                        "errorCode": 429,
                        "error_info": _ERROR_INFO,
                        "data": None,
                        "additional_data": None,
                    },
                    headers={
                        "x-ratelimit-limit": str(count),
                        "x-ratelimit-remaining": "0",
                        "x-ratelimit-reset": str(wait),
                        "retry-after": str(wait),
                    },
                )
        for window, limit in limits:
            if limit is not None:
                window.append(now)
        return None

    def _limit_headers(self) -> dict[str, str]:
        if self.burst is None:
            return {}
        count, seconds = self.burst
        return {
            "x-ratelimit-limit": str(count),
            "x-ratelimit-remaining": str(max(0, count - len(self._window))),
            "x-ratelimit-reset": str(math.ceil(seconds)),
        }

    # -- routing --------------------------------------------------------------------------

    def _route(self, request: httpx.Request, path: str) -> httpx.Response:
        method, q = request.method, request.url.params
        if m := re.fullmatch(r"/api/v2/(persons|organizations|deals)/search", path):
            if method == "GET":
                return self._search(m[1], q)
        elif m := re.fullmatch(r"/api/v2/(persons|organizations|deals|activities)/(\d+)", path):
            if method == "GET":
                return self._ok(self._view(m[1], self._existing(m[1], int(m[2]))))
            if method == "PATCH":
                return self._ok(self._patch(m[1], int(m[2]), self._json(request)))
        elif m := re.fullmatch(r"/api/v2/(persons|organizations|deals|activities)", path):
            if method == "POST":
                return self._ok(self._create(m[1], self._json(request)))
            if method == "GET" and m[1] == "activities":
                return self._list_activities(q)
        elif m := re.fullmatch(r"/api/v2/(pipelines|stages)", path):
            if method == "GET":
                return self._list_meta(m[1], q)
        elif m := re.fullmatch(r"/api/v2/(person|deal|organization)Fields", path):
            if method == "GET":
                return self._paged(list(self._fields[m[1]]), q)
        elif path == "/api/v1/notes":
            if method == "GET":
                return self._list_notes(q)
            if method == "POST":
                return self._ok(self._write_note(None, self._json(request)))
        elif m := re.fullmatch(r"/api/v1/notes/(\d+)", path):
            if method == "GET":
                return self._ok(dict(self._existing("notes", int(m[1]))))
            if method == "PUT":
                return self._ok(self._write_note(int(m[1]), self._json(request)))
        elif path == "/api/v1/activityTypes":
            if method == "GET":
                return self._ok([dict(t) for t in self._activity_types])
        else:
            raise _Reject(404, f"Unknown method {path}")  # NV text
        raise _Reject(405, f"Method {method} is not allowed for {path}")  # NV text

    @staticmethod
    def _json(request: httpx.Request) -> Record:
        try:
            body = httpx.Response(200, content=request.content).json()
        except ValueError as exc:
            raise _Reject(400, "Invalid JSON in the request body") from exc
        if not isinstance(body, dict):
            raise _Reject(400, "The request body must be a JSON object")
        return body

    @staticmethod
    def _int_param(
        q: httpx.QueryParams, name: str, default: int | None = None, *, maximum: int = 500
    ) -> int | None:
        raw = q.get(name)
        if raw is None:
            return default
        if not raw.isdecimal() or not 0 <= int(raw) <= maximum:
            raise _Reject(400, f"Validation failed: {name}: must be an integer between 0 and {maximum}")
        return int(raw)

    def _paged(self, items: list[Record], q: httpx.QueryParams) -> httpx.Response:
        limit = self._int_param(q, "limit", 100) or 100
        start = _offset(q.get("cursor"))
        page = items[start : start + limit]
        more = start + limit < len(items)
        return self._ok(page, {"next_cursor": _cursor(start + limit) if more else None})

    # -- records --------------------------------------------------------------------------

    def _defaults(self, collection: str, record_id: int) -> Record:
        now = _now_v2()
        base: Record = {
            "id": record_id,
            "add_time": now,
            "update_time": now,
            "is_deleted": False,
            "owner_id": 1,
        }
        if collection == "persons":
            return base | {
                "name": "",
                "org_id": None,
                "emails": [],
                "phones": [],
                "visible_to": 3,
                "label_ids": [],
                "picture_id": None,
                "custom_fields": {},
            }
        if collection == "organizations":
            return base | {"name": "", "address": None, "visible_to": 3, "label_ids": [], "custom_fields": {}}
        if collection == "deals":
            pipeline = min(self._store["pipelines"])
            return base | {
                "title": "",
                "person_id": None,
                "org_id": None,
                "pipeline_id": pipeline,
                "stage_id": self._first_stage(pipeline),
                "value": 0,
                "currency": "USD",
                "status": "open",
                "is_archived": False,
                "probability": None,
                "lost_reason": None,
                "visible_to": 3,
                "close_time": None,
                "won_time": None,
                "lost_time": None,
                "expected_close_date": None,
                "label_ids": [],
                "custom_fields": {},
            }
        if collection == "activities":
            return base | {
                "subject": "",
                "type": "task",
                "deal_id": None,
                "person_id": None,
                "org_id": None,
                "due_date": None,
                "due_time": None,
                "duration": None,
                "busy": False,
                "done": False,
                "participants": [],
                "note": None,
            }
        if collection == "notes":
            stamp = _now_v1()
            return {
                "id": record_id,
                "active_flag": True,
                "add_time": stamp,
                "update_time": stamp,
                "content": "",
                "deal_id": None,
                "person_id": None,
                "org_id": None,
                "lead_id": None,
                "project_id": None,
                "user_id": 1,
                "pinned_to_deal_flag": False,
                "pinned_to_person_flag": False,
                "pinned_to_organization_flag": False,
            }
        return base

    def _first_stage(self, pipeline_id: int) -> int | None:
        stages = [s for s in self._store["stages"].values() if s["pipeline_id"] == pipeline_id]
        return min(stages, key=lambda s: s["order_nr"])["id"] if stages else None

    def _existing(self, collection: str, record_id: int) -> Record:
        record = self._store[collection].get(record_id)
        if record is None or record.get("is_deleted"):
            singular = {"persons": "Person", "organizations": "Organization", "deals": "Deal"}
            raise _Reject(
                404, f"{singular.get(collection, collection[:-1].capitalize())} not found"
            )  # NV text
        return record

    def _view(self, collection: str, record: Record) -> Record:
        view = dict(record)
        if collection == "persons":
            first, _, last = str(view.get("name") or "").partition(" ")
            view["first_name"], view["last_name"] = first or None, last or None
        return view

    def _field_def(self, scope: str, code: str) -> Record | None:
        return next((f for f in self._fields[scope] if f["field_code"] == code), None)

    def _validate(self, collection: str, body: Record, *, creating: bool) -> None:
        schema = _SCHEMAS[collection]
        unknown = sorted(set(body) - set(schema))
        if collection == "activities" and "person_id" in body:
            raise _Reject(400, "person_id is read-only; link persons through participants")  # NV text
        if unknown:
            raise _Reject(400, f"Invalid field(s) in the payload: {', '.join(unknown)}")
        for key, value in body.items():
            if not schema[key](value):
                raise _Reject(400, f"Validation failed: {key}: invalid value {value!r}")  # NV text
        if collection == "persons" and not self.contact_sync and set(body) & _CONTACT_SYNC_FIELDS:
            fields = ", ".join(sorted(set(body) & _CONTACT_SYNC_FIELDS))
            raise _Reject(403, f"Contact Sync must be enabled to set {fields}")  # NV text
        required = {"persons": "name", "organizations": "name", "deals": "title"}.get(collection)
        if required and (creating or required in body) and not str(body.get(required) or "").strip():
            raise _Reject(400, f"{required.capitalize()} must be given.")
        self._validate_references(collection, body)
        if collection in _SCOPE:
            self._validate_custom(_SCOPE[collection], body.get("custom_fields") or {})

    def _validate_references(self, collection: str, body: Record) -> None:
        refs = {"org_id": "organizations", "person_id": "persons", "deal_id": "deals"}
        for key, target in refs.items():
            value = body.get(key)
            if value is not None and key in _SCHEMAS[collection] and value not in self._live_ids(target):
                raise _Reject(400, f"{target[:-1].capitalize()} with id {value} does not exist")  # NV text
        if collection == "deals":
            pipeline, stage = body.get("pipeline_id"), body.get("stage_id")
            if pipeline is not None and pipeline not in self._store["pipelines"]:
                raise _Reject(400, f"Pipeline with id {pipeline} does not exist")  # NV text
            if stage is not None:
                found = self._store["stages"].get(stage)
                if found is None:
                    raise _Reject(400, f"Stage with id {stage} does not exist")  # NV text
                if pipeline is not None and found["pipeline_id"] != pipeline:
                    raise _Reject(400, f"Stage {stage} does not belong to pipeline {pipeline}")  # NV text
        if collection == "persons" and body.get("label_ids"):
            labels = self._field_def("person", "label_ids") or {}
            known = {o["id"] for o in labels.get("options") or []}
            missing = sorted(set(body["label_ids"]) - known)
            if missing:
                raise _Reject(400, f"Label(s) {missing} do not exist")  # NV text
        if collection == "activities":
            if "type" in body and body["type"] not in {t["key_string"] for t in self._activity_types}:
                raise _Reject(400, f"Activity type {body['type']!r} does not exist")  # NV text
            for participant in body.get("participants") or []:
                if participant["person_id"] not in self._live_ids("persons"):
                    raise _Reject(400, f"Person with id {participant['person_id']} does not exist")  # NV text

    def _live_ids(self, collection: str) -> set[int]:
        return {i for i, r in self._store[collection].items() if not r.get("is_deleted")}

    def _validate_custom(self, scope: str, values: Record) -> None:
        for code, value in values.items():
            field = self._field_def(scope, code)
            if field is None or not field["is_custom_field"]:
                raise _Reject(400, f"Custom field '{code}' does not exist")  # NV text
            if value is None:
                continue
            check = _CUSTOM_TYPES.get(field["field_type"], lambda _v: True)
            if not check(value):
                raise _Reject(
                    400, f"Invalid value for custom field '{code}' ({field['field_type']})"
                )  # NV text
            if field["field_type"] in ("enum", "set"):
                options = {o["id"] for o in field["options"] or []}
                chosen = value if isinstance(value, list) else [value]
                if not set(chosen) <= options:
                    raise _Reject(400, f"Invalid option for custom field '{code}'")  # NV text

    def _apply(self, collection: str, record: Record, body: Record) -> None:
        for key, value in body.items():
            if key == "custom_fields":
                merged = {**record.get("custom_fields", {}), **value}
                record["custom_fields"] = {k: v for k, v in merged.items() if v is not None}
            else:
                record[key] = value
        if collection == "persons":
            for key in ("emails", "phones"):
                entries = record.get(key) or []
                if entries and not any(e.get("primary") for e in entries):
                    entries[0]["primary"] = True  # the first becomes primary (crm-apis.md §3)
                for entry in entries:
                    entry.setdefault("primary", False)
                    entry.setdefault("label", "work")
        if collection == "deals":
            if "stage_id" in body and "pipeline_id" not in body:
                record["pipeline_id"] = self._store["stages"][record["stage_id"]]["pipeline_id"]
            elif "pipeline_id" in body and "stage_id" not in body:
                record["stage_id"] = self._first_stage(record["pipeline_id"])
            if body.get("status") in ("won", "lost"):
                record[f"{body['status']}_time"] = record["close_time"] = _now_v2()
        if collection == "activities":
            primary = next((p for p in record.get("participants") or [] if p.get("primary")), None)
            record["person_id"] = primary["person_id"] if primary else None
        record["update_time"] = _now_v2()

    def _create(self, collection: str, body: Record) -> Record:
        self._validate(collection, body, creating=True)
        record_id = next(self._ids[collection])
        record = self._defaults(collection, record_id)
        self._apply(collection, record, body)
        self._store[collection][record_id] = record
        return self._view(collection, record)

    def _patch(self, collection: str, record_id: int, body: Record) -> Record:
        record = self._existing(collection, record_id)
        self._validate(collection, body, creating=False)
        self._apply(collection, record, body)
        return self._view(collection, record)

    # -- search ---------------------------------------------------------------------------

    def _search(self, collection: str, q: httpx.QueryParams) -> httpx.Response:
        exact_raw = q.get("exact_match", "false")
        if exact_raw not in ("true", "false"):
            raise _Reject(400, "Validation failed: exact_match: must be a boolean")  # v2 strict booleans
        exact = exact_raw == "true"
        term = q.get("term") or ""
        if len(term) < (1 if exact else 2):
            raise _Reject(400, "Validation failed: term: must be at least 2 characters (1 with exact_match)")
        fields = set((q.get("fields") or ",".join(_SEARCH_FIELDS[collection])).split(","))
        if not fields <= _SEARCH_FIELDS[collection]:
            bad = ", ".join(sorted(fields - _SEARCH_FIELDS[collection]))
            raise _Reject(400, f"Validation failed: fields: unsupported {bad}")
        filters = {
            "person_id": self._int_param(q, "person_id", maximum=2**31),
            "org_id": self._int_param(q, "organization_id", maximum=2**31),
        }
        status = q.get("status")
        items = []
        for record in self._store[collection].values():
            if record.get("is_deleted"):
                continue
            if any(v is not None and record.get(k) != v for k, v in filters.items()):
                continue
            if status and record.get("status") != status:
                continue
            matched = self._matches(collection, record, fields, term, exact)
            if matched is not None:
                items.append(
                    {
                        "result_score": 1.0 if exact else 0.5,
                        "item": self._search_item(collection, record, matched),
                    }
                )
        limit = self._int_param(q, "limit", 100) or 100
        start = _offset(q.get("cursor"))
        more = start + limit < len(items)
        return self._ok(
            {"items": items[start : start + limit]}, {"next_cursor": _cursor(start + limit) if more else None}
        )

    def _matches(
        self, collection: str, record: Record, fields: set[str], term: str, exact: bool
    ) -> list[str] | None:
        """The custom-field values that matched (possibly none), or None for no match."""

        def hit(value: Any, *, phone: bool = False) -> bool:
            if value is None:
                return False
            text, needle = str(value), term
            if phone:
                text, needle = _digits(text), _digits(term)
                if not needle:
                    return False
            text, needle = text.casefold(), needle.casefold()
            return text == needle if exact else needle in text

        found = False
        matched_custom: list[str] = []
        if "name" in fields and hit(record.get("name")):
            found = True
        if "title" in fields and hit(record.get("title")):
            found = True
        if "email" in fields and any(hit(e.get("value")) for e in record.get("emails") or []):
            found = True
        if "phone" in fields and any(hit(p.get("value"), phone=True) for p in record.get("phones") or []):
            found = True
        if "address" in fields and hit((record.get("address") or {}).get("value")):
            found = True
        if "custom_fields" in fields:
            for code, value in (record.get("custom_fields") or {}).items():
                field = self._field_def(_SCOPE[collection], code)
                if field and field["field_type"] in _SEARCHABLE:
                    raw = value.get("value") if isinstance(value, dict) else value
                    if hit(raw):
                        found = True
                        matched_custom.append(str(raw))
        return matched_custom if found else None

    def _search_item(self, collection: str, record: Record, matched: list[str]) -> Record:
        owner = {"id": record.get("owner_id")}
        org = self._store["organizations"].get(record.get("org_id") or 0)
        organization = {"id": org["id"], "name": org["name"], "address": None} if org else None
        if collection == "persons":
            return {
                "id": record["id"],
                "type": "person",
                "name": record.get("name"),
                "phones": [p["value"] for p in record.get("phones") or []],
                "emails": [e["value"] for e in record.get("emails") or []],
                "visible_to": record.get("visible_to"),
                "owner": owner,
                "organization": organization,
                "custom_fields": matched,
                "notes": [],
            }
        if collection == "organizations":
            return {
                "id": record["id"],
                "type": "organization",
                "name": record.get("name"),
                "address": (record.get("address") or {}).get("value"),
                "visible_to": record.get("visible_to"),
                "owner": owner,
                "custom_fields": matched,
                "notes": [],
            }
        person = self._store["persons"].get(record.get("person_id") or 0)
        stage = self._store["stages"].get(record.get("stage_id") or 0)
        return {
            "id": record["id"],
            "type": "deal",
            "title": record.get("title"),
            "value": record.get("value"),
            "currency": record.get("currency"),
            "status": record.get("status"),
            "visible_to": record.get("visible_to"),
            "owner": owner,
            "stage": {"id": stage["id"], "name": stage["name"]} if stage else None,
            "person": {"id": person["id"], "name": person["name"]} if person else None,
            "organization": organization,
            "custom_fields": matched,
            "notes": [],
            "is_archived": record.get("is_archived", False),
        }

    # -- lists ----------------------------------------------------------------------------

    def _list_meta(self, collection: str, q: httpx.QueryParams) -> httpx.Response:
        items = [dict(r) for r in self._store[collection].values() if not r.get("is_deleted")]
        if collection == "stages" and q.get("pipeline_id"):
            pipeline = self._int_param(q, "pipeline_id", maximum=2**31)
            items = [s for s in items if s["pipeline_id"] == pipeline]
        return self._paged(items, q)

    def _list_activities(self, q: httpx.QueryParams) -> httpx.Response:
        items = [dict(r) for r in self._store["activities"].values() if not r.get("is_deleted")]
        for name in ("deal_id", "person_id", "org_id", "owner_id"):
            value = self._int_param(q, name, maximum=2**31)
            if value is not None:
                items = [a for a in items if a.get(name) == value]
        done = q.get("done")
        if done is not None:
            if done not in ("true", "false"):
                raise _Reject(400, "Validation failed: done: must be a boolean")
            items = [a for a in items if a.get("done") == (done == "true")]
        sort_by = q.get("sort_by", "id")
        if sort_by not in ("id", "update_time", "add_time", "due_date"):
            raise _Reject(400, f"Validation failed: sort_by: unsupported {sort_by}")
        direction = q.get("sort_direction", "asc")
        if direction not in ("asc", "desc"):
            raise _Reject(400, f"Validation failed: sort_direction: unsupported {direction}")
        items.sort(key=lambda a: (str(a.get(sort_by) or ""), a["id"]), reverse=direction == "desc")
        return self._paged(items, q)

    # -- notes (v1) -----------------------------------------------------------------------

    @staticmethod
    def _v1_id(value: Any) -> int | None:
        """v1 is lenient: ids as numbers or numeric strings."""
        if value is None or value == "":
            return None
        if _is_int(value) or (isinstance(value, str) and value.isdecimal()):
            return int(value)
        raise _Reject(400, f"Invalid id {value!r}")  # NV text

    def _write_note(self, note_id: int | None, body: Record) -> Record:
        allowed = {
            "content",
            "deal_id",
            "person_id",
            "org_id",
            "lead_id",
            "project_id",
            "user_id",
            "add_time",
        }
        allowed |= {f"pinned_to_{k}_flag" for k in ("lead", "deal", "organization", "person", "project")}
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise _Reject(400, f"Invalid field(s) in the payload: {', '.join(unknown)}")
        record = self._existing("notes", note_id) if note_id is not None else None
        content = body.get("content", record["content"] if record else None)
        if not isinstance(content, str) or not content.strip():
            raise _Reject(400, "Note content is required")  # NV text
        links = {k: self._v1_id(body.get(k)) for k in ("deal_id", "person_id", "org_id")}
        if (
            record is None
            and not any(links.values())
            and not body.get("lead_id")
            and not body.get("project_id")
        ):
            raise _Reject(400, "Note must be attached to a deal, person, organization, lead or project")  # NV
        for key, target, name in (("deal_id", "deals", "deal"), ("person_id", "persons", "person")):
            if links[key] is not None and links[key] not in self._live_ids(target):
                raise _Reject(
                    400,
                    f"Cannot add/update note because {name} does not exist or you have no permissions "
                    f"to access this {name}.",
                )
        if record is None:
            record = self._defaults("notes", next(self._ids["notes"]))
            self._store["notes"][record["id"]] = record
        record["content"] = content
        for key, value in links.items():
            if key in body:
                record[key] = value
        record["update_time"] = _now_v1()
        return dict(record)

    def _list_notes(self, q: httpx.QueryParams) -> httpx.Response:
        notes = [dict(n) for n in self._store["notes"].values() if n.get("active_flag")]
        for name in ("deal_id", "person_id", "org_id"):
            value = self._int_param(q, name, maximum=2**31)
            if value is not None:
                notes = [n for n in notes if n.get(name) == value]
        sort = (q.get("sort") or "id ASC").split(",")[0].strip().split()
        key, direction = sort[0], (sort[1].upper() if len(sort) > 1 else "ASC")
        if key not in (
            "id",
            "user_id",
            "deal_id",
            "person_id",
            "org_id",
            "content",
            "add_time",
            "update_time",
        ):
            raise _Reject(400, f"Invalid sort field {key}")  # NV text
        notes.sort(key=lambda n: (str(n.get(key) or ""), n["id"]), reverse=direction == "DESC")
        start = self._int_param(q, "start", 0, maximum=2**31) or 0
        limit = self._int_param(q, "limit", 100) or 100
        page = notes[start : start + limit]
        more = start + limit < len(notes)
        pagination = {"start": start, "limit": limit, "more_items_in_collection": more}
        if more:
            pagination["next_start"] = start + limit
        return self._ok(page, {"pagination": pagination})
