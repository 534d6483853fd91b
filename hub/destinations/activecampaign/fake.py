"""`FakeActiveCampaign`: an in-memory ActiveCampaign API v3 for tests, chaos runs and benchmarks.

An `httpx.MockTransport` handler (thread-safe) with the endpoints the adapter uses, their
validation and documented bodies (shared/reference/crm-apis.md §2): `Api-Token` check (403
`{"message": "Forbidden"}`, as v3 answers a missing or wrong key), the 5 requests/s/account
budget (429 + `Retry-After` + `RateLimit-*`), `limit`/`offset` pages with `meta.total`, 422
`{"errors": [...]}` bodies (`code: duplicate` for a taken email or account name) and 404s.
Wording of error titles the docs do not show is ours (marked NV below).

Fault injection, with a seeded random: `fail_rate` (500 before anything is written),
`commit_then_fail_rate` (the write is applied, then a 502 as if the connection died),
`down` (every call 503).

Example::

    fake = FakeActiveCampaign()
    client = httpx.Client(transport=httpx.MockTransport(fake), base_url=FAKE_BASE_URL)
"""

from __future__ import annotations

import json
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

__all__ = ["FAKE_BASE_URL", "FAKE_TOKEN", "FakeActiveCampaign"]

FAKE_BASE_URL: Final = "https://fake.api-us1.com/api/3"
FAKE_TOKEN: Final = "fake-ac-token"  # noqa: S105 - the fake's own test key

Json = dict[str, Any]
_API_PATH: Final = "/api/3"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CURRENCY = re.compile(r"^[a-z]{3}$")
_INT32_MAX: Final = 2**31 - 1


