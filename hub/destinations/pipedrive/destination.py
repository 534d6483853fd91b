"""`PipedriveDestination`: persons, organizations, deals, notes and activities in Pipedrive.

API v2 everywhere it exists; notes and activity types are v1 only (crm-apis.md §3). Pipedrive
has no upsert, no idempotency key and no bulk endpoint for persons or deals, so every write
is find-then-create or update, one record per request (`batch_limits` is empty):

- persons: `known_id`, else email (exact search), else phone as a candidate only (never a
  person with a different email), else the external-id person field; then create/update;
- organizations: `known_id`, else a mapped domain field, else exact name;
- deals: `known_id`, else the external-id deal field (exact search, verified by reading the
  deal), else title + person; then create/update;
- notes/activities: `known_id`, else a marker written into their text, looked up among the
  person's or deal's newest 100 before creating.

A create that timed out may have committed: the retry runs the same lookup first.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, ClassVar, Final

import httpx

from hub.canonical import Activity, Company, Contact, Deal
from hub.destination import Destination, DestinationSettings
from hub.destinations.pipedrive.errors import NotFoundError, classify, transport_failure
from hub.destinations.pipedrive.payloads import (
    Record,
    activity_body,
    activity_marker,
    deal_changes,
    deal_create_body,
    external_key,
    has_marker,
    is_custom,
    is_deleted,
    note_content,
    org_changes,
    org_create_body,
    person_changes,
    person_create_body,
    same_email,
    stored_value,
    tag_changes,
)
from hub.destinations.pipedrive.settings import PipedriveSettings, property_scope
from hub.errors import (
    AuthDeliveryError,
    DeliveryError,
    PermanentDeliveryError,
    PluginError,
    TransientDeliveryError,
)

__all__ = ["PipedriveDestination"]

log = logging.getLogger(__name__)

#: Candidates read back after a search (the search is exact; more than one is a duplicate).
_CANDIDATES: Final = 5
#: Newest notes/activities scanned for the retry marker before creating one.
_MARKER_WINDOW: Final = 100
_PAGE: Final = 500
_MAX_PAGES: Final = 100
#: Field types Pipedrive search can match exactly, as text (crm-apis.md §3).
_TEXT_TYPES: Final = frozenset({"varchar", "varchar_auto", "text"})
_FIELDS_PATH: Final = {
    "person": "/api/v2/personFields",
    "deal": "/api/v2/dealFields",
    "organization": "/api/v2/organizationFields",
}


def _int_id(value: str | None, what: str) -> int | None:
    if value is None:
        return None
    if not value.isdecimal():
        raise PermanentDeliveryError(f"pipedrive: {what} id {value!r} is not a Pipedrive id")
    return int(value)


class PipedriveDestination(Destination):
    """Pipedrive through the injected, rate-governed `httpx.Client` (base URL = the company's).

    Example::

        crm = PipedriveDestination(PipedriveSettings(api_token="...", base_url="https://acme.pipedrive.com"),
                                   client=httpx.Client(base_url="https://acme.pipedrive.com"))
        person_id = crm.upsert_contact(Contact(email="ada@example.com"))
    """

    name: ClassVar[str] = "pipedrive"
    settings_model: ClassVar[type[DestinationSettings]] = PipedriveSettings
    batch_limits: ClassVar[dict[str, int]] = {}  # no bulk create/update for persons or deals
    #: Burst per API token on the smallest plan (Lite): 20 requests per rolling 2 s.
    rate_limit: ClassVar[tuple[int, float] | None] = (20, 2.0)

    def __init__(
        self, settings: PipedriveSettings, *, instance_id: str | None = None, client: Any = None
    ) -> None:
        super().__init__(settings, instance_id=instance_id, client=client)
        self.settings: PipedriveSettings = settings
        self._stage_pipelines: dict[int, int] | None = None

    # -- what the delivery layer asks ---------------------------------------------------------

    def base_url(self) -> str:
        return self.settings.base_url

    def account_key(self) -> str:
        """The burst budget is per token: a hash of company address and token, never the token."""
        seed = f"{self.settings.base_url}\0{self.settings.api_token.get_secret_value()}"
        return "pipedrive:" + hashlib.sha256(seed.encode()).hexdigest()[:24]

    def request_budget(self) -> tuple[int, float]:
        return (self.settings.burst_per_2s, 2.0)

    def close(self) -> None:
        self._stage_pipelines = None

    # -- HTTP -------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        action: str,
        *,
        params: dict[str, Any] | None = None,
        body: Record | None = None,
    ) -> Record:
        """One call; any failure becomes the delivery error from the classification table."""
        if self.client is None:
            raise PluginError("the pipedrive destination needs the httpx client the delivery layer injects")
        token = self.settings.api_token.get_secret_value()
        try:
            response = self.client.request(
                method,
                path,
                params=params,
                json=body,
                headers={"x-api-token": token, "Accept": "application/json"},
            )
        except httpx.RequestError as exc:
            raise transport_failure(exc, action) from exc
        if response.status_code >= 400:
            raise classify(response, action, secret=token)
        try:
            payload = response.json()
        except ValueError as exc:  # a 2xx that is not JSON: a proxy page; the write may have happened
            raise TransientDeliveryError(
                f"pipedrive: {action}: HTTP {response.status_code}: not JSON"
            ) from exc
        if not isinstance(payload, dict) or payload.get("success") is False:
            raise PermanentDeliveryError(f"pipedrive: {action}: unexpected response {str(payload)[:200]}")
        return payload

    def _data(self, payload: Record, action: str) -> Record:
        data = payload.get("data")
        if not isinstance(data, dict) or "id" not in data:
            raise PermanentDeliveryError(f"pipedrive: {action}: the response has no record id")
        return data

    def _get(self, collection: str, record_id: int) -> Record | None:
        """GET /api/v2/<collection>/<id>; None if it does not exist or is deleted."""
        try:
            payload = self._request(
                "GET", f"/api/v2/{collection}/{record_id}", f"read {collection} {record_id}"
            )
        except NotFoundError:
            return None
        record = payload.get("data")
        if not isinstance(record, dict) or is_deleted(record):
            return None
        return record

    def _known(self, collection: str, known_id: str | None) -> Record | None:
        """The record the hub already knows, or None (then the caller looks it up)."""
        if known_id is None or not known_id.isdecimal():
            return None
        record = self._get(collection, int(known_id))
        if record is None:
            log.info(
                "pipedrive %s: %s %s is gone; looking it up again", self.instance_id, collection, known_id
            )
        return record

    def _search(self, collection: str, term: str, fields: str, **filters: int) -> list[int]:
        """Ids from GET /api/v2/<collection>/search, exact match on `fields`."""
        params: dict[str, Any] = {
            "term": term,
            "fields": fields,
            "exact_match": "true",
            "limit": _CANDIDATES,
            **filters,
        }
        payload = self._request("GET", f"/api/v2/{collection}/search", f"search {collection}", params=params)
        items = (payload.get("data") or {}).get("items") or []
        return [
            item["item"]["id"]
            for item in items
            if isinstance(item, dict) and isinstance(item.get("item"), dict) and "id" in item["item"]
        ]

    def _list(self, path: str, action: str, params: dict[str, Any] | None = None) -> list[Record]:
        """Every item of a v2 cursor-paginated list."""
        items: list[Record] = []
        cursor: str | None = None
        for _ in range(_MAX_PAGES):
            query = {**(params or {}), "limit": _PAGE, **({"cursor": cursor} if cursor else {})}
            payload = self._request("GET", path, action, params=query)
            items.extend(i for i in payload.get("data") or [] if isinstance(i, dict))
            cursor = (payload.get("additional_data") or {}).get("next_cursor")
            if not cursor:
                break
        return items

    def _save(self, collection: str, record: Record | None, body: Record, what: str) -> str:
        """Create (`record` None) or PATCH the changed fields; the record's id."""
        if record is None:
            payload = self._request("POST", f"/api/v2/{collection}", f"create {what}", body=body)
            created = self._data(payload, f"create {what}")
            log.debug("pipedrive %s: created %s %s", self.instance_id, what, created["id"])
            return str(created["id"])
        if body:
            self._request("PATCH", f"/api/v2/{collection}/{record['id']}", f"update {what}", body=body)
            log.debug("pipedrive %s: updated %s %s", self.instance_id, what, record["id"])
        return str(record["id"])

    # -- persons ----------------------------------------------------------------------------

    def _find_person(self, contact: Contact) -> Record | None:
        if contact.email:
            for person_id in self._search("persons", contact.email, "email"):
                person = self._get("persons", person_id)
                emails = [
                    e.get("value", "") for e in (person or {}).get("emails") or [] if isinstance(e, dict)
                ]
                if person and any(same_email(e, contact.email) for e in emails):
                    return person
        if contact.phone:
            # A phone is only a candidate: never merge into a person with another email.
            for person_id in self._search("persons", contact.phone, "phone"):
                person = self._get("persons", person_id)
                if person is None:
                    continue
                emails = [e.get("value") for e in person.get("emails") or [] if isinstance(e, dict)]
                if not contact.email or not any(emails):
                    return person
        key = external_key(contact.external_ids)
        field = self.settings.person_external_id_field
        if key and field:
            for person_id in self._search("persons", key, "custom_fields"):
                person = self._get("persons", person_id)
                if person and stored_value(person, field) == key:
                    return person
        return None

    def upsert_contact(self, contact: Contact, *, known_id: str | None = None) -> str:
        person = self._known("persons", known_id) or self._find_person(contact)
        org_id = None
        wants_org = person is None or person.get("org_id") is None or "company" in self.settings.overwrite
        if contact.company and self.settings.link_company_by_name and wants_org:
            org = self._org_by_name(contact.company)
            org_id = (
                int(org["id"])
                if org
                else int(self._save("organizations", None, {"name": contact.company}, "organization"))
            )
        if person is None:
            return self._save("persons", None, person_create_body(contact, self.settings, org_id), "person")
        return self._save("persons", person, person_changes(person, contact, self.settings, org_id), "person")

    def add_tags(self, contact_id: str, tags: Iterable[str]) -> None:
        person_id = _int_id(contact_id, "contact")
        assert person_id is not None
        person = self._get("persons", person_id)
        if person is None:
            raise NotFoundError(f"pipedrive: add tags: person {person_id} does not exist")
        self._save("persons", person, tag_changes(person, tags, self.settings), "person tags")

    def link_contact_company(self, contact_id: str, company_id: str) -> None:
        person_id, org_id = _int_id(contact_id, "contact"), _int_id(company_id, "company")
        assert person_id is not None and org_id is not None
        person = self._get("persons", person_id)
        if person is None:
            raise NotFoundError(f"pipedrive: link organization: person {person_id} does not exist")
        current = person.get("org_id")
        if current != org_id and (current is None or "company" in self.settings.overwrite):
            self._save("persons", person, {"org_id": org_id}, "person organization")

    # -- organizations ----------------------------------------------------------------------

    def _org_by_name(self, name: str) -> Record | None:
        for org_id in self._search("organizations", name, "name"):
            org = self._get("organizations", org_id)
            if org and str(org.get("name", "")).casefold() == name.casefold():
                return org
        return None

    def _find_org(self, company: Company) -> Record | None:
        domain_code = self.settings.properties.get("company.domain")
        if company.domain and domain_code and is_custom(domain_code):
            for org_id in self._search("organizations", company.domain, "custom_fields"):
                org = self._get("organizations", org_id)
                if org and stored_value(org, domain_code) == company.domain:
                    return org
        if company.name:
            org = self._org_by_name(company.name)
            stored_domain = stored_value(org, domain_code) if org and domain_code else None
            # Same name, different domains: two companies (Acme Inc vs Acme GmbH), not one.
            if org and not (stored_domain and company.domain and stored_domain != company.domain):
                return org
        return None

    def upsert_company(self, company: Company, *, known_id: str | None = None) -> str:
        org = self._known("organizations", known_id) or self._find_org(company)
        if org is None:
            return self._save("organizations", None, org_create_body(company, self.settings), "organization")
        return self._save("organizations", org, org_changes(org, company, self.settings), "organization")

    # -- deals ------------------------------------------------------------------------------

    def _pipeline_of(self, stage_id: int) -> int | None:
        """The pipeline a stage belongs to (stages listed once per adapter instance)."""
        if self._stage_pipelines is None:
            stages = self._list("/api/v2/stages", "list stages")
            self._stage_pipelines = {
                int(s["id"]): int(s["pipeline_id"]) for s in stages if "id" in s and "pipeline_id" in s
            }
        return self._stage_pipelines.get(stage_id)

    def _mapped_stage(self, deal: Deal) -> int | None:
        stages = self.settings.stages
        if deal.stage is None:
            return None
        if deal.pipeline and f"{deal.pipeline}/{deal.stage}" in stages:
            return stages[f"{deal.pipeline}/{deal.stage}"]
        return stages.get(deal.stage)

    def _find_deal(self, deal: Deal, person_id: int | None) -> Record | None:
        key, field = external_key(deal.external_ids), self.settings.deal_external_id_field
        if key and field:
            for deal_id in self._search("deals", key, "custom_fields"):
                stored = self._get("deals", deal_id)
                if stored and stored_value(stored, field) == key:
                    return stored
            return None
        if deal.title and person_id is not None:
            for deal_id in self._search("deals", deal.title, "title", person_id=person_id):
                stored = self._get("deals", deal_id)
                if stored and stored.get("title") == deal.title and stored.get("person_id") == person_id:
                    return stored
        return None

    def upsert_deal(
        self, deal: Deal, *, contact_id: str | None, company_id: str | None, known_id: str | None = None
    ) -> str:
        person_id, org_id = _int_id(contact_id, "contact"), _int_id(company_id, "company")
        stored = self._known("deals", known_id) or self._find_deal(deal, person_id)
        mapped = self._mapped_stage(deal)
        if stored is None:
            stage_id = mapped if mapped is not None else self.settings.stage_id
            if stage_id is not None and stage_id == self.settings.stage_id and self.settings.pipeline_id:
                pipeline_id: int | None = self.settings.pipeline_id
            elif stage_id is not None:
                pipeline_id = self._pipeline_of(stage_id)
            else:
                pipeline_id = self.settings.pipelines.get(deal.pipeline or "", self.settings.pipeline_id)
            body = deal_create_body(
                deal,
                self.settings,
                person_id=person_id,
                org_id=org_id,
                pipeline_id=pipeline_id,
                stage_id=stage_id,
            )
            return self._save("deals", None, body, "deal")
        moves = mapped is not None and mapped != stored.get("stage_id")
        pipeline_id = self._pipeline_of(mapped) if mapped is not None and moves else None
        changes = deal_changes(
            stored,
            deal,
            self.settings,
            person_id=person_id,
            org_id=org_id,
            pipeline_id=pipeline_id,
            stage_id=mapped,
        )
        return self._save("deals", stored, changes, "deal")

    # -- notes and activities ---------------------------------------------------------------

    def add_activity(
        self, activity: Activity, *, contact_id: str | None, deal_id: str | None, known_id: str | None = None
    ) -> str:
        person_id, deal = _int_id(contact_id, "contact"), _int_id(deal_id, "deal")
        marker = activity_marker(activity, contact_id, deal_id)
        activity_type = self.settings.activity_types.get(activity.kind)
        if activity_type is not None:
            body = activity_body(
                activity, activity_type, marker, person_id=person_id, deal_id=deal, now=datetime.now(UTC)
            )
            return self._write_activity(body, marker, person_id, deal, known_id)
        if person_id is None and deal is None:
            raise PermanentDeliveryError(
                f"pipedrive: a note needs a person or a deal; the {activity.kind} activity has neither"
            )
        note: Record = {"content": note_content(activity, marker)}
        if person_id is not None:
            note["person_id"] = person_id
        if deal is not None:
            note["deal_id"] = deal
        return self._write_note(note, marker, person_id, deal, known_id)

    def _ours(self, path: str, text_field: str, marker: str, known_id: str | None) -> Record | None:
        """The note/activity `known_id` names, if it still exists and carries our marker (an id
        from an older configuration may name another kind of entry: never overwrite that)."""
        if known_id is None or not known_id.isdecimal():
            return None
        try:
            record = self._request("GET", path, "read timeline entry").get("data")
        except NotFoundError:
            return None
        if not isinstance(record, dict) or is_deleted(record) or record.get("active_flag") is False:
            return None
        return record if has_marker(record.get(text_field), marker) else None

    def _write_note(
        self, note: Record, marker: str, person_id: int | None, deal_id: int | None, known_id: str | None
    ) -> str:
        existing = self._ours(f"/api/v1/notes/{known_id}", "content", marker, known_id)
        if existing is not None:
            if existing.get("content") != note["content"]:
                self._request("PUT", f"/api/v1/notes/{known_id}", "update note", body=note)
            return str(existing["id"])
        scope = {"deal_id": deal_id} if deal_id is not None else {"person_id": person_id}
        params = {**scope, "sort": "add_time DESC", "start": 0, "limit": _MARKER_WINDOW}
        listed = self._request("GET", "/api/v1/notes", "list notes", params=params)
        for existing in listed.get("data") or []:
            if isinstance(existing, dict) and has_marker(existing.get("content"), marker):
                return str(existing["id"])  # written before: a retry adds nothing
        created = self._data(self._request("POST", "/api/v1/notes", "create note", body=note), "create note")
        return str(created["id"])

    def _write_activity(
        self, body: Record, marker: str, person_id: int | None, deal_id: int | None, known_id: str | None
    ) -> str:
        existing = self._ours(f"/api/v2/activities/{known_id}", "note", marker, known_id)
        if existing is not None:
            return self._save("activities", existing, body, "activity")
        if deal_id is not None or person_id is not None:
            scope = {"deal_id": deal_id} if deal_id is not None else {"person_id": person_id}
            params = {**scope, "sort_by": "add_time", "sort_direction": "desc", "limit": _MARKER_WINDOW}
            listed = self._request("GET", "/api/v2/activities", "list activities", params=params)
            for existing in listed.get("data") or []:
                if isinstance(existing, dict) and has_marker(existing.get("note"), marker):
                    return str(existing["id"])
        return self._save("activities", None, body, "activity")

    # -- check ------------------------------------------------------------------------------

    def check(self) -> list[str]:
        """Every configured pipeline, stage, field, option, label and activity type, verified
        against Pipedrive's metadata endpoints; bad credentials stop the check."""
        try:
            pipelines = {int(p["id"]): p for p in self._list("/api/v2/pipelines", "list pipelines")}
        except AuthDeliveryError as exc:
            return [f"Pipedrive refused the API token for {self.settings.base_url}: {exc}"]
        except DeliveryError as exc:
            return [f"cannot read pipelines from {self.settings.base_url}: {exc}"]
        problems: list[str] = []
        try:
            problems += self._check_pipelines(pipelines)
            fields = {scope: self._fields(scope) for scope in self._scopes_in_use()}
            problems += self._check_fields(fields)
            problems += self._check_activity_types()
        except DeliveryError as exc:
            problems.append(f"cannot read Pipedrive metadata: {exc}")
        return problems

    def _check_pipelines(self, pipelines: dict[int, Record]) -> list[str]:
        s = self.settings
        problems = []
        live = {i for i, p in pipelines.items() if not is_deleted(p)}
        wanted = {"pipeline_id": s.pipeline_id, **{f"pipelines.{k}": v for k, v in s.pipelines.items()}}
        for where, pipeline_id in wanted.items():
            if pipeline_id is not None and pipeline_id not in live:
                problems.append(f"{where}: pipeline {pipeline_id} does not exist in Pipedrive")
        stages = {int(x["id"]): x for x in self._list("/api/v2/stages", "list stages") if not is_deleted(x)}
        self._stage_pipelines = {i: int(x["pipeline_id"]) for i, x in stages.items()}
        for where, stage_id in {
            "stage_id": s.stage_id,
            **{f"stages.{k}": v for k, v in s.stages.items()},
        }.items():
            if stage_id is not None and stage_id not in stages:
                problems.append(f"{where}: stage {stage_id} does not exist in Pipedrive")
        if s.stage_id in stages and s.pipeline_id is not None:
            owner = stages[s.stage_id].get("pipeline_id")
            if owner != s.pipeline_id:
                problems.append(
                    f"stage_id: stage {s.stage_id} belongs to pipeline {owner}, not {s.pipeline_id}"
                )
        return problems

    def _scopes_in_use(self) -> set[str]:
        s = self.settings
        scopes = {property_scope(path) for path in s.properties}
        if s.lifecycle_field or s.person_external_id_field or s.tags_field or s.tag_labels:
            scopes.add("person")
        if s.deal_external_id_field:
            scopes.add("deal")
        return scopes

    def _fields(self, scope: str) -> dict[str, Record]:
        return {
            str(f["field_code"]): f
            for f in self._list(_FIELDS_PATH[scope], f"list {scope} fields")
            if "field_code" in f
        }

    def _check_fields(self, fields: dict[str, dict[str, Record]]) -> list[str]:
        s = self.settings
        problems = []

        def need(scope: str, code: str, where: str, types: frozenset[str] | None = None) -> Record | None:
            field = fields.get(scope, {}).get(code)
            if field is None:
                problems.append(f"{where}: no {scope} field {code!r} in Pipedrive")
            elif types and field.get("field_type") not in types:
                kinds = "/".join(sorted(types))
                problems.append(f"{where}: {scope} field {code!r} is {field.get('field_type')}, not {kinds}")
            return field

        for path, code in sorted(s.properties.items()):
            need(property_scope(path), code, f"properties.{path}")
        if s.deal_external_id_field:
            need("deal", s.deal_external_id_field, "deal_external_id_field", _TEXT_TYPES)
        if s.person_external_id_field:
            need("person", s.person_external_id_field, "person_external_id_field", _TEXT_TYPES)
        if s.tags_field:
            need("person", s.tags_field, "tags_field", _TEXT_TYPES)
        if s.lifecycle_field:
            field = need("person", s.lifecycle_field, "lifecycle_field", frozenset({"enum"}))
            options = {o.get("id") for o in (field or {}).get("options") or [] if isinstance(o, dict)}
            for stage, option in s.lifecycle_options.items():
                if field is not None and option not in options:
                    problems.append(
                        f"lifecycle_options.{stage.value}: option {option} is not in {s.lifecycle_field!r}"
                    )
        if s.tag_labels:
            person_fields = fields.get("person", {})
            labels = person_fields.get("label_ids") or person_fields.get("label")
            if labels is None:
                problems.append("tag_labels: Pipedrive lists no person label field (label_ids)")
            else:
                known = {o.get("id") for o in labels.get("options") or [] if isinstance(o, dict)}
                for tag, label in sorted(s.tag_labels.items()):
                    if label not in known:
                        problems.append(f"tag_labels.{tag}: person label {label} does not exist in Pipedrive")
        return problems

    def _check_activity_types(self) -> list[str]:
        if not self.settings.activity_types:
            return []
        payload = self._request("GET", "/api/v1/activityTypes", "list activity types")
        known = {
            t.get("key_string")
            for t in payload.get("data") or []
            if isinstance(t, dict) and t.get("active_flag", True)
        }
        return [
            f"activity_types.{kind}: no active activity type {key!r} in Pipedrive"
            for kind, key in sorted(self.settings.activity_types.items())
            if key not in known
        ]
