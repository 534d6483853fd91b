"""Canonical records -> Pipedrive v2 request bodies, and the merge rules for updates (no I/O).

Merge policy (shared/reference/crm-apis.md §6): a field is sent only when the canonical value
is non-empty and Pipedrive's is empty, or the field is listed in `overwrite`; `""`/`null` are
never sent. Emails and phones are unions (the stored primary stays primary); labels and the
tags field are unions; the lifecycle stage only moves forward; a won/lost deal is never
reopened; amount and currency travel together.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, Final

from hub.canonical import Activity, Company, Contact, Deal, DealStatus, LifecycleStage
from hub.destinations.pipedrive.settings import PipedriveSettings, property_scope

__all__ = [
    "Record",
    "activity_body",
    "activity_marker",
    "deal_changes",
    "deal_create_body",
    "display_name",
    "external_key",
    "has_marker",
    "is_deleted",
    "note_content",
    "org_changes",
    "org_create_body",
    "person_changes",
    "person_create_body",
    "same_email",
    "same_phone",
    "stored_value",
    "tag_changes",
]

#: A Pipedrive JSON object as sent or received.
Record = dict[str, Any]

_CUSTOM_KEY: Final = re.compile(r"^[0-9a-f]{40}$")
_STAGE_ORDER: Final = (
    LifecycleStage.subscriber,
    LifecycleStage.lead,
    LifecycleStage.mql,
    LifecycleStage.sql,
    LifecycleStage.opportunity,
    LifecycleStage.customer,
)
_CLOSED: Final = (DealStatus.won.value, DealStatus.lost.value)
_ADDRESS_ORDER: Final = ("line1", "line2", "postal_code", "city", "region", "country")


# -- values -------------------------------------------------------------------------------


def is_custom(code: str) -> bool:
    """Custom fields have 40-character hex keys and live under `custom_fields` in v2."""
    return bool(_CUSTOM_KEY.match(code))


def _blank(value: Any) -> bool:
    if isinstance(value, dict) and "value" in value:
        return _blank(value["value"])
    return value is None or value == "" or value == [] or value == {}


def _address_text(address: Mapping[str, Any]) -> str | None:
    text = ", ".join(str(address[k]) for k in _ADDRESS_ORDER if address.get(k))
    return text or None


def _jsonable(value: Any) -> Any:
    """A canonical value as v2 expects it: numbers as numbers, dates ISO, addresses {value}."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        text = _address_text(value)
        return {"value": text} if text else None
    return value


def _at(data: Mapping[str, Any], path: str) -> Any:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _comparable(value: Any) -> Any:
    if isinstance(value, dict) and "value" in value:
        return value["value"]
    if isinstance(value, dict) and "id" in value:  # enum read back with its label
        return value["id"]
    return value


def external_key(external_ids: Mapping[str, str]) -> str | None:
    """`<system>:<id>` of the first external id by system name (the hub's dedupe key)."""
    if not external_ids:
        return None
    system = sorted(external_ids)[0]
    return f"{system}:{external_ids[system]}"


def is_deleted(record: Record) -> bool:
    return bool(record.get("is_deleted"))


def stored_value(record: Record, code: str) -> Any:
    """A field of a v2 record: top-level, or under `custom_fields` for custom keys."""
    if is_custom(code):
        return (record.get("custom_fields") or {}).get(code)
    return record.get(code)


def _put(changes: Record, code: str, value: Any) -> None:
    if is_custom(code):
        changes.setdefault("custom_fields", {})[code] = value
    else:
        changes[code] = value


def _property_changes(
    record: Record, data: Mapping[str, Any], scope: str, settings: PipedriveSettings, changes: Record
) -> None:
    """Mapped fields of `scope`: set when Pipedrive's value is empty or the path may overwrite."""
    for path, code in settings.properties.items():
        if property_scope(path) != scope:
            continue
        local = path.split(".", 1)[1] if scope != "person" else path
        value = _jsonable(_at(data, local))
        if _blank(value):
            continue
        stored = stored_value(record, code)
        if _comparable(stored) == _comparable(value):
            continue
        if _blank(stored) or path in settings.overwrite:
            _put(changes, code, value)