class _Reply(Exception):
    """Raised by a route to answer with an error."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def _invalid(title: str, pointer: str, code: str = "field_invalid") -> _Reply:
    return _Reply(
        422,
        {
            "errors": [
                {
                    "title": title,
                    "detail": "",
                    "code": code,
                    "source": {"pointer": f"/data/attributes/{pointer}"},
                }
            ]
        },
    )


def _not_found(kind: str, item_id: str) -> _Reply:
    return _Reply(404, {"message": f"No Result found for {kind} with id {item_id}"})


def _now() -> str:
    return datetime.now(UTC).astimezone().isoformat(timespec="seconds")


class FakeActiveCampaign:
    """The fake API. Seeded with user 1, pipeline 1 "Sales" (stages 1-3) and deal field 1.

    Args:
        token: the accepted `Api-Token`.
        budget: (requests, seconds) per account before 429s; None turns the limit off.
        fail_rate / commit_then_fail_rate: chance per call / per write of an injected 5xx.
        down: every call answers 503.
        phone_only_contacts: the account option allowing contacts without email.
        seed / clock: for reproducible chaos and rate-limit tests.

    Inspection: `contacts`, `deals`, `notes` (alias `activities`), `accounts`, `tags` as stored;
    `calls` counts requests by route (`"POST /contact/sync"`, `"GET /contacts/{id}"`);
    `rate_limited` counts 429s; `requests` keeps (method, path?query, body) of routed calls.
    Setup: `add_field`, `add_pipeline`, `add_deal_field`; `delete(kind, id)` as an admin would.
    """

    def __init__(
        self,
        *,
        token: str = FAKE_TOKEN,
        budget: tuple[int, float] | None = (5, 1.0),
        fail_rate: float = 0.0,
        commit_then_fail_rate: float = 0.0,
        down: bool = False,
        phone_only_contacts: bool = True,
        seed: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.token = token
        self.budget = budget
        self.fail_rate = fail_rate
        self.commit_then_fail_rate = commit_then_fail_rate
        self.down = down
        self.phone_only_contacts = phone_only_contacts
        self.calls: Counter[str] = Counter()
        self.rate_limited = 0
        #: Every request that reached a route: (method, path?query, JSON body or None).
        self.requests: list[tuple[str, str, Any]] = []
        self._random = random.Random(seed)
        self._clock = clock
        self._window: deque[float] = deque()
        self._lock = threading.RLock()
        self._next: Counter[str] = Counter()
        self._contacts: dict[str, Json] = {}
        self._field_values: dict[tuple[str, str], Json] = {}
        self._fields: dict[str, Json] = {}
        self._tags: dict[str, Json] = {}
        self._contact_tags: dict[tuple[str, str], Json] = {}
        self._groups: dict[str, Json] = {}
        self._stages: dict[str, Json] = {}
        self._deal_meta: dict[str, Json] = {}
        self._deals: dict[str, Json] = {}
        self._deal_data: dict[tuple[str, str], Json] = {}
        self._notes: dict[str, Json] = {}
        self._accounts: dict[str, Json] = {}
        self._account_contacts: dict[str, Json] = {}
        self._users = {"1": {"id": "1", "username": "admin", "firstName": "Ada", "lastName": "Admin"}}
        self._routes: list[tuple[str, re.Pattern[str], str, Callable[..., httpx.Response]]] = []
        for method, template, handler in self._route_table():
            pattern = re.compile("^" + template.replace("{id}", r"(\d+)") + "$")
            self._routes.append((method, pattern, f"{method} {template}", handler))
        self.add_pipeline("Sales", ["To Contact", "In Contact", "Follow Up"])
        self.add_deal_field("CRM Hub external id")

    # --- setup ------------------------------------------------------------------------

    def _new_id(self, kind: str) -> str:
        self._next[kind] += 1
        return str(self._next[kind])

    def add_field(self, title: str, field_type: str = "text") -> str:
        """A contact custom field; its id."""
        with self._lock:
            field_id = self._new_id("field")
            perstag = re.sub(r"\W+", "_", title).upper()
            self._fields[field_id] = {
                "id": field_id,
                "title": title,
                "type": field_type,
                "perstag": perstag,
                "isrequired": "0",
                "options": [],
            }
            return field_id

    def add_pipeline(self, title: str, stages: list[str], currency: str = "usd") -> tuple[str, list[str]]:
        """A pipeline (deal group) and its stages, in order; (group id, stage ids)."""
        with self._lock:
            group_id = self._new_id("group")
            stage_ids = []
            for order, stage_title in enumerate(stages, start=1):
                stage_id = self._new_id("stage")
                self._stages[stage_id] = {
                    "id": stage_id,
                    "group": group_id,
                    "title": stage_title,
                    "order": str(order),
                }
                stage_ids.append(stage_id)
            self._groups[group_id] = {
                "id": group_id,
                "title": title,
                "currency": currency,
                "autoassign": "1",
                "stages": stage_ids,
            }
            return group_id, stage_ids

    def add_deal_field(self, label: str, field_type: str = "text") -> str:
        """A deal custom field (dealCustomFieldMeta); its id."""
        with self._lock:
            meta_id = self._new_id("dealmeta")
            self._deal_meta[meta_id] = {
                "id": meta_id,
                "fieldLabel": label,
                "fieldType": field_type,
                "fieldOptions": None,
                "isRequired": 0,
            }
            return meta_id

    def delete(self, kind: str, item_id: str) -> None:
        """Delete a `contact`, `deal`, `note`, `account` or `tag` as an admin would in the app."""
        with self._lock:
            table = {
                "contact": self._contacts,
                "deal": self._deals,
                "note": self._notes,
                "account": self._accounts,
                "tag": self._tags,
            }[kind]
            del table[item_id]
            if kind == "tag":
                self._contact_tags = {k: v for k, v in self._contact_tags.items() if k[1] != item_id}
            if kind == "contact":
                self._contact_tags = {k: v for k, v in self._contact_tags.items() if k[0] != item_id}
                self._field_values = {k: v for k, v in self._field_values.items() if k[0] != item_id}
            if kind == "deal":
                self._deal_data = {k: v for k, v in self._deal_data.items() if k[0] != item_id}

    # --- inspection -------------------------------------------------------------------

    @property
    def contacts(self) -> list[Json]:
        """Stored contacts with `fields` {field id: value} and `tags` [names], oldest first."""
        with self._lock:
            return [
                {
                    **c,
                    "fields": {f: v["value"] for (cid, f), v in self._field_values.items() if cid == c["id"]},
                    "tags": sorted(self._tags[t]["tag"] for (cid, t) in self._contact_tags if cid == c["id"]),
                }
                for c in self._contacts.values()
            ]

    @property
    def deals(self) -> list[Json]:
        """Stored deals with `fields` {deal field id: value}; `value` in minor units (int)."""
        with self._lock:
            return [
                {
                    **d,
                    "value": int(d["value"]),
                    "status": int(d["status"]),
                    "fields": {
                        f: v["fieldValue"] for (did, f), v in self._deal_data.items() if did == d["id"]
                    },
                }
                for d in self._deals.values()
            ]

    @property
    def notes(self) -> list[Json]:
        with self._lock:
            return [dict(n) for n in self._notes.values()]

    activities = notes

    @property
    def accounts(self) -> list[Json]:
        with self._lock:
            return [
                {
                    **a,
                    "contacts": sorted(
                        link["contact"]
                        for link in self._account_contacts.values()
                        if link["account"] == a["id"]
                    ),
                }
                for a in self._accounts.values()
            ]

    @property
    def tags(self) -> list[str]:
        with self._lock:
            return sorted(t["tag"] for t in self._tags.values())

    # --- the transport ----------------------------------------------------------------

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            path = request.url.path
            route = self._match(request.method, path)
            self.calls[route[0] if route else f"{request.method} {path}"] += 1
            if self.down:
                return _json(503, {"message": "Service Unavailable"})
            limited = self._throttle()
            if limited is not None:
                return limited
            if request.headers.get("Api-Token") != self.token:
                return _json(403, {"message": "Forbidden"})
            if self.fail_rate and self._random.random() < self.fail_rate:
                return _json(500, {"message": "An unexpected error occurred."})  # NV wording
            if route is None:
                return _json(404, {"message": "Not Found"})
            _, handler, args = route
            body: Any = None
            if request.method in ("POST", "PUT"):
                try:
                    body = json.loads(request.content or b"null")
                except ValueError:
                    return _json(400, {})
            query = request.url.query.decode()
            self.requests.append((request.method, path + (f"?{query}" if query else ""), body))
            try:
                if request.method in ("POST", "PUT"):
                    if not isinstance(body, dict):
                        return _json(400, {})
                    response = handler(body, *args)
                else:
                    response = handler(request.url.params, *args)
            except _Reply as reply:
                return _json(reply.status, reply.body, reply.headers)
            if (
                request.method in ("POST", "PUT")
                and self.commit_then_fail_rate
                and self._random.random() < self.commit_then_fail_rate
            ):
                return _json(502, {"message": "Bad Gateway"})
            return response

    def _match(
        self, method: str, path: str
    ) -> tuple[str, Callable[..., httpx.Response], tuple[str, ...]] | None:
        if not path.startswith(_API_PATH + "/"):
            return None
        relative = path[len(_API_PATH) :]
        for route_method, pattern, key, handler in self._routes:
            found = pattern.match(relative)
            if found and route_method == method:
                return key, handler, found.groups()
        return None

    def _throttle(self) -> httpx.Response | None:
        if self.budget is None:
            return None
        limit, per = self.budget
        now = self._clock()
        while self._window and self._window[0] <= now - per:
            self._window.popleft()
        if len(self._window) >= limit:
            self.rate_limited += 1
            wait = max(1, math.ceil(self._window[0] + per - now))
            return _json(
                429,
                {"message": "Too Many Requests"},  # body NV; status and headers documented
                {"Retry-After": str(wait), "RateLimit-Limit": str(limit), "RateLimit-Remaining": "0"},
            )
        self._window.append(now)
        return None

    def _route_table(self) -> list[tuple[str, str, Callable[..., httpx.Response]]]:
        return [
            ("GET", "/users/me", self._me),
            ("GET", "/users/{id}", self._get_user),
            ("POST", "/contact/sync", self._contact_sync),
            ("GET", "/contacts", self._list_contacts),
            ("POST", "/contacts", self._create_contact),
            ("GET", "/contacts/{id}", self._get_contact),
            ("PUT", "/contacts/{id}", self._put_contact),
            ("GET", "/contacts/{id}/fieldValues", self._contact_field_values),
            ("GET", "/contacts/{id}/contactTags", self._contact_contact_tags),
            ("GET", "/contacts/{id}/deals", self._contact_deals),
            ("GET", "/contacts/{id}/accountContacts", self._contact_account_contacts),
            ("GET", "/tags", self._list_tags),
            ("POST", "/tags", self._create_tag),
            ("POST", "/contactTags", self._create_contact_tag),
            ("GET", "/fields", self._list_fields),
            ("GET", "/dealGroups", self._list_groups),
            ("GET", "/dealStages", self._list_stages),
            ("GET", "/dealCustomFieldMeta", self._list_deal_meta),
            ("GET", "/dealCustomFieldData", self._list_deal_data),
            ("POST", "/deals", self._create_deal),
            ("GET", "/deals/{id}", self._get_deal),
            ("PUT", "/deals/{id}", self._put_deal),
            ("POST", "/deals/{id}/notes", self._create_deal_note),
            ("POST", "/notes", self._create_note),
            ("GET", "/notes/{id}", self._get_note),
            ("GET", "/accounts", self._list_accounts),
            ("POST", "/accounts", self._create_account),
            ("GET", "/accounts/{id}", self._get_account),
            ("PUT", "/accounts/{id}", self._put_account),
            ("POST", "/accountContacts", self._create_account_contact),
        ]

    # --- routes: contacts -------------------------------------------------------------

    def _me(self, params: httpx.QueryParams) -> httpx.Response:
        return _json(200, {"user": self._users["1"]})

    def _get_user(self, params: httpx.QueryParams, user_id: str) -> httpx.Response:
        if user_id not in self._users:
            raise _not_found("User", user_id)
        return _json(200, {"user": self._users[user_id]})

    def _contact_by_email(self, email: str) -> Json | None:
        return next(
            (c for c in self._contacts.values() if c["email"] and c["email"].lower() == email.lower()), None
        )

    def _write_contact(self, contact: Json, data: Json) -> None:
        for key in ("firstName", "lastName", "phone", "email"):
            if key in data and data[key] is not None:
                if not isinstance(data[key], str):
                    raise _invalid(f"The contact {key} must be a string.", key)  # NV wording
                contact[key] = data[key].strip()
        contact["udate"] = _now()
        for item in data.get("fieldValues") or []:
            if not isinstance(item, dict) or "field" not in item:
                raise _invalid("Each field value needs a field id and a value.", "fieldValues")  # NV
            field_id = str(item["field"])
            if field_id not in self._fields:
                continue  # unknown field ids are ignored (NV)
            stored = self._field_values.setdefault(
                (contact["id"], field_id),
                {
                    "id": self._new_id("fieldValue"),
                    "contact": contact["id"],
                    "field": field_id,
                    "owner": contact["id"],
                },
            )
            stored["value"] = "" if item.get("value") is None else str(item["value"])

    def _contact_answer(self, status: int, contact: Json) -> httpx.Response:
        values = [v for (cid, _), v in self._field_values.items() if cid == contact["id"]]
        return _json(
            status, {"fieldValues": values, "contact": {**contact, "fieldValues": [v["id"] for v in values]}}
        )

    def _new_contact(self, email: str) -> Json:
        contact_id = self._new_id("contact")
        contact = {
            "id": contact_id,
            "email": email,
            "firstName": "",
            "lastName": "",
            "phone": "",
            "cdate": _now(),
            "udate": _now(),
            "deleted": "0",
        }
        self._contacts[contact_id] = contact
        return contact

    def _contact_sync(self, body: Json) -> httpx.Response:
        data = body.get("contact")
        if not isinstance(data, dict):
            raise _Reply(400, {})
        email = data.get("email")
        if not isinstance(email, str) or not _EMAIL.match(email.strip()):
            raise _invalid("Contact Email Address is not valid.", "email", "email_invalid")  # NV wording
        contact = self._contact_by_email(email.strip())
        status = 200 if contact else 201  # 200 vs 201 on update: NV
        if contact is None:
            contact = self._new_contact(email.strip().lower())
        self._write_contact(contact, {k: v for k, v in data.items() if k != "email"})
        return self._contact_answer(status, contact)

    def _list_contacts(self, params: httpx.QueryParams) -> httpx.Response:
        found = list(self._contacts.values())
        if "email" in params:
            found = [c for c in found if c["email"].lower() == params["email"].lower()]
        if "phone" in params:
            found = [c for c in found if c["phone"].startswith(params["phone"])]
        return _page("contacts", found, params)

    def _create_contact(self, body: Json) -> httpx.Response:
        data = body.get("contact")
        if not isinstance(data, dict):
            raise _Reply(400, {})
        email = (data.get("email") or "").strip()
        if not email:
            if not (data.get("allowNullEmail") and self.phone_only_contacts and data.get("phone")):
                raise _invalid("Email address is required.", "email", "field_missing")  # NV wording
        elif not _EMAIL.match(email):
            raise _invalid("Contact Email Address is not valid.", "email", "email_invalid")  # NV wording
        elif self._contact_by_email(email):
            raise _invalid("Email address already exists in the system", "email", "duplicate")
        contact = self._new_contact(email.lower())
        self._write_contact(contact, {k: v for k, v in data.items() if k != "email"})
        return self._contact_answer(201, contact)

    def _contact(self, contact_id: str) -> Json:
        if contact_id not in self._contacts:
            raise _not_found("Subscriber", contact_id)
        return self._contacts[contact_id]

    def _get_contact(self, params: httpx.QueryParams, contact_id: str) -> httpx.Response:
        contact = self._contact(contact_id)
        values = [v for (cid, _), v in self._field_values.items() if cid == contact_id]
        return _json(
            200,
            {
                "contactAutomations": [],
                "contactData": [],
                "contactLists": [],
                "deals": [],
                "fieldValues": values,
                "geoIps": [],
                "contact": contact,
            },
        )

    def _put_contact(self, body: Json, contact_id: str) -> httpx.Response:
        contact = self._contact(contact_id)
        data = body.get("contact")
        if not isinstance(data, dict):
            raise _Reply(400, {})
        email = data.get("email")
        if isinstance(email, str) and email.strip():
            other = self._contact_by_email(email.strip())
            if other is not None and other["id"] != contact_id:
                raise _invalid("Email address already exists in the system", "email", "duplicate")
            if not _EMAIL.match(email.strip()):
                raise _invalid("Contact Email Address is not valid.", "email", "email_invalid")  # NV
        self._write_contact(contact, data)
        return self._contact_answer(200, contact)

    def _contact_field_values(self, params: httpx.QueryParams, contact_id: str) -> httpx.Response:
        self._contact(contact_id)
        return _page(
            "fieldValues", [v for (cid, _), v in self._field_values.items() if cid == contact_id], params
        )

    def _contact_contact_tags(self, params: httpx.QueryParams, contact_id: str) -> httpx.Response:
        self._contact(contact_id)
        links = [link for (cid, _), link in self._contact_tags.items() if cid == contact_id]
        return _page("contactTags", links, params)

    def _contact_deals(self, params: httpx.QueryParams, contact_id: str) -> httpx.Response:
        self._contact(contact_id)
        return _page("deals", [d for d in self._deals.values() if d["contact"] == contact_id], params)

    def _contact_account_contacts(self, params: httpx.QueryParams, contact_id: str) -> httpx.Response:
        self._contact(contact_id)
        links = [link for link in self._account_contacts.values() if link["contact"] == contact_id]
        return _page("accountContacts", links, params)

    # --- routes: tags and fields ------------------------------------------------------

    def _list_tags(self, params: httpx.QueryParams) -> httpx.Response:
        found = list(self._tags.values())
        exact = params.get("filters[search][eq]")
        if exact is not None:
            found = [t for t in found if t["tag"].casefold() == exact.casefold()]
        if "search" in params:
            found = [t for t in found if params["search"].casefold() in t["tag"].casefold()]
        return _page("tags", found, params)

    def _create_tag(self, body: Json) -> httpx.Response:
        data = body.get("tag")
        if not isinstance(data, dict):
            raise _Reply(400, {})
        name = data.get("tag")
        if not isinstance(name, str) or not name.strip():
            raise _invalid("The tag name was not provided.", "tag", "field_missing")  # NV wording
        tag_type = str(data.get("tagType") or "contact")
        for tag in self._tags.values():
            if tag["tag"].casefold() == name.strip().casefold() and tag["tagType"] == tag_type:
                return _json(200, {"tag": tag})  # an existing name answers the existing tag [3P]
        tag_id = self._new_id("tag")
        self._tags[tag_id] = {
            "id": tag_id,
            "tag": name.strip(),
            "tagType": tag_type,
            "description": str(data.get("description") or ""),
            "cdate": _now(),
        }
        return _json(201, {"tag": self._tags[tag_id]})

    def _create_contact_tag(self, body: Json) -> httpx.Response:
        data = body.get("contactTag")
        if not isinstance(data, dict):
            raise _Reply(400, {})
        contact_id, tag_id = str(data.get("contact") or ""), str(data.get("tag") or "")
        if not tag_id.isdecimal():
            raise _Reply(422, {"errors": [{"title": "No tag id provided", "detail": ""}]})  # [3P]
        if contact_id not in self._contacts:
            raise _Reply(
                404, {"errors": [{"status": 404, "title": "Not Found", "detail": "Contact not found"}]}
            )
        if tag_id not in self._tags:
            raise _Reply(404, {"errors": [{"status": 404, "title": "Not Found", "detail": "Tag not found"}]})
        existing = self._contact_tags.get((contact_id, tag_id))
        if existing is not None:  # re-applying answers 200 with the same link [3P]
            return _json(200, {"contacts": [self._contacts[contact_id]], "contactTag": existing})
        link = {"id": self._new_id("contactTag"), "contact": contact_id, "tag": tag_id, "cdate": _now()}
        self._contact_tags[(contact_id, tag_id)] = link
        return _json(201, {"contacts": [self._contacts[contact_id]], "contactTag": link})

    def _list_fields(self, params: httpx.QueryParams) -> httpx.Response:
        return _page("fields", list(self._fields.values()), params, {"fieldOptions": [], "fieldRels": []})

    # --- routes: deals ----------------------------------------------------------------

    def _list_groups(self, params: httpx.QueryParams) -> httpx.Response:
        return _page(
            "dealGroups", list(self._groups.values()), params, {"dealStages": list(self._stages.values())}
        )

    def _list_stages(self, params: httpx.QueryParams) -> httpx.Response:
        found = list(self._stages.values())
        if "filters[d_groupid]" in params:
            found = [s for s in found if s["group"] == params["filters[d_groupid]"]]
        return _page("dealStages", found, params)

    def _list_deal_meta(self, params: httpx.QueryParams) -> httpx.Response:
        return _page("dealCustomFieldMeta", list(self._deal_meta.values()), params)

    def _list_deal_data(self, params: httpx.QueryParams) -> httpx.Response:
        found = list(self._deal_data.values())
        if "filters[dealId]" in params:
            found = [d for d in found if str(d["dealId"]) == params["filters[dealId]"]]
        return _page("dealCustomFieldData", found, params)

    def _deal(self, deal_id: str) -> Json:
        if deal_id not in self._deals:
            raise _not_found("Deal", deal_id)
        return self._deals[deal_id]

    def _check_deal(self, data: Json, stored: Json | None) -> Json:
        """The validated deal attributes (create when `stored` is None); raises the 422s."""
        clean: Json = {}
        if "title" in data or stored is None:
            if not isinstance(data.get("title"), str) or not data["title"].strip():
                raise _invalid("The deal title was not provided.", "title", "field_missing")  # NV wording
            clean["title"] = data["title"].strip()
        for key, kind, table in (
            ("contact", "Subscriber", self._contacts),
            ("account", "Account", self._accounts),
            ("owner", "User", self._users),
        ):
            if data.get(key) not in (None, ""):
                if str(data[key]) not in table:
                    raise _invalid(f"No Result found for {kind} with id {data[key]}", key, "related_missing")
                clean[key] = str(data[key])
        if stored is None and not (clean.get("contact") or clean.get("account")):
            raise _invalid("A deal needs a contact or an account.", "contact", "field_missing")  # NV wording
        if "value" in data or stored is None:
            value = data.get("value")
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _INT32_MAX:
                raise _invalid("The deal value must be a whole number of cents, zero or more.", "value")  # NV
            clean["value"] = str(value)
        if data.get("currency") is not None:
            if not isinstance(data["currency"], str) or not _CURRENCY.match(data["currency"]):
                raise _invalid(
                    "The deal currency must be a 3-letter ISO code in lower case.", "currency"
                )  # NV
            clean["currency"] = data["currency"]
        if "status" in data:
            if data["status"] not in (0, 1, 2, "0", "1", "2"):
                raise _invalid("The deal status must be 0, 1 or 2.", "status")  # NV wording
            clean["status"] = str(data["status"])
        group = str(data["group"]) if data.get("group") not in (None, "") else None
        stage = str(data["stage"]) if data.get("stage") not in (None, "") else None
        if group is not None and group not in self._groups:
            raise _invalid(f"No Result found for Pipeline with id {group}", "group", "related_missing")
        if stage is not None and stage not in self._stages:
            raise _invalid(f"No Result found for Stage with id {stage}", "stage", "related_missing")
        if stage is not None:
            if group is not None and self._stages[stage]["group"] != group:
                raise _invalid("The deal stage does not belong to the deal pipeline.", "stage")  # NV wording
            clean["stage"], clean["group"] = stage, self._stages[stage]["group"]
        elif group is not None:
            clean["group"] = group
            if stored is None or stored["group"] != group:
                first = min(self._groups[group]["stages"], key=lambda s: int(self._stages[s]["order"]))
                clean["stage"] = first
        elif stored is None:
            raise _invalid("A deal needs a pipeline or a stage.", "group", "field_missing")  # NV wording
        fields = data.get("fields")
        if fields is not None:
            if not isinstance(fields, list):
                raise _invalid("The deal fields must be a list.", "fields")  # NV wording
            for item in fields:
                if not isinstance(item, dict) or str(item.get("customFieldId")) not in self._deal_meta:
                    raise _Reply(422, {"errors": [{"detail": "A related custom field was not found."}]})  # NV
        return clean

    def _write_deal_fields(self, deal_id: str, fields: list[Json]) -> None:
        for item in fields:
            field_id = str(item["customFieldId"])
            stored = self._deal_data.setdefault(
                (deal_id, field_id),
                {
                    "id": self._new_id("dealData"),
                    "dealId": int(deal_id),
                    "customFieldId": int(field_id),
                    "dealCustomFieldMetumId": int(field_id),
                    "createdTimestamp": _now(),
                },
            )
            stored["fieldValue"] = str(item.get("fieldValue"))
            stored["updatedTimestamp"] = _now()

    def _deal_answer(self, status: int, deal: Json) -> httpx.Response:
        fields = [
            {"customFieldId": v["customFieldId"], "fieldValue": v["fieldValue"], "dealId": deal["id"]}
            for (did, _), v in self._deal_data.items()
            if did == deal["id"]
        ]
        contacts = [self._contacts[deal["contact"]]] if deal.get("contact") in self._contacts else []
        return _json(
            status,
            {
                "contacts": contacts,
                "deal": {**deal, "fields": fields},
                "dealStages": [self._stages[deal["stage"]]],
            },
        )

    def _create_deal(self, body: Json) -> httpx.Response:
        data = body.get("deal")
        if not isinstance(data, dict):
            raise _Reply(400, {})
        clean = self._check_deal(data, None)
        deal_id = self._new_id("deal")
        deal = {
            "id": deal_id,
            "title": "",
            "contact": "",
            "account": "",
            "owner": "1",
            "value": "0",
            "currency": self._groups[clean["group"]]["currency"],
            "status": "0",
            "percent": "0",
            "cdate": _now(),
            "mdate": _now(),
            **clean,
        }
        self._deals[deal_id] = deal
        self._write_deal_fields(deal_id, data.get("fields") or [])
        return self._deal_answer(201, deal)

    def _get_deal(self, params: httpx.QueryParams, deal_id: str) -> httpx.Response:
        return _json(200, {"deal": self._deal(deal_id)})

    def _put_deal(self, body: Json, deal_id: str) -> httpx.Response:
        deal = self._deal(deal_id)
        data = body.get("deal")
        if not isinstance(data, dict):
            raise _Reply(400, {})
        clean = self._check_deal(data, deal)
        deal.update(clean, mdate=_now())
        self._write_deal_fields(deal_id, data.get("fields") or [])
        return self._deal_answer(200, deal)

    # --- routes: notes ----------------------------------------------------------------

    def _store_note(self, text: Any, reltype: str, relid: str) -> Json:
        if not isinstance(text, str) or not text.strip():
            raise _invalid("The note text was not provided.", "note", "field_missing")  # NV wording
        note_id = self._new_id("note")
        note = {
            "id": note_id,
            "note": text,
            "reltype": reltype,
            "relid": relid,
            "userid": "1",
            "cdate": _now(),
            "mdate": _now(),
        }
        self._notes[note_id] = note
        return note

    def _create_note(self, body: Json) -> httpx.Response:
        data = body.get("note")
        if not isinstance(data, dict):
            raise _Reply(400, {})
        reltype, relid = data.get("reltype"), str(data.get("relid") or "")
        tables = {"Subscriber": self._contacts, "Deal": self._deals, "CustomerAccount": self._accounts}
        if reltype not in ("Activity", "Deal", "DealTask", "Subscriber", "CustomerAccount"):
            raise _invalid("The note reltype is not valid.", "reltype")  # NV wording
        if not relid.isdecimal():
            raise _invalid("The note relid was not provided.", "relid", "field_missing")  # NV wording
        if reltype in tables and relid not in tables[reltype]:
            raise _invalid(f"No Result found for {reltype} with id {relid}", "relid", "related_missing")
        return _json(201, {"note": self._store_note(data.get("note"), reltype, relid)})

    def _create_deal_note(self, body: Json, deal_id: str) -> httpx.Response:
        deal = self._deal(deal_id)
        data = body.get("note")
        if not isinstance(data, dict):
            raise _Reply(400, {})
        return _json(201, {"deals": [deal], "note": self._store_note(data.get("note"), "Deal", deal_id)})

    def _get_note(self, params: httpx.QueryParams, note_id: str) -> httpx.Response:
        if note_id not in self._notes:
            raise _not_found("Note", note_id)
        return _json(200, {"note": self._notes[note_id]})

    # --- routes: accounts -------------------------------------------------------------

    def _list_accounts(self, params: httpx.QueryParams) -> httpx.Response:
        found = list(self._accounts.values())
        if "search" in params:
            found = [a for a in found if params["search"].casefold() in a["name"].casefold()]
        return _page("accounts", found, params)

    def _create_account(self, body: Json) -> httpx.Response:
        data = body.get("account")
        if not isinstance(data, dict):
            raise _Reply(400, {})
        name = data.get("name")
        if not isinstance(name, str) or not name.strip():
            raise _invalid("The account name was not provided.", "name", "field_missing")
        if any(a["name"].casefold() == name.strip().casefold() for a in self._accounts.values()):
            raise _invalid(
                f'An account named "{name.strip()}" already exists. Please choose a new name.',
                "name",
                "duplicate",
            )
        account_id = self._new_id("account")
        self._accounts[account_id] = {
            "id": account_id,
            "name": name.strip(),
            "accountUrl": data.get("accountUrl") or None,
            "createdTimestamp": _now(),
            "updatedTimestamp": _now(),
        }
        return _json(201, {"account": self._accounts[account_id]})

    def _account(self, account_id: str) -> Json:
        if account_id not in self._accounts:
            raise _not_found("Account", account_id)
        return self._accounts[account_id]

    def _get_account(self, params: httpx.QueryParams, account_id: str) -> httpx.Response:
        return _json(200, {"account": self._account(account_id)})

    def _put_account(self, body: Json, account_id: str) -> httpx.Response:
        account = self._account(account_id)
        data = body.get("account")
        if not isinstance(data, dict):
            raise _Reply(400, {})
        if "accountUrl" in data:
            account["accountUrl"] = data["accountUrl"]
        account["updatedTimestamp"] = _now()
        return _json(200, {"account": account})

    def _create_account_contact(self, body: Json) -> httpx.Response:
        data = body.get("accountContact")
        if not isinstance(data, dict):
            raise _Reply(400, {})
        contact_id, account_id = str(data.get("contact") or ""), str(data.get("account") or "")
        if contact_id not in self._contacts:
            raise _invalid(
                f"No Result found for Subscriber with id {contact_id}", "contact", "related_missing"
            )
        if account_id not in self._accounts:
            raise _invalid(f"No Result found for Account with id {account_id}", "account", "related_missing")
        if any(link["contact"] == contact_id for link in self._account_contacts.values()):
            # A contact belongs to one account (NV wording).
            raise _invalid("The contact is already associated with an account.", "contact", "duplicate")
        link_id = self._new_id("accountContact")
        self._account_contacts[link_id] = {
            "id": link_id,
            "contact": contact_id,
            "account": account_id,
            "jobTitle": str(data.get("jobTitle") or ""),
        }
        return _json(201, {"accountContact": self._account_contacts[link_id]})


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def _page(
    key: str, items: list[Json], params: httpx.QueryParams, extra: Json | None = None
) -> httpx.Response:
    """A `limit` (default 20, max 100) / `offset` page with `meta.total` (a string, as documented)."""
    try:
        limit = min(max(int(params.get("limit", "20")), 1), 100)
        offset = max(int(params.get("offset", "0")), 0)
    except ValueError:
        return _json(400, {})
    return _json(
        200, {key: items[offset : offset + limit], **(extra or {}), "meta": {"total": str(len(items))}}
    )
