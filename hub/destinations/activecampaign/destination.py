"""`ActiveCampaignDestination`: contacts, accounts, deals, notes and tags over API v3.

Endpoints and quirks: shared/reference/crm-apis.md §2; merge and dedupe rules: §6.

- Contacts: `POST /contact/sync` (the one natural upsert, keyed by email). No bulk: the bulk
  import is asynchronous (a batch id and a callback), so its per-contact outcome is unknown
  when the delivery layer needs it; every contact is its own request.
- Merge: a field is sent only when the hub has a value and ActiveCampaign's is empty, or the
  field is listed in `overwrite`; the lifecycle stage only moves forward; tags are added, never
  removed.
- Deals: no keyed upsert and no search by custom field (NV), so a retry finds its deal through
  `known_id`, else through the contact's deals (`GET /contacts/{id}/deals`) and the external id
  kept in a deal custom field (`GET /dealCustomFieldData?filters[dealId]=`).
- Notes: no natural key; a retry is recognised only through `known_id`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from datetime import date
from typing import Any, ClassVar

import httpx

from hub.canonical import Activity, Company, Contact, Deal, DealStatus
from hub.destination import Destination, DestinationSettings
from hub.destinations.activecampaign.errors import delivery_error, is_duplicate, transport_error
from hub.destinations.activecampaign.payloads import (
    DEAL_STATUS,
    contact_value,
    deal_value,
    digits,
    external_keys,
    is_blank,
    lifecycle_moves_forward,
    note_text,
    scalar_text,
)
from hub.destinations.activecampaign.settings import STANDARD_FIELDS, ActiveCampaignSettings
from hub.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError

__all__ = ["ActiveCampaignDestination"]

Json = dict[str, Any]
#: Page size for list endpoints (documented maximum, crm-apis.md §2 *Pagination*).
_PAGE = 100
_OPEN = DEAL_STATUS[DealStatus.open]


class ActiveCampaignDestination(Destination):
    """ActiveCampaign API v3. One instance per worker thread (the tag-id cache is not shared).

    Example::

        crm = ActiveCampaignDestination(
            ActiveCampaignSettings(api_token="...", base_url="https://acme.api-us1.com"),
            client=httpx.Client(base_url="https://acme.api-us1.com/api/3"),
        )
        contact_id = crm.upsert_contact(Contact(email="ada@example.com", tags={"vip"}))
    """

    name: ClassVar[str] = "activecampaign"
    settings_model: ClassVar[type[DestinationSettings]] = ActiveCampaignSettings
    # No bulk endpoint with synchronous per-item results (bulk_import is async): none listed.
    batch_limits: ClassVar[dict[str, int]] = {}
    #: 5 requests per second per account, every key shared (crm-apis.md §2 *Rate limit*).
    rate_limit: ClassVar[tuple[int, float] | None] = (5, 1.0)

    settings: ActiveCampaignSettings

    def __init__(
        self, settings: ActiveCampaignSettings, *, instance_id: str | None = None, client: Any = None
    ) -> None:
        super().__init__(settings, instance_id=instance_id, client=client)
        self._owns_client = False
        self._tag_ids: dict[str, str] = {}

    # --- what the delivery layer asks -------------------------------------------------

    def base_url(self) -> str:
        return self.settings.base_url

    def account_key(self) -> str:
        # The 5/s budget is per account (every key shares it): key on the account URL only.
        digest = hashlib.sha256(self.settings.base_url.encode()).hexdigest()[:16]
        return f"activecampaign:{digest}"

    def request_budget(self) -> tuple[int, float]:
        return (self.settings.requests_per_second, 1.0)

    def close(self) -> None:
        if self._owns_client and self.client is not None:
            self.client.close()
            self.client = None
            self._owns_client = False

    # --- HTTP -------------------------------------------------------------------------

    def _http(self) -> httpx.Client:
        if self.client is None:
            # Outside a worker (e.g. `crmhub check`): a plain client; workers inject a governed one.
            self.client = httpx.Client(base_url=self.base_url(), timeout=30.0)
            self._owns_client = True
        client: httpx.Client = self.client
        return client

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Json | None = None,
        missing_ok: bool = False,
        duplicate_ok: bool = False,
    ) -> Json | None:
        """One request: the parsed JSON body, or None for a 404 (`missing_ok`) or a 422 `duplicate`
        (`duplicate_ok`); any other failure raises the classified delivery error."""
        what = f"{method} {path}"
        headers = {"Api-Token": self.settings.api_token.get_secret_value(), "Accept": "application/json"}
        try:
            response = self._http().request(method, path, params=params, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise transport_error(exc, what) from None
        if (missing_ok and response.status_code == 404) or (duplicate_ok and is_duplicate(response)):
            return None
        if not response.is_success:
            raise delivery_error(response, what)
        if not response.content.strip():
            return {}
        try:
            data = response.json()
        except ValueError:
            raise TransientDeliveryError(f"ActiveCampaign {what}: the answer is not JSON") from None
        return data if isinstance(data, dict) else {"data": data}

    def _get(
        self, path: str, params: dict[str, Any] | None = None, *, missing_ok: bool = False
    ) -> Json | None:
        return self._call("GET", path, params=params, missing_ok=missing_ok)

    def _send(self, method: str, path: str, body: Json) -> Json:
        return self._call(method, path, body=body) or {}

    def _pages(
        self, path: str, key: str, params: dict[str, Any] | None = None, *, missing_ok: bool = False
    ) -> Iterator[Json]:
        """Every item of a `limit`/`offset` list (`meta.total` when given, else a short page ends it);
        nothing when the parent is gone and `missing_ok`."""
        offset = 0
        while True:
            page = self._get(
                path, {**(params or {}), "limit": _PAGE, "offset": offset}, missing_ok=missing_ok
            )
            if page is None:
                return
            items = [item for item in page.get(key) or [] if isinstance(item, dict)]
            yield from items
            offset += len(items)
            total = (page.get("meta") or {}).get("total")
            try:
                done = offset >= int(total) if total is not None else len(items) < _PAGE
            except (TypeError, ValueError):
                done = len(items) < _PAGE
            if done or not items:
                return

    # --- contacts ---------------------------------------------------------------------

    def upsert_contact(self, contact: Contact, *, known_id: str | None = None) -> str:
        record_id: str | None = None
        if known_id and known_id.isdecimal():
            record_id = self._update_known_contact(known_id, contact)
        if record_id is None:
            if contact.email:
                record_id = self._sync_contact(contact)
            elif contact.phone:
                record_id = self._upsert_phone_only(contact)
            else:
                raise PermanentDeliveryError(
                    "ActiveCampaign identifies contacts by email (or phone on accounts that allow phone-only "
                    "contacts); this contact has neither and no known ActiveCampaign id"
                )
        self.add_tags(record_id, contact.tags)
        return record_id

    def _wanted(self, contact: Contact) -> list[tuple[str, str, str]]:
        """(canonical, ActiveCampaign field, value) for every mapped, non-empty field but email."""
        stages = self.settings.lifecycle_stages
        wanted = []
        for canonical, target in self.settings.properties.items():
            if canonical == "email":
                continue
            value = contact_value(contact, canonical, stages)
            if value is not None:
                wanted.append((canonical, target, value))
        return wanted

    def _changes(self, contact: Contact, stored: Json, values: dict[str, str]) -> tuple[Json, list[Json]]:
        """(attributes, fieldValues) to send over what ActiveCampaign holds (`stored`, `values`)."""
        attributes: Json = {}
        field_values: list[Json] = []
        for canonical, target, value in self._wanted(contact):
            is_standard = target in STANDARD_FIELDS.values()
            old = stored.get(target) if is_standard else values.get(target)
            if canonical == "lifecycle_stage":
                send = lifecycle_moves_forward(old, value, self.settings.lifecycle_stages)
            elif canonical == "phone" and digits(old) == digits(value):
                send = False
            else:
                send = is_blank(old) or (canonical in self.settings.overwrite and old != value)
            if send:
                if is_standard:
                    attributes[target] = value
                else:
                    field_values.append({"field": target, "value": value})
        return attributes, field_values

    def _needs_state(self, contact: Contact) -> bool:
        return any(
            canonical not in self.settings.overwrite or canonical == "lifecycle_stage"
            for canonical, _, _ in self._wanted(contact)
        )

    def _needs_field_values(self, contact: Contact) -> bool:
        return any(target not in STANDARD_FIELDS.values() for _, target, _ in self._wanted(contact))

    def _field_values(self, contact_id: str) -> dict[str, str]:
        return {
            str(item.get("field")): str(item.get("value") or "")
            for item in self._pages(f"/contacts/{contact_id}/fieldValues", "fieldValues")
        }

    def _find_by_email(self, email: str) -> Json | None:
        page = self._get("/contacts", {"email": email}) or {}
        for item in page.get("contacts") or []:
            if isinstance(item, dict) and str(item.get("email", "")).lower() == email:
                return item
        return None

    def _sync_contact(self, contact: Contact) -> str:
        """`POST /contact/sync` with only the fields the merge rules allow."""
        assert contact.email is not None
        stored: Json = {}
        values: dict[str, str] = {}
        found: Json | None = None
        if self._needs_state(contact):
            found = self._find_by_email(contact.email)
            if found is not None:
                stored = found
                if self._needs_field_values(contact):
                    values = self._field_values(str(found["id"]))
        attributes, field_values = self._changes(contact, stored, values)
        if found is not None and not attributes and not field_values:
            return str(found["id"])
        payload: Json = {"email": contact.email, **attributes}
        if field_values:
            payload["fieldValues"] = field_values
        answer = self._send("POST", "/contact/sync", {"contact": payload})
        return _id_of(answer, "contact", "POST /contact/sync")

    def _update_known_contact(self, contact_id: str, contact: Contact) -> str | None:
        """Update the record the hub already knows (`GET /contacts/{id}` then PUT); None if gone."""
        record = self._get(f"/contacts/{contact_id}", missing_ok=True)
        if record is None or not isinstance(record.get("contact"), dict):
            return None
        values = {
            str(v.get("field")): str(v.get("value") or "")
            for v in record.get("fieldValues") or []
            if isinstance(v, dict)
        }
        self._put_contact(contact_id, contact, record["contact"], values)
        return contact_id

    def _put_contact(self, contact_id: str, contact: Contact, stored: Json, values: dict[str, str]) -> None:
        attributes, field_values = self._changes(contact, stored, values)
        if (
            contact.email
            and (is_blank(stored.get("email")) or "email" in self.settings.overwrite)
            and str(stored.get("email", "")).lower() != contact.email
        ):
            attributes["email"] = contact.email
        if not attributes and not field_values:
            return
        payload: Json = {**attributes, **({"fieldValues": field_values} if field_values else {})}
        self._send("PUT", f"/contacts/{contact_id}", {"contact": payload})

    def _upsert_phone_only(self, contact: Contact) -> str:
        """No email: reuse a phone-only record with the same number and no conflicting name, else create.

        Phone is a candidate key only (crm-apis.md §6): a record that has an email, or another
        person's name, is never merged into.
        """
        assert contact.phone is not None
        page = self._get("/contacts", {"phone": contact.phone}) or {}
        for item in sorted(
            (c for c in page.get("contacts") or [] if isinstance(c, dict)),
            key=lambda c: int(str(c.get("id", "0")) or 0),
        ):
            same_number = digits(str(item.get("phone", ""))) == digits(contact.phone)
            conflict = any(
                ours and not is_blank(item.get(key)) and str(item.get(key)).casefold() != ours.casefold()
                for ours, key in ((contact.first_name, "firstName"), (contact.last_name, "lastName"))
            )
            if same_number and is_blank(item.get("email")) and not conflict:
                contact_id = str(item["id"])
                values = self._field_values(contact_id) if self._needs_field_values(contact) else {}
                self._put_contact(contact_id, contact, item, values)
                return contact_id
        attributes, field_values = self._changes(contact, {}, {})
        payload: Json = {**attributes, "phone": contact.phone, "allowNullEmail": True}
        if field_values:
            payload["fieldValues"] = field_values
        answer = self._send("POST", "/contacts", {"contact": payload})
        return _id_of(answer, "contact", "POST /contacts")

    # --- tags -------------------------------------------------------------------------

    def add_tags(self, contact_id: str, tags: Iterable[str]) -> None:
        """Apply each tag (found by exact name or created); re-applying one is a no-op in ActiveCampaign."""
        names = sorted({t.strip() for t in tags if t and t.strip()})
        if not names:
            return
        contact_id = _path_id(contact_id, "contact")
        for name in names:
            cached = name.casefold() in self._tag_ids
            try:
                self._apply_tag(contact_id, self._tag_id(name))
            except PermanentDeliveryError:
                if not cached:
                    raise
                # The cached id may be of a tag deleted since: look the name up once more.
                del self._tag_ids[name.casefold()]
                self._apply_tag(contact_id, self._tag_id(name))

    def _apply_tag(self, contact_id: str, tag_id: str) -> None:
        # Re-applying a tag answers 200 with the existing link [3P, crm-apis.md §2 *Tags* says NV];
        # a 422 `duplicate` would mean the same, so both count as applied.
        link = {"contactTag": {"contact": contact_id, "tag": tag_id}}
        self._call("POST", "/contactTags", body=link, duplicate_ok=True)

    def _tag_id(self, name: str) -> str:
        key = name.casefold()
        if key not in self._tag_ids:
            found = self._find_tag(name)
            if found is None:
                answer = self._call(
                    "POST",
                    "/tags",
                    body={"tag": {"tag": name, "tagType": "contact", "description": ""}},
                    duplicate_ok=True,
                )
                found = _id_of(answer, "tag", "POST /tags") if answer is not None else self._find_tag(name)
            if found is None:
                raise TransientDeliveryError(f"ActiveCampaign: tag {name!r} exists but is not listed yet")
            self._tag_ids[key] = found
        return self._tag_ids[key]

    def _find_tag(self, name: str) -> str | None:
        page = self._get("/tags", {"filters[search][eq]": name, "limit": _PAGE}) or {}
        for item in page.get("tags") or []:
            if (
                isinstance(item, dict)
                and str(item.get("tag", "")).casefold() == name.casefold()
                and item.get("tagType", "contact") == "contact"
            ):
                return str(item["id"])
        return None

    # --- accounts (companies) ---------------------------------------------------------

    def upsert_company(self, company: Company, *, known_id: str | None = None) -> str:
        """An ActiveCampaign account, identified by its name (ActiveCampaign keeps names unique)."""
        url = f"https://{company.domain}" if company.domain else None
        if known_id and known_id.isdecimal():
            found = self._get(f"/accounts/{known_id}", missing_ok=True)
            if found is not None and isinstance(found.get("account"), dict):
                self._fill_account(known_id, found["account"], url)
                return known_id
        if not company.name:
            raise PermanentDeliveryError("ActiveCampaign accounts need a name; this company has none")
        existing = self._find_account(company.name)
        if existing is None:
            body: Json = {"account": {"name": company.name, **({"accountUrl": url} if url else {})}}
            # ActiveCampaign keeps account names unique: a 422 `duplicate` is a concurrent create.
            answer = self._call("POST", "/accounts", body=body, duplicate_ok=True)
            if answer is not None:
                return _id_of(answer, "account", "POST /accounts")
            existing = self._find_account(company.name)
            if existing is None:
                raise TransientDeliveryError(
                    f"ActiveCampaign reports account {company.name!r} exists but does not list it yet"
                )
        self._fill_account(str(existing["id"]), existing, url)
        return str(existing["id"])

    def _find_account(self, name: str) -> Json | None:
        matches = [
            item
            for item in self._pages("/accounts", "accounts", {"search": name})
            if str(item.get("name", "")).casefold() == name.casefold()
        ]
        return min(matches, key=lambda a: int(str(a.get("id", "0")))) if matches else None

    def _fill_account(self, account_id: str, stored: Json, url: str | None) -> None:
        if url and is_blank(stored.get("accountUrl")):
            self._send("PUT", f"/accounts/{account_id}", {"account": {"accountUrl": url}})

    def link_contact_company(self, contact_id: str, company_id: str) -> None:
        """`POST /accountContacts`; a refusal is fine when the contact is already in that account."""
        contact_id = _path_id(contact_id, "contact")
        try:
            self._send(
                "POST", "/accountContacts", {"accountContact": {"contact": contact_id, "account": company_id}}
            )
        except PermanentDeliveryError as refused:
            try:
                linked = list(self._pages(f"/contacts/{contact_id}/accountContacts", "accountContacts"))
            except DeliveryError:
                raise refused from None
            if not any(str(item.get("account")) == company_id for item in linked):
                raise

    # --- deals ------------------------------------------------------------------------

    def upsert_deal(
        self, deal: Deal, *, contact_id: str | None, company_id: str | None, known_id: str | None = None
    ) -> str:
        if not contact_id and not company_id:
            raise PermanentDeliveryError(
                "ActiveCampaign deals need a contact or an account; this deal has neither"
            )
        money = deal_value(deal)
        group, stage = self._pipeline_and_stage(deal)
        keys = external_keys(deal)
        found: tuple[Json, dict[str, str]] | None = None
        if known_id and known_id.isdecimal():
            record = self._get(f"/deals/{known_id}", missing_ok=True)
            if record is not None and isinstance(record.get("deal"), dict):
                found = (record["deal"], self._deal_field_data(known_id))
        if found is None and contact_id:
            found = self._find_deal(contact_id, deal, keys)
        if found is None:
            body = self._new_deal(deal, contact_id, company_id, money, group, stage, keys)
            return _id_of(self._send("POST", "/deals", {"deal": body}), "deal", "POST /deals")
        stored, values = found
        deal_id = str(stored["id"])
        changes = self._deal_changes(deal, stored, values, contact_id, company_id, money, group, stage, keys)
        if changes:
            self._send("PUT", f"/deals/{deal_id}", {"deal": changes})
        return deal_id

    def _pipeline_and_stage(self, deal: Deal) -> tuple[str | None, str | None]:
        s = self.settings
        group = s.deal_pipelines.get(deal.pipeline or "", s.deal_pipeline)
        stage = s.deal_stages.get(deal.stage or "", s.deal_stage)
        if deal.pipeline and deal.pipeline not in s.deal_pipelines and s.deal_pipeline is None:
            raise PermanentDeliveryError(
                f"ActiveCampaign: deal pipeline {deal.pipeline!r} is not in deal_pipelines and no "
                "deal_pipeline default is set"
            )
        if deal.stage and s.deal_stages and deal.stage not in s.deal_stages and s.deal_stage is None:
            raise PermanentDeliveryError(
                f"ActiveCampaign: deal stage {deal.stage!r} is not in deal_stages and no deal_stage "
                "default is set"
            )
        if group is None and stage is None:
            raise PermanentDeliveryError(
                "ActiveCampaign deals need a pipeline or a stage: set deal_pipeline (or deal_pipelines / "
                "deal_stages) in the destination settings"
            )
        return group, stage

    def _deal_field_data(self, deal_id: str) -> dict[str, str]:
        if not (self.settings.deal_external_id_field or self.settings.deal_fields):
            return {}
        data = self._pages("/dealCustomFieldData", "dealCustomFieldData", {"filters[dealId]": deal_id})
        return {str(item.get("customFieldId")): str(item.get("fieldValue") or "") for item in data}

    def _find_deal(self, contact_id: str, deal: Deal, keys: list[str]) -> tuple[Json, dict[str, str]] | None:
        """The contact's deal carrying one of `keys` in the external id field (else: same title)."""
        # An unknown contact has no deals; the create will then say what is wrong.
        path = f"/contacts/{_path_id(contact_id, 'contact')}/deals"
        candidates = list(self._pages(path, "deals", missing_ok=True))
        candidates.sort(key=lambda d: -int(str(d.get("id", "0")) or 0))
        field = self.settings.deal_external_id_field
        if field and keys:
            for candidate in candidates:
                values = self._deal_field_data(str(candidate["id"]))
                if values.get(field) in keys:
                    return candidate, values
            return None
        # No external id to go by: the same title on the same contact is the same deal.
        for candidate in candidates:
            if deal.title and candidate.get("title") == deal.title:
                return candidate, self._deal_field_data(str(candidate["id"]))
        return None

    def _deal_fields(self, deal: Deal, keys: list[str]) -> list[tuple[str, str, str]]:
        """(overwrite name, deal custom field id, value) for the external id and mapped deal fields."""
        fields: list[tuple[str, str, str]] = []
        if self.settings.deal_external_id_field and keys:
            fields.append(("deal.external_id", self.settings.deal_external_id_field, keys[0]))
        for canonical, field_id in self.settings.deal_fields.items():
            head, _, tail = canonical.partition(".")
            raw: object = (
                deal.custom_fields.get(tail) if head == "custom_fields" else getattr(deal, canonical, None)
            )
            value = scalar_text(raw.isoformat() if isinstance(raw, date) else raw)
            if value is not None:
                fields.append((f"deal.{canonical}", field_id, value))
        return fields

    def _new_deal(
        self,
        deal: Deal,
        contact_id: str | None,
        company_id: str | None,
        money: tuple[int, str] | None,
        group: str | None,
        stage: str | None,
        keys: list[str],
    ) -> Json:
        body: Json = {
            "title": deal.title or (keys[0] if keys else "Deal"),
            "value": money[0] if money else 0,
            "status": DEAL_STATUS[deal.status],
        }
        if money:
            body["currency"] = money[1]
        for key, value in (
            ("contact", contact_id),
            ("account", company_id),
            ("group", group),
            ("stage", stage),
            ("owner", self.settings.deal_owner),
        ):
            if value:
                body[key] = value
        fields = [
            {"customFieldId": int(field_id), "fieldValue": value}
            for _, field_id, value in self._deal_fields(deal, keys)
        ]
        if fields:
            body["fields"] = fields
        return body

    def _deal_changes(
        self,
        deal: Deal,
        stored: Json,
        values: dict[str, str],
        contact_id: str | None,
        company_id: str | None,
        money: tuple[int, str] | None,
        group: str | None,
        stage: str | None,
        keys: list[str],
    ) -> Json:
        """What to PUT on an existing deal, by the merge rules (crm-apis.md §6)."""
        overwrite = self.settings.overwrite
        changes: Json = {}
        if (
            deal.title
            and stored.get("title") != deal.title
            and (is_blank(stored.get("title")) or "deal.title" in overwrite)
        ):
            changes["title"] = deal.title
        if money is not None:
            stored_value = str(stored.get("value") or "0")
            stored_money = (stored_value, str(stored.get("currency") or "").lower())
            fill = stored_value == "0" or "deal.amount" in overwrite
            if fill and stored_money != (str(money[0]), money[1]):
                changes["value"], changes["currency"] = money
        status, stored_status = DEAL_STATUS[deal.status], int(str(stored.get("status") or _OPEN))
        # A late `open` never reopens a won or lost deal.
        if status != stored_status and status != _OPEN and "deal.status" in overwrite:
            changes["status"] = status
        if "deal.stage" in overwrite:
            if stage and str(stored.get("stage")) != stage:
                changes["stage"] = stage
            if group and str(stored.get("group")) != group:
                changes["group"] = group
        if contact_id and is_blank(stored.get("contact")):
            changes["contact"] = contact_id
        if company_id and is_blank(stored.get("account")) and is_blank(stored.get("organization")):
            changes["account"] = company_id
        fields = [
            {"customFieldId": int(field_id), "fieldValue": value}
            for name, field_id, value in self._deal_fields(deal, keys)
            if values.get(field_id) != value and (is_blank(values.get(field_id)) or name in overwrite)
        ]
        if fields:
            changes["fields"] = fields
        return changes

    # --- notes ------------------------------------------------------------------------

    def add_activity(
        self, activity: Activity, *, contact_id: str | None, deal_id: str | None, known_id: str | None = None
    ) -> str:
        """A note on the contact (or deal). Notes have no key: only `known_id` recognises a retry."""
        if known_id and known_id.isdecimal() and self._get(f"/notes/{known_id}", missing_ok=True) is not None:
            return known_id
        text = note_text(activity)
        on_deal = deal_id is not None and (contact_id is None or self.settings.notes_on == "deal")
        if on_deal:
            answer = self._send("POST", f"/deals/{_path_id(deal_id, 'deal')}/notes", {"note": {"note": text}})
            return _id_of(answer, "note", "POST /deals/{id}/notes")
        if contact_id is None:
            raise PermanentDeliveryError(
                "ActiveCampaign notes belong to a contact or a deal; this activity has neither"
            )
        relid = int(_path_id(contact_id, "contact"))
        note = {"note": text, "relid": relid, "reltype": "Subscriber"}
        answer = self._send("POST", "/notes", {"note": note})
        return _id_of(answer, "note", "POST /notes")

    # --- check ------------------------------------------------------------------------

    def check(self) -> list[str]:
        """Credentials, then every mapped contact field, pipeline, stage and deal field, by id."""
        try:
            self._get("/users/me")
        except DeliveryError as exc:
            return [f"ActiveCampaign at {self.base_url()}: cannot use the API token: {exc}"]
        problems: list[str] = []
        try:
            problems += self._check_contact_fields()
            problems += self._check_pipelines()
            problems += self._check_deal_fields()
            owner = self.settings.deal_owner
            if owner and self._get(f"/users/{owner}", missing_ok=True) is None:
                problems.append(f"deal_owner: ActiveCampaign has no user with id {owner}")
        except DeliveryError as exc:
            problems.append(f"ActiveCampaign at {self.base_url()}: cannot read metadata: {exc}")
        return problems

    def _check_contact_fields(self) -> list[str]:
        wanted = self.settings.custom_field_ids()
        if not wanted:
            return []
        fields = {str(f.get("id")): f for f in self._pages("/fields", "fields")}
        known = _listing(fields, "title")
        return [
            f"properties.{canonical}: ActiveCampaign has no contact custom field with id {field_id} "
            f"(GET /fields lists: {known})"
            for canonical, field_id in wanted.items()
            if field_id not in fields
        ]

    def _check_pipelines(self) -> list[str]:
        s = self.settings
        pipeline_ids = {name: gid for name, gid in s.deal_pipelines.items()}
        if s.deal_pipeline:
            pipeline_ids["(deal_pipeline)"] = s.deal_pipeline
        stage_ids = {name: sid for name, sid in s.deal_stages.items()}
        if s.deal_stage:
            stage_ids["(deal_stage)"] = s.deal_stage
        if not pipeline_ids and not stage_ids:
            return []
        groups = {str(g.get("id")): g for g in self._pages("/dealGroups", "dealGroups")}
        stages = {str(st.get("id")): st for st in self._pages("/dealStages", "dealStages")}
        problems = [
            f"deal pipeline {name}: ActiveCampaign has no pipeline with id {gid} "
            f"(GET /dealGroups lists: {_listing(groups, 'title')})"
            for name, gid in pipeline_ids.items()
            if gid not in groups
        ]
        configured = set(pipeline_ids.values())
        for name, sid in stage_ids.items():
            found = stages.get(sid)
            if found is None:
                problems.append(f"deal stage {name}: ActiveCampaign has no stage with id {sid}")
            elif configured and str(found.get("group")) not in configured:
                problems.append(
                    f"deal stage {name}: stage {sid} {found.get('title')!r} belongs to pipeline "
                    f"{found.get('group')}, which is not a configured pipeline"
                )
        return problems

    def _check_deal_fields(self) -> list[str]:
        s = self.settings
        wanted = dict(s.deal_fields)
        if s.deal_external_id_field:
            wanted["(deal_external_id_field)"] = s.deal_external_id_field
        if not wanted:
            return []
        meta = {str(m.get("id")): m for m in self._pages("/dealCustomFieldMeta", "dealCustomFieldMeta")}
        return [
            f"deal field {name}: ActiveCampaign has no deal custom field with id {fid} "
            f"(GET /dealCustomFieldMeta lists: {_listing(meta, 'fieldLabel')})"
            for name, fid in wanted.items()
            if fid not in meta
        ]


def _id_of(answer: Json, key: str, what: str) -> str:
    record = answer.get(key)
    if not isinstance(record, dict) or record.get("id") in (None, ""):
        raise TransientDeliveryError(f"ActiveCampaign {what}: the answer has no {key} id")
    return str(record["id"])


def _path_id(value: str | None, what: str) -> str:
    """An id that goes into a URL path: ActiveCampaign ids are numbers."""
    if not value or not value.isdecimal():
        raise PermanentDeliveryError(f"ActiveCampaign {what} id {value!r} is not a number")
    return value


def _listing(items: dict[str, Json], label: str) -> str:
    return ", ".join(f"{item_id} {item.get(label)!r}" for item_id, item in sorted(items.items())) or "none"
