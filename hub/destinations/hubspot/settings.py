"""`HubSpotSettings`: the `type: hubspot` block of crmhub.yaml, validated once at load.

Example (crmhub.yaml)::

    destinations:
      crm:
        type: hubspot
        access_token: ${HUBSPOT_TOKEN}      # private app / service key
        deal_stages: {paid: closedwon}
        properties: {custom_fields.plan: plan_tier, lead_source.campaign: utm_campaign}
        overwrite: [first_name, last_name]
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final, Literal

from pydantic import Field, SecretStr, field_validator

from hub.destination import DestinationSettings

__all__ = [
    "DEFAULT_COMPANY_PROPERTIES",
    "DEFAULT_CONTACT_PROPERTIES",
    "DEFAULT_DEAL_PROPERTIES",
    "DEFAULT_LIFECYCLE_STAGES",
    "ExternalIdObject",
    "HubSpotSettings",
]

#: Canonical contact field -> HubSpot contact property (internal name).
DEFAULT_CONTACT_PROPERTIES: Final[Mapping[str, str]] = {
    "email": "email",
    "phone": "phone",
    "first_name": "firstname",
    "last_name": "lastname",
    "company": "company",
    "job_title": "jobtitle",
    "address.line1": "address",
    "address.city": "city",
    "address.region": "state",
    "address.postal_code": "zip",
    "address.country": "country",
}
DEFAULT_COMPANY_PROPERTIES: Final[Mapping[str, str]] = {
    "name": "name",
    "domain": "domain",
    "phone": "phone",
    "address.line1": "address",
    "address.line2": "address2",
    "address.city": "city",
    "address.region": "state",
    "address.postal_code": "zip",
    "address.country": "country",
}
#: `currency` -> `deal_currency_code` only matters in multi-currency portals
#: (shared/reference/crm-apis.md §6, NV); map it to null where the property does not exist.
DEFAULT_DEAL_PROPERTIES: Final[Mapping[str, str]] = {
    "title": "dealname",
    "amount": "amount",
    "currency": "deal_currency_code",
    "close_date": "closedate",
}
#: Canonical lifecycle stage -> HubSpot `lifecyclestage` option (internal value).
DEFAULT_LIFECYCLE_STAGES: Final[Mapping[str, str]] = {
    "subscriber": "subscriber",
    "lead": "lead",
    "mql": "marketingqualifiedlead",
    "sql": "salesqualifiedlead",
    "opportunity": "opportunity",
    "customer": "customer",
    "other": "other",
}

ExternalIdObject = Literal["contacts", "companies", "deals", "notes"]
_PROPERTY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def _overlay(defaults: Mapping[str, str]) -> Any:
    """A validator: the admin's entries override the defaults; `null` drops a default."""

    def merge(value: Any) -> dict[str, str]:
        if value is None:
            return dict(defaults)
        if not isinstance(value, Mapping):
            raise ValueError("must be a mapping of canonical field -> HubSpot property name")
        merged: dict[str, str | None] = {**defaults, **value}
        return {k: v for k, v in merged.items() if v}

    return merge


