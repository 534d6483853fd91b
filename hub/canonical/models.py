"""The canonical contact / company / deal / activity model every payload is mapped into.

Models are frozen and reject unknown fields. Values are normalised on construction
(emails trimmed and lowercased, phones E.164, countries ISO 3166-1 alpha-2, currencies
ISO 4217, datetimes UTC), so anything past the mapping layer is clean by construction.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    model_validator,
)

from hub.canonical import normalise

__all__ = [
    "Activity",
    "Address",
    "Bundle",
    "Company",
    "Contact",
    "Deal",
    "DealStatus",
    "LeadSource",
    "LifecycleStage",
    "LineItem",
    "MarketingConsent",
    "Scalar",
]

Scalar = str | int | float | bool | Decimal | None

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def _strip_or_none(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def _check_phone(value: str) -> str:
    if not _E164.match(value):
        return normalise.normalise_phone(value)
    return value


def _check_domain(value: str) -> str:
    domain = value.strip().lower()
    for prefix in ("https://", "http://"):
        domain = domain.removeprefix(prefix)
    domain = domain.split("/", 1)[0].removeprefix("www.")
    if not _DOMAIN.match(domain):
        raise ValueError(f"not a domain name: {value!r}")
    return domain


def _utc_iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


Text = Annotated[str | None, BeforeValidator(_strip_or_none)]
Email = Annotated[
    str | None,
    BeforeValidator(_strip_or_none),
    AfterValidator(lambda v: None if v is None else normalise.normalise_email(v)),
]
Phone = Annotated[
    str | None,
    BeforeValidator(_strip_or_none),
    AfterValidator(lambda v: None if v is None else _check_phone(v)),
]
Country = Annotated[
    str | None,
    BeforeValidator(_strip_or_none),
    AfterValidator(lambda v: None if v is None else normalise.normalise_country(v)),
]
Currency = Annotated[
    str | None,
    BeforeValidator(_strip_or_none),
    AfterValidator(lambda v: None if v is None else normalise.normalise_currency(v)),
]
Domain = Annotated[
    str | None,
    BeforeValidator(_strip_or_none),
    AfterValidator(lambda v: None if v is None else _check_domain(v)),
]
UtcDatetime = Annotated[
    datetime, AfterValidator(normalise.to_utc), PlainSerializer(_utc_iso, when_used="json")
]
Amount = Annotated[Decimal, BeforeValidator(normalise.to_decimal)]
Tags = Annotated[
    frozenset[str],
    BeforeValidator(lambda v: [v] if isinstance(v, str) else v),
    AfterValidator(lambda v: frozenset(t.strip() for t in v if t and t.strip())),
    PlainSerializer(lambda v: sorted(v), when_used="json"),
]


def _finite_values(values: dict[str, Any]) -> dict[str, Any]:
    for key, value in values.items():
        if isinstance(value, float | Decimal) and not isinstance(value, bool) and not math.isfinite(value):
            raise ValueError(f"custom field {key!r} is not a finite number")
    return values


CustomFields = Annotated[dict[str, Scalar], AfterValidator(_finite_values)]
ExternalIds = Annotated[
    dict[str, str], BeforeValidator(lambda v: {k: str(x) for k, x in v.items() if x is not None})
]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    def to_json_dict(self) -> dict[str, Any]:
        """The JSON form: Decimals as strings, datetimes with `Z`, empty fields omitted."""
        data: dict[str, Any] = _drop_empty(self.model_dump(mode="json"))
        return data


def _drop_empty(value: Any) -> Any:
    if isinstance(value, dict):
        cleaned = {k: _drop_empty(v) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if v not in (None, "", [], {})}
    if isinstance(value, list):
        return [_drop_empty(v) for v in value]
    return value


class MarketingConsent(StrEnum):
    opted_in = "opted_in"
    opted_out = "opted_out"
    unknown = "unknown"


class LifecycleStage(StrEnum):
    """Ordered: a contact's stage only ever moves forward (`other` sits outside the order)."""

    subscriber = "subscriber"
    lead = "lead"
    mql = "mql"
    sql = "sql"
    opportunity = "opportunity"
    customer = "customer"
    other = "other"


class DealStatus(StrEnum):
    open = "open"
    won = "won"
    lost = "lost"


class Address(_Model):
    line1: Text = None
    line2: Text = None
    city: Text = None
    region: Text = None
    postal_code: Text = None
    country: Country = None


class LeadSource(_Model):
    source: Text = None
    medium: Text = None
    campaign: Text = None
    content: Text = None
    term: Text = None
    referrer: Text = None


class Contact(_Model):
    """A person. Identified by email, then phone, then an external id."""

    email: Email = None
    phone: Phone = None
    first_name: Text = None
    last_name: Text = None
    company: Text = None
    job_title: Text = None
    address: Address | None = None
    tags: Tags = frozenset()
    marketing_consent: MarketingConsent = MarketingConsent.unknown
    lifecycle_stage: LifecycleStage | None = None
    lead_source: LeadSource | None = None
    custom_fields: CustomFields = Field(default_factory=dict)
    external_ids: ExternalIds = Field(default_factory=dict)

    @model_validator(mode="after")
    def _has_identity(self) -> Contact:
        if not (self.email or self.phone or self.external_ids):
            raise ValueError("a contact needs an email, a phone or an external id to be identified")
        return self


class Company(_Model):
    """An organisation. Identified by domain, then name, then an external id."""

    name: Text = None
    domain: Domain = None
    phone: Phone = None
    address: Address | None = None
    custom_fields: CustomFields = Field(default_factory=dict)
    external_ids: ExternalIds = Field(default_factory=dict)

    @model_validator(mode="after")
    def _has_identity(self) -> Company:
        if not (self.name or self.domain or self.external_ids):
            raise ValueError("a company needs a name, a domain or an external id")
        return self


class LineItem(_Model):
    sku: Text = None
    name: Text = None
    quantity: Amount = Decimal(1)
    unit_price: Amount | None = None


class Deal(_Model):
    """A sale or opportunity. Deduplicated by the source's external id."""

    title: Text = None
    amount: Amount | None = None
    currency: Currency = None
    status: DealStatus = DealStatus.open
    stage: Text = None
    pipeline: Text = None
    close_date: date | None = None
    line_items: tuple[LineItem, ...] = ()
    custom_fields: CustomFields = Field(default_factory=dict)
    external_ids: ExternalIds = Field(default_factory=dict)

    @model_validator(mode="after")
    def _amount_has_currency(self) -> Deal:
        if self.amount is not None and self.currency is None:
            raise ValueError("a deal with an amount needs a currency (ISO 4217)")
        return self


class Activity(_Model):
    """A timeline entry on a contact (and its deal)."""

    kind: str
    occurred_at: UtcDatetime
    subject: Text = None
    body: Text = None
    external_ids: ExternalIds = Field(default_factory=dict)
    metadata: CustomFields = Field(default_factory=dict)


class Bundle(_Model):
    """What one inbound event becomes. One contact plus one deal means the deal is theirs."""

    connector: str
    event_type: str
    event_id: str
    mapping_version: str
    contacts: tuple[Contact, ...] = ()
    companies: tuple[Company, ...] = ()
    deals: tuple[Deal, ...] = ()
    activities: tuple[Activity, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not (self.contacts or self.companies or self.deals or self.activities)