# -- persons ------------------------------------------------------------------------------


def same_email(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


def _digits(phone: str) -> str:
    return re.sub(r"\D", "", phone)


def same_phone(a: str, b: str) -> bool:
    return bool(_digits(a)) and _digits(a) == _digits(b)


def _merged_entries(stored: Any, value: str | None, same: Callable[[str, str], bool]) -> list[Record] | None:
    """Stored emails/phones plus `value`, the primary marked; None when nothing changes."""
    entries: list[Record] = [
        {"value": e["value"], "primary": bool(e.get("primary")), "label": e.get("label") or "work"}
        for e in (stored or [])
        if isinstance(e, dict) and e.get("value")
    ]
    if value is None:
        return None
    has_primary = any(e["primary"] for e in entries)
    for entry in entries:
        if same(entry["value"], value):
            if has_primary:
                return None
            entry["primary"] = True
            return entries
    entries.append({"value": value, "primary": not has_primary, "label": "work"})
    return entries


def _real_name(contact: Contact) -> str | None:
    return " ".join(p for p in (contact.first_name, contact.last_name) if p) or None


def display_name(contact: Contact) -> str:
    """Pipedrive requires a name: the person's, else the email, phone or source id."""
    return (
        _real_name(contact)
        or contact.email
        or contact.phone
        or external_key(contact.external_ids)
        or "Unknown"
    )


def _placeholder_names(contact: Contact) -> set[str]:
    return {n for n in (contact.email, contact.phone, external_key(contact.external_ids), "Unknown") if n}


def _forward(old: LifecycleStage | None, new: LifecycleStage) -> LifecycleStage:
    if old is None or old == LifecycleStage.other:
        return new
    if new == LifecycleStage.other:
        return old
    return new if _STAGE_ORDER.index(new) > _STAGE_ORDER.index(old) else old


def _lifecycle_change(person: Record, contact: Contact, settings: PipedriveSettings, changes: Record) -> None:
    field, stage = settings.lifecycle_field, contact.lifecycle_stage
    if field is None or stage is None or stage not in settings.lifecycle_options:
        return
    current = _comparable(stored_value(person, field))
    by_option = {option: known for known, option in settings.lifecycle_options.items()}
    if not _blank(current) and current not in by_option:
        return  # a value someone set by hand that the hub does not know: leave it
    old = by_option.get(current)
    kept = _forward(old, stage)
    if kept != old:
        _put(changes, field, settings.lifecycle_options[kept])


def tag_changes(person: Record, tags: Iterable[str], settings: PipedriveSettings) -> Record:
    """Labels for mapped tags, the tags field for the rest: both unions."""
    changes: Record = {}
    tags = {t.strip() for t in tags if t and t.strip()}
    stored_labels = [i for i in (person.get("label_ids") or []) if isinstance(i, int)]
    labels = set(stored_labels) | {settings.tag_labels[t] for t in tags if t in settings.tag_labels}
    if labels != set(stored_labels):
        changes["label_ids"] = sorted(labels)
    rest = {t for t in tags if t not in settings.tag_labels}
    if settings.tags_field and rest:
        stored_text = stored_value(person, settings.tags_field)
        stored_tags = {t.strip() for t in str(stored_text or "").split(",") if t.strip()}
        if not rest <= stored_tags:
            _put(changes, settings.tags_field, ", ".join(sorted(stored_tags | rest)))
    return changes


def person_create_body(contact: Contact, settings: PipedriveSettings, org_id: int | None) -> Record:
    """POST /api/v2/persons: name is required; the email and phone are primary."""
    return {"name": display_name(contact), **person_changes({}, contact, settings, org_id)}


def person_changes(
    person: Record, contact: Contact, settings: PipedriveSettings, org_id: int | None
) -> Record:
    """PATCH /api/v2/persons/{id} body for `contact` over the stored `person` (may be empty)."""
    changes: Record = {}
    name = _real_name(contact)
    stored_name = person.get("name")
    if (
        person
        and name
        and name != stored_name
        and (
            _blank(stored_name) or stored_name in _placeholder_names(contact) or "name" in settings.overwrite
        )
    ):
        changes["name"] = name
    emails = _merged_entries(person.get("emails"), contact.email, same_email)
    if emails is not None:
        changes["emails"] = emails
    phones = _merged_entries(person.get("phones"), contact.phone, same_phone)
    if phones is not None:
        changes["phones"] = phones
    if org_id is not None and org_id != person.get("org_id"):
        if person.get("org_id") is None or "company" in settings.overwrite:
            changes["org_id"] = org_id
    key = external_key(contact.external_ids)
    if (
        settings.person_external_id_field
        and key
        and _blank(stored_value(person, settings.person_external_id_field))
    ):
        _put(changes, settings.person_external_id_field, key)
    _property_changes(person, contact.model_dump(), "person", settings, changes)
    _lifecycle_change(person, contact, settings, changes)
    for code, value in tag_changes(person, contact.tags, settings).items():
        if code == "custom_fields":
            changes.setdefault("custom_fields", {}).update(value)
        else:
            changes[code] = value
    return changes


# -- organizations ------------------------------------------------------------------------


def org_create_body(company: Company, settings: PipedriveSettings) -> Record:
    name = company.name or company.domain or external_key(company.external_ids) or "Unknown"
    return {"name": name, **org_changes({}, company, settings)}


def org_changes(org: Record, company: Company, settings: PipedriveSettings) -> Record:
    changes: Record = {}
    if org and company.name and company.name != org.get("name") and "company.name" in settings.overwrite:
        changes["name"] = company.name
    _property_changes(org, company.model_dump(), "organization", settings, changes)
    return changes


# -- deals --------------------------------------------------------------------------------


def deal_create_body(
    deal: Deal,
    settings: PipedriveSettings,
    *,
    person_id: int | None,
    org_id: int | None,
    pipeline_id: int | None,
    stage_id: int | None,
) -> Record:
    """POST /api/v2/deals: `title` is the only required field (crm-apis.md §3)."""
    key = external_key(deal.external_ids)
    body: Record = {"title": deal.title or (f"Deal {key}" if key else "Deal"), "status": deal.status.value}
    if deal.amount is not None:
        body["value"] = _jsonable(deal.amount)
        body["currency"] = deal.currency
    for code, value in (("person_id", person_id), ("org_id", org_id)):
        if value is not None:
            body[code] = value
    if pipeline_id is not None:
        body["pipeline_id"] = pipeline_id
    if stage_id is not None:
        body["stage_id"] = stage_id
    if deal.close_date is not None:
        body["expected_close_date"] = deal.close_date.isoformat()
    if settings.deal_external_id_field and key:
        _put(body, settings.deal_external_id_field, key)
    _property_changes({}, deal.model_dump(), "deal", settings, body)
    return body


def deal_changes(
    stored: Record,
    deal: Deal,
    settings: PipedriveSettings,
    *,
    person_id: int | None,
    org_id: int | None,
    pipeline_id: int | None,
    stage_id: int | None,
) -> Record:
    """PATCH /api/v2/deals/{id}; `stage_id` here is the canonical stage's mapping only."""
    ow = settings.overwrite
    changes: Record = {}
    if (
        deal.title
        and deal.title != stored.get("title")
        and (_blank(stored.get("title")) or "deal.title" in ow)
    ):
        changes["title"] = deal.title
    old_status, new_status = stored.get("status"), deal.status.value
    # A late `open` never reopens a won/lost deal (an out-of-order redelivery).
    if new_status != old_status and not (old_status in _CLOSED and new_status == DealStatus.open):
        if "deal.status" in ow:
            changes["status"] = new_status
    if deal.amount is not None:
        value = _jsonable(deal.amount)
        differs = value != stored.get("value") or deal.currency != stored.get("currency")
        if differs and (_blank(stored.get("value")) or stored.get("value") == 0 or "deal.amount" in ow):
            changes["value"], changes["currency"] = value, deal.currency
    if stage_id is not None and stage_id != stored.get("stage_id"):
        if _blank(stored.get("stage_id")) or "deal.stage" in ow:
            changes["stage_id"] = stage_id
            if pipeline_id is not None and pipeline_id != stored.get("pipeline_id"):
                changes["pipeline_id"] = pipeline_id
    for code, value, name in (("person_id", person_id, "deal.contact"), ("org_id", org_id, "deal.company")):
        if value is not None and value != stored.get(code) and (_blank(stored.get(code)) or name in ow):
            changes[code] = value
    if deal.close_date is not None:
        close = deal.close_date.isoformat()
        old_close = stored.get("expected_close_date")
        if close != old_close and (_blank(old_close) or "deal.close_date" in ow):
            changes["expected_close_date"] = close
    key = external_key(deal.external_ids)
    field = settings.deal_external_id_field
    if field and key and _blank(stored_value(stored, field)):
        _put(changes, field, key)
    _property_changes(stored, deal.model_dump(), "deal", settings, changes)
    return changes


# -- notes and activities -----------------------------------------------------------------


def activity_marker(activity: Activity, contact_id: str | None, deal_id: str | None) -> str:
    """A stable tag written into the note/activity text, found again on a retry."""
    key = external_key(activity.external_ids)
    if key:
        return f"[crmhub:{key}:{activity.kind}]"
    seed = f"{contact_id}|{deal_id}|{activity.kind}|{activity.occurred_at.isoformat()}|{activity.subject}"
    return f"[crmhub:h:{hashlib.sha256(seed.encode()).hexdigest()[:20]}]"


def has_marker(text: Any, marker: str) -> bool:
    """Whether stored HTML carries `marker` (raw or HTML-escaped: Pipedrive sanitizes notes)."""
    return isinstance(text, str) and (marker in text or html.escape(marker, quote=False) in text)


def _title(activity: Activity) -> str:
    return activity.subject or activity.kind.replace("_", " ").capitalize()


def _html_lines(activity: Activity, marker: str, *, with_title: bool) -> str:
    parts = []
    if with_title:
        parts.append(f"<p><b>{html.escape(_title(activity))}</b></p>")
    if activity.body:
        parts.append("<p>" + html.escape(activity.body).replace("\n", "<br>") + "</p>")
    when = activity.occurred_at.strftime("%Y-%m-%d %H:%M UTC")
    parts.append(f"<p>{html.escape(activity.kind)} · {when} {html.escape(marker, quote=False)}</p>")
    return "".join(parts)


def note_content(activity: Activity, marker: str) -> str:
    """POST /api/v1/notes `content` (HTML)."""
    return _html_lines(activity, marker, with_title=True)


def _metadata_time(activity: Activity, key: str) -> datetime | None:
    raw = activity.metadata.get(key)
    if not isinstance(raw, str):
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def activity_body(
    activity: Activity,
    activity_type: str,
    marker: str,
    *,
    person_id: int | None,
    deal_id: int | None,
    now: datetime,
) -> Record:
    """POST /api/v2/activities: the person is linked through `participants` (person_id is
    read-only in v2); due date/time in UTC; a booking uses its `start_time`/`end_time`."""
    start = _metadata_time(activity, "start_time") or activity.occurred_at
    end = _metadata_time(activity, "end_time")
    body: Record = {
        "subject": _title(activity),
        "type": activity_type,
        "due_date": start.date().isoformat(),
        "due_time": start.strftime("%H:%M"),
        "done": start <= now,
        "note": _html_lines(activity, marker, with_title=False),
    }
    if end is not None and end > start:
        minutes = int((end - start).total_seconds() // 60)
        body["duration"] = f"{minutes // 60:02d}:{minutes % 60:02d}"
    if deal_id is not None:
        body["deal_id"] = deal_id
    if person_id is not None:
        body["participants"] = [{"person_id": person_id, "primary": True}]
    return body