class HubSpotSettings(DestinationSettings):
    """`type: hubspot`: HubSpot CRM through a private app (or service key) access token.

    One-time setup: the hub keeps the source's external id in a unique property
    (`external_id_property`) on deals (and companies, email-less contacts and notes), and tags
    in a multi-checkbox contact property (`tags_property`). `crmhub check` lists what is
    missing; `HubSpotDestination.ensure_properties()` creates it.
    """

    access_token: SecretStr = Field(
        description="Private app access token or service key (`Authorization: Bearer`); write "
        "`${HUBSPOT_TOKEN}` in crmhub.yaml. Scopes: crm.objects.contacts/companies/deals read+write, "
        "crm.schemas.contacts/companies/deals read (+write for ensure_properties)."
    )
    base_url: str = Field(
        "https://api.hubapi.com", pattern=r"^https?://", description="HubSpot API base URL (https)."
    )
    api_version: str = Field(
        "v3",
        pattern=r"^(v3|\d{4}-\d{2})$",
        description="API path family: `v3` (v3 objects/properties/pipelines, v4 associations) or a "
        "date-based version such as `2026-03` (`/crm/objects/2026-03/...`).",
    )
    requests_per_10s: int = Field(
        100,
        ge=1,
        le=1000,
        description="Request budget per rolling 10 s for this account: 100 Free/Starter, 190 "
        "Professional/Enterprise, 250 with the API limit increase (crm-apis.md §1.6).",
    )
    properties: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_CONTACT_PROPERTIES),
        description="Canonical contact field (`email`, `first_name`, `address.city`, "
        "`lead_source.campaign`, `marketing_consent`, `custom_fields.<key>`) -> HubSpot contact "
        "property; overlays the defaults, `null` drops one. Unmapped fields are not sent.",
    )
    company_properties: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_COMPANY_PROPERTIES),
        description="Canonical company field (`name`, `domain`, `address.*`, `custom_fields.<key>`) "
        "-> HubSpot company property; overlays the defaults.",
    )
    deal_properties: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_DEAL_PROPERTIES),
        description="Canonical deal field (`title`, `amount`, `currency`, `close_date`, "
        "`custom_fields.<key>`) -> HubSpot deal property; overlays the defaults.",
    )
    lifecycle_stages: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_LIFECYCLE_STAGES),
        description="Canonical lifecycle stage -> `lifecyclestage` option value; overlays the defaults.",
    )
    deal_pipelines: dict[str, str] = Field(
        default_factory=dict, description="Canonical `deal.pipeline` -> HubSpot pipeline id."
    )
    default_pipeline: str = Field("default", description="Pipeline id for deals without a pipeline.")
    deal_stages: dict[str, str] = Field(
        default_factory=dict,
        description="Canonical `deal.stage` -> HubSpot deal stage id (stage ids are internal ids).",
    )
    deal_status_stages: dict[str, str] = Field(
        default_factory=lambda: {"won": "closedwon", "lost": "closedlost"},
        description="Canonical deal `status` won/lost -> the closed stage id to move the deal to.",
    )
    default_deal_stage: str = Field(
        "appointmentscheduled", description="Stage id for new open deals without a mapped stage."
    )
    overwrite: frozenset[str] = Field(
        frozenset({"deal.amount", "deal.currency", "deal.stage", "deal.close_date"}),
        description="Canonical fields the hub may overwrite when HubSpot already has a value "
        "(contact fields bare, `company.<field>`, `deal.<field>`); every other field only fills "
        "empty properties. `*`: every field (contacts without tags or lifecycle stage are then "
        "upserted without reading HubSpot first: one call per batch). Tags are always a union "
        "and `lifecyclestage` only moves forward.",
    )
    tags_property: str | None = Field(
        "crmhub_tags",
        description="Contact property holding tags: a multiple-checkbox enumeration (options are "
        "added as new tags appear) or a text property (`;`-separated). null: tags are not sent.",
    )
    external_id_property: str = Field(
        "crmhub_external_id",
        description="Property holding the source's external id (`<system>:<id>`), created with "
        "hasUniqueValue so batch upsert by idProperty deduplicates retries.",
    )
    external_id_objects: frozenset[ExternalIdObject] = Field(
        frozenset({"contacts", "companies", "deals", "notes"}),
        description="Objects that carry `external_id_property` (deals always need it; contacts use it "
        "only when they have no email).",
    )
    note_dedupe: Literal["search", "upsert"] = Field(
        "search",
        description="How notes avoid duplicates on a retry: `search` the note external-id property "
        "before creating (any property type), or `upsert` by it (needs hasUniqueValue on notes: NV).",
    )

    @field_validator("properties", mode="before")
    @classmethod
    def _contact_defaults(cls, value: Any) -> Any:
        return _overlay(DEFAULT_CONTACT_PROPERTIES)(value)

    @field_validator("company_properties", mode="before")
    @classmethod
    def _company_defaults(cls, value: Any) -> Any:
        return _overlay(DEFAULT_COMPANY_PROPERTIES)(value)

    @field_validator("deal_properties", mode="before")
    @classmethod
    def _deal_defaults(cls, value: Any) -> Any:
        return _overlay(DEFAULT_DEAL_PROPERTIES)(value)

    @field_validator("lifecycle_stages", mode="before")
    @classmethod
    def _stage_defaults(cls, value: Any) -> Any:
        return _overlay(DEFAULT_LIFECYCLE_STAGES)(value)

    @field_validator("base_url")
    @classmethod
    def _https(cls, value: str) -> str:
        if value.startswith("http://") and not re.match(r"^http://(localhost|127\.\d+\.\d+\.\d+)", value):
            raise ValueError("must use https:// (plain http only for a local test server)")
        return value.rstrip("/")

    @field_validator("external_id_property", "tags_property")
    @classmethod
    def _property_name(cls, value: str | None) -> str | None:
        if value is not None and not _PROPERTY_NAME.match(value):
            raise ValueError("a HubSpot property name: lower case letters, digits and `_`")
        return value

    def budget(self) -> tuple[int, float]:
        """(requests, seconds) for the shared token bucket."""
        return (self.requests_per_10s, 10.0)
