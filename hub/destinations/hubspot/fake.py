"""`FakeHubSpot`: an in-memory HubSpot CRM API for `httpx.MockTransport`, shared by the
adapter's tests, the integration tests and the benchmark.

It behaves as shared/reference/crm-apis.md §1 documents the real API: bearer-token check
(401 body), the v3 object endpoints (single, batch create/read/update/upsert at most 100
inputs, search with `after` paging and the 5/s search limit), v4 default associations,
properties and deal pipelines; HubSpot's error bodies (`VALIDATION_ERROR` with
`PROPERTY_DOESNT_EXIST` / `INVALID_OPTION` details, 409 `Existing ID: n`, 207 multi-status
with `objectWriteTraceId`), forward-only `lifecyclestage`, `""` clearing a property, and the
rolling 10 s request budget answered with the real 429 (`TEN_SECONDLY_ROLLING`).
Where the reference marks a behaviour NV the fake picks the stricter reading and says so.

Chaos knobs (seeded): `fail_rate` (500 before any work), `commit_then_fail_rate` (the write
is done, then 504: the ambiguous failure), `down` (every call 503), `search_lag` (seconds
before a new record shows in search, as "may take a few moments" in §1.4).

Example::

    fake = FakeHubSpot()
    client = httpx.Client(transport=httpx.MockTransport(fake), base_url="https://api.hubapi.com")
"""

from __future__ import annotations

import json
import math
import random
import re
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import httpx

__all__ = ["DEFAULT_TOKEN", "FakeHubSpot", "RecordedRequest"]

DEFAULT_TOKEN: Final = "pat-na1-11111111-2222-3333-4444-555555555555"  # noqa: S105 - a test token
_KINDS: Final = {"contacts": "0-1", "companies": "0-2", "deals": "0-3", "notes": "0-46"}
_BY_TYPE_ID: Final = {v: k for k, v in _KINDS.items()}
_SINGULAR: Final = {"contacts": "CONTACT", "companies": "COMPANY", "deals": "DEAL", "notes": "NOTE"}
#: HUBSPOT_DEFINED association type ids -> (from kind, to kind) (hubspot-api-client AssociationTypes).
_TYPE_IDS: Final[Mapping[int, tuple[str, str]]] = {
    1: ("contacts", "companies"),
    279: ("contacts", "companies"),
    280: ("companies", "contacts"),
    3: ("deals", "contacts"),
    4: ("contacts", "deals"),
    5: ("deals", "companies"),
    341: ("deals", "companies"),
    342: ("companies", "deals"),
    202: ("notes", "contacts"),
    201: ("contacts", "notes"),
    214: ("notes", "deals"),
    213: ("deals", "notes"),
    190: ("notes", "companies"),
    189: ("companies", "notes"),
}
_DEFAULT_TYPE: Final[Mapping[tuple[str, str], int]] = {
    ("contacts", "companies"): 279,
    ("companies", "contacts"): 280,
    ("deals", "contacts"): 3,
    ("contacts", "deals"): 4,
    ("deals", "companies"): 341,
    ("companies", "deals"): 342,
    ("notes", "contacts"): 202,
    ("contacts", "notes"): 201,
    ("notes", "deals"): 214,
    ("deals", "notes"): 213,
    ("notes", "companies"): 190,
    ("companies", "notes"): 189,
}
_LIFECYCLE: Final = (
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
)
_DEFAULT_STAGES: Final = (
    ("appointmentscheduled", "Appointment Scheduled", False),
    ("qualifiedtobuy", "Qualified To Buy", False),
    ("presentationscheduled", "Presentation Scheduled", False),
    ("decisionmakerboughtin", "Decision Maker Bought-In", False),
    ("contractsent", "Contract Sent", False),
    ("closedwon", "Closed Won", True),
    ("closedlost", "Closed Lost", True),
)
BATCH_MAX: Final = 100
_AUTH_MESSAGE: Final = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find "
    "more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)
SEARCH_LIMIT_MAX: Final = 200
_ROUTES: Final = (
    (
        "assoc_batch",
        re.compile(
            r"^/crm/(?:v4/associations|associations/\d{4}-\d{2})/([\w-]+)/([\w-]+)/batch/associate/default$"
        ),
    ),
    (
        "assoc_put",
        re.compile(
            r"^/crm/(?:v4/objects|objects/\d{4}-\d{2})/([\w-]+)/([^/]+)/associations/default/([\w-]+)/([^/]+)$"
        ),
    ),
    ("objects", re.compile(r"^/crm/(?:v3/objects|objects/\d{4}-\d{2})/([\w-]+)(?:/(.+))?$")),
    ("properties", re.compile(r"^/crm/(?:v3/properties|properties/\d{4}-\d{2})/([\w-]+)(?:/(.+))?$")),
    ("pipelines", re.compile(r"^/crm/(?:v3/pipelines|pipelines/\d{4}-\d{2})/([\w-]+)$")),
)


class _Refusal(Exception):
    """An HTTP error answer, raised from deep inside a handler."""

    def __init__(self, status: int, message: str, category: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"status": "error", "message": message, "category": category, **extra}


