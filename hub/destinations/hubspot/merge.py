"""Canonical objects -> HubSpot property values, and what to send given what HubSpot holds.

Pure functions, no I/O. The rules (crm-apis.md §6 "Merge semantics"):

- only non-empty canonical values are ever sent (HubSpot clears a property on `""`);
- a property HubSpot already holds is kept unless its canonical field is in `overwrite`;
- tags are a union (multi-checkbox values are `;`-separated);
- `lifecyclestage` only moves forward; `other` never replaces a known stage.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final

from pydantic import BaseModel

from hub.canonical import Company, Contact, Deal, LifecycleStage, MarketingConsent

__all__ = [
    "TAG_SEPARATOR",
    "changes",
    "clean_tag",
    "company_fields",
    "contact_fields",
    "deal_fields",
    "forward_stage",
    "hubspot_date",
    "merged_tags",
    "text",
    "to_properties",
]

TAG_SEPARATOR: Final = ";"
_STAGE_ORDER: Final = (
    LifecycleStage.subscriber,
    LifecycleStage.lead,
    LifecycleStage.mql,
    LifecycleStage.sql,
    LifecycleStage.opportunity,
    LifecycleStage.customer,
)


def hubspot_date(value: date) -> str:
    """A date as HubSpot datetime text: midnight UTC (`2026-12-01T00:00:00Z`)."""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return f"{value.isoformat()}T00:00:00Z"


def text(value: Any) -> str | None:
    """HubSpot property text for a canonical value; None for empty values."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, date):
        return hubspot_date(value)
    result = str(value).strip()
    return result or None


def _nested(prefix: str, model: BaseModel | None) -> dict[str, str]:
    if model is None:
        return {}
    out: dict[str, str] = {}
    for name, value in model.model_dump().items():
        rendered = text(value)
        if rendered is not None:
            out[f"{prefix}.{name}"] = rendered
    return out


def _custom(custom_fields: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in custom_fields.items():
        rendered = text(value)
        if rendered is not None:
            out[f"custom_fields.{key}"] = rendered
    return out


def _plain(model: BaseModel, names: Iterable[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in names:
        rendered = text(getattr(model, name))
        if rendered is not None:
            out[name] = rendered
    return out


def contact_fields(contact: Contact) -> dict[str, str]:
    """Canonical field key (`first_name`, `address.city`, `custom_fields.plan`) -> text.
    Tags and lifecycle stage are not here: they have their own rules."""
    fields = _plain(contact, ("email", "phone", "first_name", "last_name", "company", "job_title"))
    fields.update(_nested("address", contact.address))
    fields.update(_nested("lead_source", contact.lead_source))
    if contact.marketing_consent is not MarketingConsent.unknown:  # `unknown` never replaces a choice
        fields["marketing_consent"] = contact.marketing_consent.value
    fields.update(_custom(contact.custom_fields))
    return fields


def company_fields(company: Company) -> dict[str, str]:
    fields = _plain(company, ("name", "domain", "phone"))
    fields.update(_nested("address", company.address))
    fields.update(_custom(company.custom_fields))
    return fields


def deal_fields(deal: Deal) -> dict[str, str]:
    """Deal fields other than stage, pipeline and status (see the destination's stage rule)."""
    fields = _plain(deal, ("title", "amount", "currency", "close_date"))
    fields.update(_custom(deal.custom_fields))
    return fields


def to_properties(
    fields: Mapping[str, str], mapping: Mapping[str, str], overwrite: Iterable[str], *, prefix: str = ""
) -> tuple[dict[str, str], frozenset[str]]:
    """(HubSpot property -> value, the properties the hub may overwrite). Unmapped fields
    are dropped; `prefix` is how `overwrite` names this object's fields (`deal.`); `*` in
    `overwrite` owns every field."""
    allowed = set(overwrite)
    every = "*" in allowed
    desired: dict[str, str] = {}
    owned: set[str] = set()
    for key, value in fields.items():
        prop = mapping.get(key)
        if not prop:
            continue
        desired[prop] = value
        if every or f"{prefix}{key}" in allowed:
            owned.add(prop)
    return desired, frozenset(owned)


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def changes(
    current: Mapping[str, Any] | None, desired: Mapping[str, str], overwritable: Iterable[str]
) -> dict[str, str]:
    """The properties to send: all of `desired` for a new record (`current` None); for an
    existing one, those HubSpot lacks, plus owned ones whose value differs."""
    if current is None:
        return dict(desired)
    owned = set(overwritable)
    out: dict[str, str] = {}
    for prop, value in desired.items():
        held = current.get(prop)
        if _blank(held) or (prop in owned and str(held) != value):
            out[prop] = value
    return out


def forward_stage(current: str | None, new: LifecycleStage | None, stages: Mapping[str, str]) -> str | None:
    """The `lifecyclestage` value to send, or None to leave HubSpot's as it is.

    HubSpot values outside the mapped canonical order (`evangelist`, custom stages) are
    treated as further along: never moved back."""
    if new is None or new.value not in stages:
        return None
    target = stages[new.value]
    if _blank(current):
        return target
    if current == target:
        return None
    other = stages.get(LifecycleStage.other.value)
    if new is LifecycleStage.other:
        return None
    if current == other:
        return target
    order = [stages[s.value] for s in _STAGE_ORDER if s.value in stages]
    if current not in order or target not in order:
        return None
    return target if order.index(target) > order.index(current) else None


def clean_tag(tag: str) -> str:
    """A tag as a multi-checkbox option value: no `;` (the separator), single spaces."""
    return " ".join(tag.replace(TAG_SEPARATOR, " ").split())


def merged_tags(current: str | None, new: Iterable[str]) -> str | None:
    """The tags value to send (the sorted union), or None when HubSpot already has them all."""
    held = {t.strip() for t in (current or "").split(TAG_SEPARATOR) if t.strip()}
    union = held | {clean_tag(t) for t in new if clean_tag(t)}
    if union == held:
        return None
    return TAG_SEPARATOR.join(sorted(union))
