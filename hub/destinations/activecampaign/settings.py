"""`ActiveCampaignSettings`: credentials, account URL, budget and field/pipeline mappings.

Example (`crmhub.yaml`)::

    destinations:
      - type: activecampaign
        api_token: ${AC_API_TOKEN}
        base_url: https://acme.api-us1.com/api/3
        properties:
          job_title: "3"                  # contact custom field ids (GET /fields)
          custom_fields.plan: "7"
          lifecycle_stage: "9"
        deal_pipeline: "1"                # dealGroups id
        deal_stages: {new: "1", paid: "3"}
        deal_external_id_field: "4"       # dealCustomFieldMeta id holding `<system>:<id>`
"""

from __future__ import annotations

import re
from typing import Final, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from hub.canonical import LifecycleStage
from hub.destination import DestinationSettings

__all__ = ["STANDARD_FIELDS", "ActiveCampaignSettings"]

#: Canonical contact fields that are standard ActiveCampaign contact attributes.
STANDARD_FIELDS: Final[dict[str, str]] = {
    "email": "email",
    "first_name": "firstName",
    "last_name": "lastName",
    "phone": "phone",
}
_FIELD_ID = re.compile(r"^[1-9]\d*$")
_API_PATH = "/api/3"


def _field_id(what: str, value: str) -> str:
    if not _FIELD_ID.match(value):
        raise ValueError(f"{what}: {value!r} is not an ActiveCampaign id (a positive number, as a string)")
    return value


class ActiveCampaignSettings(DestinationSettings):
    """`type: activecampaign`: ActiveCampaign API v3 (shared/reference/crm-apis.md §2)."""

    api_token: SecretStr = Field(
        description="The API key from Settings → Developer (per user; write `${ENV_VAR}` in crmhub.yaml).",
    )
    base_url: str = Field(
        description="The account's API URL from Settings → Developer, e.g. https://acme.api-us1.com/api/3 "
        "(`/api/3` is added when missing). Not guessable from the account name: copy it.",
    )
    requests_per_second: int = Field(
        5,
        ge=1,
        le=5,
        description="Requests per second for this account (ActiveCampaign allows 5 per account, shared by "
        "every key and integration); lower it to leave room for other tools.",
    )
    properties: dict[str, str] = Field(
        default_factory=lambda: dict(STANDARD_FIELDS),
        description="Canonical contact field -> ActiveCampaign field. email/first_name/last_name/phone map "
        "to the standard attributes; anything else (`job_title`, `company`, `address.city`, "
        "`lead_source.campaign`, `custom_fields.<key>`, `lifecycle_stage`, `marketing_consent`) maps to a "
        "contact custom field id (GET /fields). Unmapped fields are not sent.",
    )
    lifecycle_stages: dict[LifecycleStage, str] = Field(
        default_factory=dict,
        description="Canonical lifecycle stage -> the value written to the `lifecycle_stage` custom field "
        "(default: the stage name). The stage only moves forward.",
    )
    overwrite: frozenset[str] = Field(
        frozenset({"deal.status", "deal.amount"}),
        description="Canonical fields the hub may overwrite when ActiveCampaign already has a value "
        "(contact fields by canonical name, e.g. `first_name`, `custom_fields.plan`; deal fields as "
        "`deal.title`, `deal.amount`, `deal.stage`, `deal.custom_fields.<key>`). Everything else only fills "
        "empty fields. A deal's status never goes from won/lost back to open.",
    )
    deal_pipeline: str | None = Field(
        None,
        description="Pipeline (dealGroups) id for deals whose canonical `pipeline` is not in deal_pipelines.",
    )
    deal_pipelines: dict[str, str] = Field(
        default_factory=dict,
        description="Canonical deal pipeline -> ActiveCampaign pipeline (dealGroups) id.",
    )
    deal_stage: str | None = Field(
        None,
        description="Stage (dealStages) id for deals whose canonical `stage` is not in deal_stages "
        "(default: the pipeline's first stage).",
    )
    deal_stages: dict[str, str] = Field(
        default_factory=dict,
        description="Canonical deal stage -> ActiveCampaign stage (dealStages) id.",
    )
    deal_owner: str | None = Field(
        None,
        description="User id owning new deals; needed only when the pipeline does not auto-assign.",
    )
    deal_external_id_field: str | None = Field(
        None,
        description="Deal custom field (dealCustomFieldMeta) id that stores the source's external id "
        "(`<system>:<id>`); used to find the deal again on a retry. Strongly recommended.",
    )
    deal_fields: dict[str, str] = Field(
        default_factory=dict,
        description="Canonical deal field (`custom_fields.<key>`, `close_date`) -> deal custom field id.",
    )
    notes_on: Literal["contact", "deal"] = Field(
        "contact",
        description="Where an activity with both a contact and a deal is recorded as a note.",
    )

    @field_validator("base_url")
    @classmethod
    def _https_api_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        # https itself is enforced for every outbound URL by hub.settings (http only on
        # loopback with hub.allow_insecure_urls, for tests and demos).
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise ValueError("must be the https:// API URL shown in ActiveCampaign (Settings → Developer)")
        path = parts.path.rstrip("/")
        if path not in ("", _API_PATH):
            raise ValueError(f"must end with {_API_PATH} (got path {parts.path!r})")
        if parts.query or parts.fragment:
            raise ValueError("must not carry a query string or fragment")
        return f"{parts.scheme}://{parts.netloc}{_API_PATH}"

    @field_validator("properties")
    @classmethod
    def _property_targets(cls, value: dict[str, str]) -> dict[str, str]:
        merged = {**STANDARD_FIELDS, **value}
        if merged["email"] != "email":
            raise ValueError("properties.email must stay `email`: ActiveCampaign identifies contacts by it")
        for canonical, target in merged.items():
            if canonical in STANDARD_FIELDS:
                if target != STANDARD_FIELDS[canonical]:
                    _field_id(f"properties.{canonical}", target)
            else:
                _field_id(f"properties.{canonical}", target)
        return merged

    @model_validator(mode="after")
    def _ids_are_ids(self) -> ActiveCampaignSettings:
        for name in ("deal_pipeline", "deal_stage", "deal_owner", "deal_external_id_field"):
            value = getattr(self, name)
            if value is not None:
                _field_id(name, value)
        for mapping_name in ("deal_pipelines", "deal_stages", "deal_fields"):
            for key, value in getattr(self, mapping_name).items():
                _field_id(f"{mapping_name}.{key}", value)
        return self

    def custom_field_ids(self) -> dict[str, str]:
        """Mapped contact custom fields: canonical name -> field id (standard attributes excluded)."""
        return {
            canonical: target
            for canonical, target in self.properties.items()
            if not (canonical in STANDARD_FIELDS and target == STANDARD_FIELDS[canonical])
        }