@dataclass
class _Stored:
    id: str
    properties: dict[str, str]
    created_at: str
    updated_at: str
    visible_at: float


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake received it (for contract tests on request bodies)."""

    method: str
    path: str
    params: dict[str, str]
    body: Any
    endpoint: str


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _prop(
    name: str,
    label: str,
    type_: str = "string",
    field_type: str = "text",
    *,
    group: str = "",
    options: list[dict[str, Any]] | None = None,
    unique: bool = False,
    read_only: bool = False,
) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": type_,
        "fieldType": field_type,
        "groupName": group,
        "description": "",
        "options": options or [],
        "hasUniqueValue": unique,
        "hidden": False,
        "calculated": False,
        "externalOptions": False,
        "archived": False,
        "displayOrder": -1,
        "formField": not read_only,
        "modificationMetadata": {
            "archivable": not read_only,
            "readOnlyDefinition": True,
            "readOnlyValue": read_only,
        },
    }


def _options(values: tuple[str, ...]) -> list[dict[str, Any]]:
    return [
        {"label": v.title(), "value": v, "displayOrder": i, "hidden": False} for i, v in enumerate(values)
    ]


def _default_properties() -> dict[str, dict[str, dict[str, Any]]]:
    common = [
        _prop("hs_object_id", "Record ID", "number", "number", read_only=True, unique=True),
        _prop("createdate", "Create Date", "datetime", "date", read_only=True),
        _prop("lastmodifieddate", "Last Modified Date", "datetime", "date", read_only=True),
    ]
    text = {
        "contacts": [
            "email",
            "firstname",
            "lastname",
            "phone",
            "mobilephone",
            "company",
            "jobtitle",
            "address",
            "city",
            "state",
            "zip",
            "country",
            "website",
            "hs_additional_emails",
        ],
        "companies": [
            "name",
            "domain",
            "website",
            "phone",
            "address",
            "address2",
            "city",
            "state",
            "zip",
            "country",
            "industry",
        ],
        "deals": ["dealname", "deal_currency_code", "description"],
        "notes": ["hs_note_body", "hubspot_owner_id", "hs_attachment_ids"],
    }
    props: dict[str, dict[str, dict[str, Any]]] = {}
    for kind, names in text.items():
        group = {
            "contacts": "contactinformation",
            "companies": "companyinformation",
            "deals": "dealinformation",
            "notes": "engagement",
        }[kind]
        defs = [_prop(n, n, group=group) for n in names] + common
        props[kind] = {d["name"]: d for d in defs}
    for kind in ("contacts", "companies"):
        props[kind]["lifecyclestage"] = _prop(
            "lifecyclestage", "Lifecycle Stage", "enumeration", "radio", options=_options(_LIFECYCLE)
        )
    props["contacts"]["email"]["fieldType"] = "text"
    props["deals"]["amount"] = _prop("amount", "Amount", "number", "number")
    props["deals"]["closedate"] = _prop("closedate", "Close Date", "datetime", "date")
    props["deals"]["pipeline"] = _prop("pipeline", "Pipeline", "enumeration", "select")
    props["deals"]["dealstage"] = _prop("dealstage", "Deal Stage", "enumeration", "radio")
    props["notes"]["hs_timestamp"] = _prop("hs_timestamp", "Activity date", "datetime", "date")
    return props


def _parse_datetime(value: str) -> bool:
    if value.isdigit():
        return True
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


class FakeHubSpot:
    """The fake API; call it with an `httpx.Request` (thread-safe).

    Args:
        token: the bearer token it accepts.
        requests_per_10s: the rolling 10 s budget (100 for a Free/Starter private app).
        search_per_second: the search endpoints' own budget (5/s, crm-apis.md §1.4).
        daily_limit: requests per "day" (None: unlimited) answered with `policyName: DAILY`.
        setup: create the hub's properties (`crmhub_external_id` unique on every object,
            `crmhub_tags` multi-checkbox on contacts), as `ensure_properties()` would.
        unique_note_properties: whether unique-value properties may be created on notes (NV).
        seed: seeds fault injection and correlation ids.
        clock: monotonic seconds (for the rate window and search lag).
    """

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        requests_per_10s: int = 100,
        window: float = 10.0,
        search_per_second: int = 5,
        daily_limit: int | None = None,
        setup: bool = True,
        seed: int = 0,
        fail_rate: float = 0.0,
        commit_then_fail_rate: float = 0.0,
        down: bool = False,
        search_lag: float = 0.0,
        retry_after_header: bool = True,
        unique_note_properties: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token = token
        self.requests_per_10s = requests_per_10s
        self.window = window
        self.search_per_second = search_per_second
        self.daily_limit = daily_limit
        self.fail_rate = fail_rate
        self.commit_then_fail_rate = commit_then_fail_rate
        self.down = down
        self.search_lag = search_lag
        self.retry_after_header = retry_after_header
        self.unique_note_properties = unique_note_properties
        self.clock = clock
        self._random = random.Random(seed)
        self._lock = threading.RLock()
        self._records: dict[str, dict[str, _Stored]] = {kind: {} for kind in _KINDS}
        self._links: set[tuple[str, str, str, str]] = set()
        self._next_id = 100001
        self.properties = _default_properties()
        self.groups: dict[str, set[str]] = {
            kind: {"contactinformation", "companyinformation", "dealinformation", "engagement"}
            for kind in _KINDS
        }
        self.pipelines: list[dict[str, Any]] = [self._pipeline("default", "Sales Pipeline", _DEFAULT_STAGES)]
        self._sync_stage_options()
        self._recent: deque[float] = deque()
        self._recent_search: deque[float] = deque()
        self._daily_used = 0
        #: Requests answered, by endpoint (`POST /crm/v3/objects/contacts/batch/upsert`).
        self.calls: Counter[str] = Counter()
        #: Requests answered 429.
        self.rate_limited = 0
        #: Every request, in order.
        self.requests: list[RecordedRequest] = []
        if setup:
            for kind in _KINDS:
                self.groups[kind].add("crmhub")
                self.properties[kind]["crmhub_external_id"] = _prop(
                    "crmhub_external_id", "CRM Hub external id", group="crmhub", unique=True
                )
            self.properties["contacts"]["crmhub_tags"] = _prop(
                "crmhub_tags", "CRM Hub tags", "enumeration", "checkbox", group="crmhub"
            )

    # -- inspection and seeding ----------------------------------------------------------------

    def records(self, kind: str) -> list[dict[str, Any]]:
        """Stored records of `kind` as {"id", **properties}, oldest first."""
        with self._lock:
            return [{"id": r.id, **r.properties} for r in self._records[kind].values()]

    @property
    def contacts(self) -> list[dict[str, Any]]:
        return self.records("contacts")

    @property
    def companies(self) -> list[dict[str, Any]]:
        return self.records("companies")

    @property
    def deals(self) -> list[dict[str, Any]]:
        return self.records("deals")

    @property
    def notes(self) -> list[dict[str, Any]]:
        return self.records("notes")

    activities = notes

    def associated(self, from_kind: str, from_id: str, to_kind: str) -> set[str]:
        """Ids of `to_kind` records linked to one record."""
        with self._lock:
            return {t for f, fid, k, t in self._links if f == from_kind and fid == from_id and k == to_kind}

    def add_record(self, kind: str, **properties: str) -> str:
        """Seed a record (no validation, no request counted); its id."""
        with self._lock:
            return self._insert(kind, {k: str(v) for k, v in properties.items()}).id

    def remove_property(self, kind: str, name: str) -> None:
        with self._lock:
            self.properties[kind].pop(name, None)

    def add_pipeline(self, pipeline_id: str, label: str, stages: list[tuple[str, str, bool]]) -> None:
        with self._lock:
            self.pipelines.append(self._pipeline(pipeline_id, label, tuple(stages)))
            self._sync_stage_options()

    # -- the handler ---------------------------------------------------------------------------

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            path = request.url.path
            params = dict(request.url.params)
            try:
                body = json.loads(request.content) if request.content else None
            except json.JSONDecodeError:
                body = ...
            route, groups = self._route(path)
            endpoint = self._endpoint(request.method, path, route, groups)
            self.requests.append(RecordedRequest(request.method, path, params, body, endpoint))
            if self.down:
                return self._text(503, "Service Unavailable")
            if request.headers.get("authorization") != f"Bearer {self.token}":
                return self._json(
                    401,
                    self._refusal_body(
                        _AUTH_MESSAGE,
                        "INVALID_AUTHENTICATION",
                    ),
                )
            is_search = route == "objects" and (groups[1] or "") == "search"
            limited = self._throttle(is_search)
            if limited is not None:
                self.rate_limited += 1
                return limited
            self.calls[endpoint] += 1
            if self.fail_rate and self._random.random() < self.fail_rate:
                return self._json(500, self._refusal_body("internal error", "INTERNAL_ERROR"))
            try:
                if body is ...:
                    raise _Refusal(400, "Invalid input JSON on line 1", "VALIDATION_ERROR")
                status, answer = self._dispatch(request.method, route, groups, params, body)
            except _Refusal as refusal:
                refusal.body["correlationId"] = self._correlation_id()
                return self._json(refusal.status, refusal.body, headers=self._limit_headers(is_search))
            writes = request.method in ("POST", "PATCH", "PUT", "DELETE") and not (
                path.endswith("/batch/read") or path.endswith("/search")
            )
            if writes and self.commit_then_fail_rate and self._random.random() < self.commit_then_fail_rate:
                return self._text(504, "Gateway Timeout")  # written, but the answer is lost
            return self._json(status, answer, headers=self._limit_headers(is_search))

    # -- plumbing ------------------------------------------------------------------------------

    @staticmethod
    def _route(path: str) -> tuple[str, tuple[str | None, ...]]:
        for name, pattern in _ROUTES:
            found = pattern.match(path)
            if found:
                return name, found.groups()
        return "unknown", ()

    @staticmethod
    def _endpoint(method: str, path: str, route: str, groups: tuple[str | None, ...]) -> str:
        if route == "objects" and groups[1] and not groups[1].startswith("batch/") and groups[1] != "search":
            return f"{method} {path[: -len(groups[1])]}{{id}}"
        if route == "assoc_put":
            return f"{method} /crm/v4/objects/{groups[0]}/{{id}}/associations/default/{groups[2]}/{{id}}"
        return f"{method} {path}"

    def _correlation_id(self) -> str:
        return str(uuid.UUID(int=self._random.getrandbits(128), version=4))

    def _refusal_body(self, message: str, category: str, **extra: Any) -> dict[str, Any]:
        return {
            "status": "error",
            "message": message,
            "correlationId": self._correlation_id(),
            "category": category,
            **extra,
        }

    @staticmethod
    def _json(status: int, body: Any, *, headers: Mapping[str, str] | None = None) -> httpx.Response:
        return httpx.Response(status, json=body, headers=dict(headers or {}))

    @staticmethod
    def _text(status: int, text: str) -> httpx.Response:
        return httpx.Response(status, text=text, headers={"content-type": "text/plain"})

    def _throttle(self, is_search: bool) -> httpx.Response | None:
        now = self.clock()
        if self.daily_limit is not None and self._daily_used >= self.daily_limit:
            body = self._refusal_body(
                "You have reached your daily limit.",
                "RATE_LIMITS",
                errorType="RATE_LIMIT",
                policyName="DAILY",
            )
            return self._json(
                429,
                body,
                headers={
                    "X-HubSpot-RateLimit-Daily": str(self.daily_limit),
                    "X-HubSpot-RateLimit-Daily-Remaining": "0",
                },
            )
        recent, budget, window = (
            (self._recent_search, self.search_per_second, 1.0)
            if is_search
            else (self._recent, self.requests_per_10s, self.window)
        )
        while recent and recent[0] <= now - window:
            recent.popleft()
        if len(recent) >= budget:
            wait = max(0.001, recent[0] + window - now)
            if is_search:
                body = self._refusal_body(
                    "You have reached your secondly limit.",
                    "RATE_LIMITS",
                    errorType="RATE_LIMIT",
                    policyName="SECONDLY",
                )
                headers: dict[str, str] = {}
            else:
                body = self._refusal_body(
                    "You have reached your ten_secondly_rolling limit.",
                    "RATE_LIMITS",
                    errorType="RATE_LIMIT",
                    policyName="TEN_SECONDLY_ROLLING",
                )
                headers = {
                    "X-HubSpot-RateLimit-Max": str(budget),
                    "X-HubSpot-RateLimit-Remaining": "0",
                    "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(window * 1000)),
                }
            if self.retry_after_header:  # REST 429 Retry-After: NV (crm-apis.md §1.6)
                headers["Retry-After"] = str(math.ceil(wait))
            return self._json(429, body, headers=headers)
        recent.append(now)
        self._daily_used += 1
        return None

    def _limit_headers(self, is_search: bool) -> dict[str, str]:
        if is_search:  # "no rate-limit headers on search responses" (crm-apis.md §1.4)
            return {}
        headers = {
            "X-HubSpot-RateLimit-Max": str(self.requests_per_10s),
            "X-HubSpot-RateLimit-Remaining": str(max(0, self.requests_per_10s - len(self._recent))),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(self.window * 1000)),
        }
        if self.daily_limit is not None:
            headers["X-HubSpot-RateLimit-Daily"] = str(self.daily_limit)
            headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(max(0, self.daily_limit - self._daily_used))
        return headers

    def _dispatch(
        self, method: str, route: str, groups: tuple[str | None, ...], params: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        if route == "objects":
            return self._objects(method, self._kind(groups[0]), groups[1], params, body)
        if route == "assoc_batch":
            if method != "POST":
                raise _Refusal(405, "Method not allowed", "VALIDATION_ERROR")
            return self._associate_batch(self._kind(groups[0]), self._kind(groups[1]), body)
        if route == "assoc_put" and method == "PUT":
            return self._associate_one(
                self._kind(groups[0]), str(groups[1]), self._kind(groups[2]), str(groups[3])
            )
        if route == "properties":
            return self._properties(method, self._kind(groups[0]), groups[1], body)
        if route == "pipelines" and method == "GET":
            if self._kind(groups[0]) != "deals":
                return 200, {"results": []}
            return 200, {"results": self.pipelines}
        raise _Refusal(404, "Not Found", "OBJECT_NOT_FOUND")

    @staticmethod
    def _kind(name: str | None) -> str:
        kind = _BY_TYPE_ID.get(name or "", name or "")
        if kind not in _KINDS:
            raise _Refusal(400, f"Unable to infer object type from: {name}", "VALIDATION_ERROR")
        return kind

    # -- objects -------------------------------------------------------------------------------

    def _objects(
        self, method: str, kind: str, rest: str | None, params: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        if rest is None:
            if method == "POST":
                return 201, self._create_one(kind, body)
            if method == "GET":
                return 200, self._list(kind, params)
        elif rest == "search" and method == "POST":
            return 200, self._search(kind, body)
        elif rest.startswith("batch/") and method == "POST":
            verb = rest.removeprefix("batch/")
            handler = {
                "read": self._batch_read,
                "create": self._batch_create,
                "update": self._batch_update,
                "upsert": self._batch_upsert,
            }.get(verb)
            if handler is None:
                raise _Refusal(404, "Not Found", "OBJECT_NOT_FOUND")
            return handler(kind, body)
        elif "/" not in rest:
            record = self._find(kind, rest, params.get("idProperty"))
            if record is None:
                raise _Refusal(
                    404,
                    "Object not found.  objectId are usually numeric.",
                    "OBJECT_NOT_FOUND",
                    context={"id": [rest]},
                )
            if method == "GET":
                wanted = [p for p in params.get("properties", "").split(",") if p]
                return 200, self._out(kind, record, wanted)
            if method == "PATCH":
                props = self._properties_of(body)
                self._check_values(kind, props, record)
                self._apply(kind, record, props)
                return 200, self._out(kind, record)
            if method == "DELETE":
                del self._records[kind][record.id]
                return 204, None
        raise _Refusal(405, "Method not allowed", "VALIDATION_ERROR")

    def _insert(self, kind: str, props: dict[str, str]) -> _Stored:
        record_id = str(self._next_id)
        self._next_id += 1
        now = _now_iso()
        record = _Stored(record_id, {}, now, now, self.clock() + self.search_lag)
        self._records[kind][record_id] = record
        self._apply(kind, record, props)
        return record

    def _apply(self, kind: str, record: _Stored, props: Mapping[str, str]) -> None:
        """Write values: `""` clears; `lifecyclestage` never moves back (silently kept)."""
        for name, value in props.items():
            if name == "lifecyclestage" and value and record.properties.get("lifecyclestage"):
                order = [o["value"] for o in self.properties[kind]["lifecyclestage"]["options"]]
                held = record.properties["lifecyclestage"]
                if held in order and value in order and order.index(value) < order.index(held):
                    continue
            if value == "":
                record.properties.pop(name, None)
            else:
                record.properties[name] = value
        record.updated_at = _now_iso()

    def _out(
        self, kind: str, record: _Stored, wanted: list[str] | None = None, **extra: Any
    ) -> dict[str, Any]:
        base = {
            "hs_object_id": record.id,
            "createdate": record.created_at,
            "lastmodifieddate": record.updated_at,
        }
        if wanted is None:
            props: dict[str, Any] = {**record.properties, **base}
        else:
            props = {**base, **{name: record.properties.get(name) for name in wanted}}
        return {
            "id": record.id,
            "properties": props,
            "createdAt": record.created_at,
            "updatedAt": record.updated_at,
            "archived": False,
            **extra,
        }

    def _find(self, kind: str, key: str, id_property: str | None) -> _Stored | None:
        if not id_property or id_property == "hs_object_id":
            return self._records[kind].get(key)
        self._require_unique(kind, id_property)
        for record in self._records[kind].values():
            held = record.properties.get(id_property)
            if held is not None and (held.lower() == key.lower() if id_property == "email" else held == key):
                return record
        return None

    def _require_unique(self, kind: str, id_property: str) -> None:
        definition = self.properties[kind].get(id_property)
        if definition is None:
            raise _Refusal(400, f'Property "{id_property}" does not exist', "VALIDATION_ERROR")
        if not (definition.get("hasUniqueValue") or (kind == "contacts" and id_property == "email")):
            raise _Refusal(
                400, f"Cannot use non-unique property {id_property} as idProperty", "VALIDATION_ERROR"
            )

    @staticmethod
    def _properties_of(entry: Any) -> dict[str, str]:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("properties"), Mapping):
            raise _Refusal(400, "Invalid input JSON: `properties` is required", "VALIDATION_ERROR")
        out: dict[str, str] = {}
        for name, value in entry["properties"].items():
            if value is None:
                continue
            if isinstance(value, dict | list):
                raise _Refusal(
                    400, f"Invalid input JSON: property {name} must be a string", "VALIDATION_ERROR"
                )
            out[str(name)] = str(value).lower() if isinstance(value, bool) else str(value)
        return out

    def _value_errors(
        self, kind: str, props: Mapping[str, str], record: _Stored | None
    ) -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = []

        def bad(name: str, code: str, message: str) -> None:
            errors.append(
                {
                    "isValid": False,
                    "message": message,
                    "error": code,
                    "name": name,
                    "localizedErrorMessage": message,
                }
            )

        defs = self.properties[kind]
        for name, value in props.items():
            definition = defs.get(name)
            if definition is None:
                bad(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist')
                continue
            if definition["modificationMetadata"]["readOnlyValue"] or value == "":
                continue
            kind_of = definition["type"]
            if kind_of == "number":
                try:
                    Decimal(value)
                except InvalidOperation:
                    bad(name, "INVALID_DECIMAL", f"{value} is not a valid decimal")
            elif kind_of in ("datetime", "date") and not _parse_datetime(value):
                bad(name, "INVALID_DATE", f"{value} is not a valid date or datetime")
            elif kind_of == "enumeration" and name not in ("dealstage", "pipeline"):
                allowed = {o["value"] for o in definition["options"]}
                chosen = value.split(";") if definition["fieldType"] == "checkbox" else [value]
                for option in chosen:
                    if option not in allowed:
                        bad(
                            name,
                            "INVALID_OPTION",
                            f"{option} was not one of the allowed options: "
                            + ", ".join(
                                f"[label: {o['label']}, value: {o['value']}]" for o in definition["options"]
                            ),
                        )
            if name == "email" and not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", value):
                bad(name, "INVALID_EMAIL", f"Email address {value} is invalid")
        if kind == "deals":
            pipeline = (
                props.get("pipeline") or (record.properties.get("pipeline") if record else None) or "default"
            )
            stage = props.get("dealstage")
            known = {p["id"]: {s["id"] for s in p["stages"]} for p in self.pipelines}
            if "pipeline" in props and props["pipeline"] not in known:
                bad("pipeline", "INVALID_OPTION", f"{props['pipeline']} was not one of the allowed options")
            elif stage and stage not in known.get(pipeline, set()):
                bad(
                    "dealstage",
                    "INVALID_OPTION",
                    f"{stage} is not a valid deal stage for pipeline {pipeline}",
                )
        return errors

    def _check_values(self, kind: str, props: Mapping[str, str], record: _Stored | None) -> None:
        errors = self._value_errors(kind, props, record)
        if errors:
            raise _Refusal(
                400,
                "Property values were not valid: " + json.dumps(errors),
                "VALIDATION_ERROR",
                errors=[
                    {"message": e["message"], "code": e["error"], "context": {"propertyName": [e["name"]]}}
                    for e in errors
                ],
            )

    def _missing_required(self, kind: str, props: Mapping[str, str]) -> str | None:
        # notes: hs_timestamp is required (notes guide); deals: dealstage (NV: stricter reading).
        required = {"notes": ("hs_timestamp",), "deals": ("dealstage",)}.get(kind, ())
        missing = [name for name in required if not props.get(name)]
        return f"Missing required properties: {', '.join(missing)}" if missing else None

    def _unique_conflict(self, kind: str, props: Mapping[str, str], record: _Stored | None) -> _Stored | None:
        """Another record already holding a unique value this write sets."""
        for name, value in props.items():
            definition = self.properties[kind].get(name) or {}
            unique = definition.get("hasUniqueValue") or (kind == "contacts" and name == "email")
            if not unique or not value or definition["modificationMetadata"]["readOnlyValue"]:
                continue
            holder = self._find(kind, value, name)
            if holder is not None and (record is None or holder.id != record.id):
                return holder
        return None

    def _conflict(self, kind: str, holder: _Stored) -> _Refusal:
        if kind == "contacts":
            return _Refusal(409, f"Contact already exists. Existing ID: {holder.id}", "CONFLICT")
        # The unique-property conflict message is NV; it follows the contact one.
        return _Refusal(
            409,
            f"A {_SINGULAR[kind].lower()} with this unique property value already exists. "
            f"Existing ID: {holder.id}",
            "CONFLICT",
        )

    def _links_for(self, kind: str, entry: Mapping[str, Any]) -> list[tuple[str, str]]:
        links: list[tuple[str, str]] = []
        for association in entry.get("associations") or ():
            target = str(((association or {}).get("to") or {}).get("id") or "")
            for spec in association.get("types") or ():
                pair = _TYPE_IDS.get(int(spec.get("associationTypeId", -1)))
                if pair is None or pair[0] != kind:
                    raise _Refusal(
                        400,
                        f"invalid association type {spec.get('associationTypeId')} from {kind}",
                        "VALIDATION_ERROR",
                    )
                if target not in self._records[pair[1]]:
                    raise _Refusal(
                        400,
                        f"No {_SINGULAR[pair[1]].lower()} with ID {target} exists",
                        "VALIDATION_ERROR",
                        context={"id": [target]},
                    )
                links.append((pair[1], target))
        return links

    def _link(self, from_kind: str, from_id: str, to_kind: str, to_id: str) -> None:
        self._links.add((from_kind, from_id, to_kind, to_id))
        self._links.add((to_kind, to_id, from_kind, from_id))

    def _create_one(self, kind: str, body: Any) -> dict[str, Any]:
        props = self._properties_of(body)
        self._check_values(kind, props, None)
        missing = self._missing_required(kind, props)
        if missing:
            raise _Refusal(400, missing, "VALIDATION_ERROR")
        holder = self._unique_conflict(kind, props, None)
        if holder is not None:
            raise self._conflict(kind, holder)
        links = self._links_for(kind, body)
        record = self._insert(kind, props)
        for to_kind, to_id in links:
            self._link(kind, record.id, to_kind, to_id)
        return self._out(kind, record)

    def _list(self, kind: str, params: dict[str, str]) -> dict[str, Any]:
        limit = min(int(params.get("limit", "10")), 100)
        after = int(params.get("after", "0"))
        rows = list(self._records[kind].values())
        page = rows[after : after + limit]
        answer: dict[str, Any] = {"results": [self._out(kind, r) for r in page]}
        if after + limit < len(rows):
            answer["paging"] = {"next": {"after": str(after + limit)}}
        return answer

    # -- batches -------------------------------------------------------------------------------

    @staticmethod
    def _inputs(body: Any) -> list[Any]:
        inputs = body.get("inputs") if isinstance(body, Mapping) else None
        if not isinstance(inputs, list):
            raise _Refusal(400, "Invalid input JSON: `inputs` is required", "VALIDATION_ERROR")
        if len(inputs) > BATCH_MAX:
            # The exact wording of HubSpot's batch-size error is NV.
            raise _Refusal(
                400,
                f"Too many inputs: {len(inputs)} > the maximum of {BATCH_MAX}",
                "VALIDATION_ERROR",
                context={"inputs": [str(len(inputs))]},
            )
        return inputs

    @staticmethod
    def _no_duplicates(ids: list[str]) -> None:
        duplicates = sorted(key for key, count in Counter(ids).items() if count > 1)
        if duplicates:
            raise _Refusal(
                400,
                f"Duplicate IDs found in batch input: {duplicates}. IDs must be unique",
                "VALIDATION_ERROR",
            )

    def _batch_answer(
        self, results: list[dict[str, Any]], errors: list[dict[str, Any]], ok: int = 200
    ) -> tuple[int, Any]:
        now = _now_iso()
        answer: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": now,
            "completedAt": now,
        }
        if errors:
            answer.update(numErrors=len(errors), errors=errors)
            return 207, answer
        return ok, answer

    def _batch_read(self, kind: str, body: Any) -> tuple[int, Any]:
        inputs = self._inputs(body)
        id_property = body.get("idProperty")
        wanted = [str(p) for p in body.get("properties") or ()]
        results: list[dict[str, Any]] = []
        missing: list[str] = []
        for entry in inputs:
            key = str((entry or {}).get("id") or "")
            record = self._find(kind, key, id_property)
            if record is None:
                missing.append(key)
            elif all(r["id"] != record.id for r in results):
                results.append(self._out(kind, record, wanted))
        errors = []
        if missing:
            errors.append(
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": f"Could not get some {_SINGULAR[kind]} objects, they may be deleted or not "
                    "exist. Check that ids are valid.",
                    "context": {"ids": missing},
                }
            )
        return self._batch_answer(results, errors)

    def _batch_create(self, kind: str, body: Any) -> tuple[int, Any]:
        inputs = self._inputs(body)
        traces = [str((e or {}).get("objectWriteTraceId") or "") for e in inputs]
        per_item = all(traces) and len(set(traces)) == len(traces)
        plans: list[tuple[dict[str, str], list[tuple[str, str]]] | _Refusal] = []
        for entry in inputs:
            try:
                props = self._properties_of(entry)
                self._check_values(kind, props, None)
                missing = self._missing_required(kind, props)
                if missing:
                    raise _Refusal(400, missing, "VALIDATION_ERROR")
                holder = self._unique_conflict(kind, props, None)
                if holder is not None:
                    raise self._conflict(kind, holder)
                plans.append((props, self._links_for(kind, entry)))
            except _Refusal as refusal:
                if not per_item:  # the whole batch fails, naming the first bad input
                    raise
                plans.append(refusal)
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for trace, plan in zip(traces, plans, strict=True):
            if isinstance(plan, _Refusal):
                errors.append({**plan.body, "context": {"objectWriteTraceId": [trace]}})
                continue
            record = self._insert(kind, plan[0])
            for to_kind, to_id in plan[1]:
                self._link(kind, record.id, to_kind, to_id)
            results.append(
                self._out(kind, record, objectWriteTraceId=trace) if trace else self._out(kind, record)
            )
        return self._batch_answer(results, errors, ok=201)

    def _batch_update(self, kind: str, body: Any) -> tuple[int, Any]:
        inputs = self._inputs(body)
        self._no_duplicates([str((e or {}).get("id") or "") for e in inputs])
        planned: list[tuple[Any, _Stored | None, dict[str, str]]] = []
        for entry in inputs:
            record = self._find(kind, str(entry.get("id") or ""), entry.get("idProperty"))
            props = self._properties_of(entry)
            self._check_values(kind, props, record)  # one bad value fails the whole batch
            if record is not None:
                holder = self._unique_conflict(kind, props, record)
                if holder is not None:
                    raise self._conflict(kind, holder)
            planned.append((entry, record, props))
        results: list[dict[str, Any]] = []
        missing: list[str] = []
        for entry, record, props in planned:
            if record is None:
                missing.append(str(entry.get("id")))
                continue
            self._apply(kind, record, props)
            trace = entry.get("objectWriteTraceId")
            results.append(
                self._out(kind, record, objectWriteTraceId=trace) if trace else self._out(kind, record)
            )
        errors = []
        if missing:
            errors.append(
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": f"Could not update some {_SINGULAR[kind]} objects: they do not exist",
                    "context": {"ids": missing},
                }
            )
        return self._batch_answer(results, errors)

    def _batch_upsert(self, kind: str, body: Any) -> tuple[int, Any]:
        inputs = self._inputs(body)
        self._no_duplicates(
            [f"{(e or {}).get('idProperty')}:{str((e or {}).get('id') or '').lower()}" for e in inputs]
        )
        planned: list[tuple[Any, str, str, dict[str, str], _Stored | None]] = []
        for entry in inputs:
            key = str((entry or {}).get("id") or "")
            id_property = str((entry or {}).get("idProperty") or "")
            if not key or not id_property:
                raise _Refusal(
                    400, "Invalid input JSON: `id` and `idProperty` are required", "VALIDATION_ERROR"
                )
            self._require_unique(kind, id_property)
            record = self._find(kind, key, id_property)
            props = self._properties_of(entry)
            self._check_values(kind, props, record)  # one bad value fails the whole batch
            if record is None:
                missing = self._missing_required(kind, props)
                if missing:
                    raise _Refusal(400, missing, "VALIDATION_ERROR")
            holder = self._unique_conflict(kind, {k: v for k, v in props.items() if k != id_property}, record)
            if holder is not None:
                raise self._conflict(kind, holder)
            planned.append((entry, key, id_property, props, record))
        results = []
        for entry, key, id_property, props, record in planned:
            new = record is None
            if record is None:
                record = self._insert(kind, {id_property: key, **props})
            else:
                self._apply(kind, record, props)
            extra: dict[str, Any] = {"new": new}
            if entry.get("objectWriteTraceId"):
                extra["objectWriteTraceId"] = entry["objectWriteTraceId"]
            results.append(self._out(kind, record, **extra))
        return self._batch_answer(results, [])

    # -- search --------------------------------------------------------------------------------

    def _search(self, kind: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, Mapping):
            raise _Refusal(400, "Invalid input JSON", "VALIDATION_ERROR")
        limit = int(body.get("limit") or 10)
        if limit > SEARCH_LIMIT_MAX:
            raise _Refusal(400, f"limit must be at most {SEARCH_LIMIT_MAX}", "VALIDATION_ERROR")
        groups = body.get("filterGroups") or []
        if len(groups) > 5 or sum(len(g.get("filters") or []) for g in groups) > 18:
            raise _Refusal(400, "Too many filters or filter groups", "VALIDATION_ERROR")
        now = self.clock()
        rows = [
            r
            for r in self._records[kind].values()
            if r.visible_at <= now and (not groups or any(self._matches(kind, r, g) for g in groups))
        ]
        after = int(body.get("after") or 0)
        page = rows[after : after + limit]
        wanted = [str(p) for p in body.get("properties") or ()]
        answer: dict[str, Any] = {"total": len(rows), "results": [self._out(kind, r, wanted) for r in page]}
        if after + limit < len(rows):
            answer["paging"] = {"next": {"after": str(after + limit)}}
        return answer

    def _matches(self, kind: str, record: _Stored, group: Mapping[str, Any]) -> bool:
        for condition in group.get("filters") or ():
            name = str(condition.get("propertyName"))
            if name not in self.properties[kind]:
                raise _Refusal(
                    400,
                    f"There was a problem with the request: Unable to find property {name}",
                    "VALIDATION_ERROR",
                )
            held = record.id if name == "hs_object_id" else record.properties.get(name)
            operator = condition.get("operator")
            folded = None if held is None else held.lower()
            if operator == "EQ":
                ok = folded is not None and folded == str(condition.get("value", "")).lower()
            elif operator == "NEQ":
                ok = folded != str(condition.get("value", "")).lower()
            elif operator == "IN":
                values = condition.get("values")
                if not isinstance(values, list):
                    raise _Refusal(400, "IN needs `values`", "VALIDATION_ERROR")
                ok = folded is not None and folded in {str(v).lower() for v in values}
            elif operator == "HAS_PROPERTY":
                ok = held is not None
            elif operator == "NOT_HAS_PROPERTY":
                ok = held is None
            elif operator == "CONTAINS_TOKEN":
                ok = folded is not None and str(condition.get("value", "")).lower().strip("*") in folded
            else:
                raise _Refusal(400, f"Unsupported operator {operator}", "VALIDATION_ERROR")
            if not ok:
                return False
        return True

    # -- associations --------------------------------------------------------------------------

    def _associate_batch(self, from_kind: str, to_kind: str, body: Any) -> tuple[int, Any]:
        inputs = self._inputs(body)
        type_id = _DEFAULT_TYPE.get((from_kind, to_kind))
        if type_id is None:
            raise _Refusal(
                400, f"No default association between {from_kind} and {to_kind}", "VALIDATION_ERROR"
            )
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for entry in inputs:
            a = str(((entry or {}).get("from") or {}).get("id") or "")
            b = str(((entry or {}).get("to") or {}).get("id") or "")
            absent = [x for x, k in ((a, from_kind), (b, to_kind)) if x not in self._records[k]]
            if absent:
                errors.append(
                    {
                        "status": "error",
                        "category": "VALIDATION_ERROR",
                        "message": f"{', '.join(absent)} are not valid object ids",
                        "context": {"fromObjectId": [a], "toObjectId": [b]},
                    }
                )
                continue
            self._link(from_kind, a, to_kind, b)
            results.append(
                {
                    "from": {"id": a},
                    "to": {"id": b},
                    "associationSpec": {
                        "associationCategory": "HUBSPOT_DEFINED",
                        "associationTypeId": type_id,
                    },
                }
            )
        return self._batch_answer(results, errors)

    def _associate_one(self, from_kind: str, from_id: str, to_kind: str, to_id: str) -> tuple[int, Any]:
        return self._associate_batch(
            from_kind, to_kind, {"inputs": [{"from": {"id": from_id}, "to": {"id": to_id}}]}
        )

    # -- properties and pipelines --------------------------------------------------------------

    def _properties(self, method: str, kind: str, rest: str | None, body: Any) -> tuple[int, Any]:
        defs = self.properties[kind]
        if rest is None and method == "GET":
            return 200, {"results": list(defs.values())}
        if rest is None and method == "POST":
            return 201, self._create_property(kind, body)
        if rest == "groups" and method == "POST":
            name = str((body or {}).get("name") or "")
            if not name or not (body or {}).get("label"):
                raise _Refusal(400, "name and label are required", "VALIDATION_ERROR")
            if name in self.groups[kind]:
                raise _Refusal(
                    409, f"A property group named '{name}' already exists", "OBJECT_ALREADY_EXISTS"
                )
            self.groups[kind].add(name)
            return 201, {"name": name, "label": body["label"], "displayOrder": -1, "archived": False}
        if rest and "/" not in rest:
            definition = defs.get(rest)
            if definition is None:
                raise _Refusal(
                    404, f"Unable to find property {rest} for object type {kind}", "OBJECT_NOT_FOUND"
                )
            if method == "GET":
                return 200, definition
            if method == "PATCH":
                for key in ("label", "description", "options", "groupName", "hidden", "displayOrder"):
                    if isinstance(body, Mapping) and key in body:
                        definition[key] = body[key]
                return 200, definition
        raise _Refusal(405, "Method not allowed", "VALIDATION_ERROR")

    def _create_property(self, kind: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, Mapping):
            raise _Refusal(400, "Invalid input JSON", "VALIDATION_ERROR")
        missing = [k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)]
        if missing:
            raise _Refusal(400, f"Missing required fields: {', '.join(missing)}", "VALIDATION_ERROR")
        if body["groupName"] not in self.groups[kind]:
            raise _Refusal(400, f"Property group {body['groupName']} does not exist", "VALIDATION_ERROR")
        if kind == "notes" and body.get("hasUniqueValue") and not self.unique_note_properties:
            # Whether HubSpot allows unique values on notes is NV: this knob plays "no".
            raise _Refusal(400, "hasUniqueValue is not supported for this object type", "VALIDATION_ERROR")
        if body["name"] in self.properties[kind]:
            raise _Refusal(409, f"Property named '{body['name']}' already exists.", "OBJECT_ALREADY_EXISTS")
        definition = _prop(
            str(body["name"]),
            str(body["label"]),
            str(body["type"]),
            str(body["fieldType"]),
            group=str(body["groupName"]),
            options=list(body.get("options") or []),
            unique=bool(body.get("hasUniqueValue")),
        )
        definition["description"] = str(body.get("description") or "")
        self.properties[kind][definition["name"]] = definition
        return definition

    @staticmethod
    def _pipeline(pipeline_id: str, label: str, stages: tuple[tuple[str, str, bool], ...]) -> dict[str, Any]:
        now = _now_iso()
        return {
            "id": pipeline_id,
            "label": label,
            "displayOrder": 0,
            "archived": False,
            "createdAt": now,
            "updatedAt": now,
            "stages": [
                {
                    "id": sid,
                    "label": slabel,
                    "displayOrder": i,
                    "archived": False,
                    "createdAt": now,
                    "updatedAt": now,
                    "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT",
                    "metadata": {
                        "isClosed": str(closed).lower(),
                        "probability": "1.0" if sid == "closedwon" else ("0.0" if closed else "0.2"),
                    },
                }
                for i, (sid, slabel, closed) in enumerate(stages)
            ],
        }

    def _sync_stage_options(self) -> None:
        deals = self.properties["deals"]
        deals["pipeline"]["options"] = [
            {"label": p["label"], "value": p["id"], "displayOrder": i, "hidden": False}
            for i, p in enumerate(self.pipelines)
        ]
        deals["dealstage"]["options"] = [
            {"label": s["label"], "value": s["id"], "displayOrder": s["displayOrder"], "hidden": False}
            for p in self.pipelines
            for s in p["stages"]
        ]
