"""`PipedriveSettings`: what an admin writes under `type: pipedrive` in crmhub.yaml."""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from hub.canonical import LifecycleStage
from hub.destination import DestinationSettings

__all__ = ["DEFAULT_OVERWRITE", "PipedriveSettings", "property_scope"]

_LOOPBACK: Final = frozenset({"127.0.0.1", "localhost", "::1"})
_ADDRESS_PARTS: Final = r"(line1|line2|city|region|postal_code|country)"
_LEAD_SOURCE_PARTS: Final = r"(source|medium|campaign|content|term|referrer)"
_KEY: Final = r"[A-Za-z0-9_\-]+"
#: Canonical fields a `properties` entry may map, by record (contact paths have no prefix).
_PROPERTY_PATHS: Final = re.compile(
    rf"^(?:job_title|marketing_consent|address(?:\.{_ADDRESS_PARTS})?|lead_source\.{_LEAD_SOURCE_PARTS}"
    rf"|custom_fields\.{_KEY}|external_ids\.{_KEY}"
    rf"|deal\.(?:custom_fields|external_ids)\.{_KEY}"
    rf"|company\.(?:domain|phone|address(?:\.{_ADDRESS_PARTS})?|(?:custom_fields|external_ids)\.{_KEY}))$"
)
#: Canonical fields with a native Pipedrive home that `overwrite` may name.
_NATIVE_OVERWRITE: Final = frozenset(
    {
        "name",  # person name from first_name / last_name
        "company",  # the person's organization
        "deal.title",
        "deal.amount",  # value and currency travel together
        "deal.status",
        "deal.stage",  # stage_id (and its pipeline_id)
        "deal.close_date",  # expected_close_date
        "deal.contact",  # person_id
        "deal.company",  # org_id
        "company.name",
    }
)
#: A deal mirrors its source order: amount, status, stage and close date follow the source.
DEFAULT_OVERWRITE: Final = frozenset({"deal.amount", "deal.status", "deal.stage", "deal.close_date"})


def property_scope(path: str) -> str:
    """`person`, `deal` or `organization`: which record a `properties` key belongs to."""
    if path.startswith("deal."):
        return "deal"
    if path.startswith("company."):
        return "organization"
    return "person"


class PipedriveSettings(DestinationSettings):
    """`type: pipedrive`: a Pipedrive company account reached with one user's API token.

    Example::

        destinations:
          sales:
            type: pipedrive
            api_token: ${PIPEDRIVE_API_TOKEN}
            base_url: https://acme.pipedrive.com
            pipeline_id: 1
            stage_id: 1
            deal_external_id_field: 9f6c...   # a varchar deal field holding "shopify:1001"
            tag_labels: {vip: 5}
    """

    api_token: SecretStr = Field(
        description="The user's personal API token (Settings > Personal preferences > API); "
        "sent in the `x-api-token` header. Write `${ENV_VAR}`, never the token itself."
    )
    base_url: str = Field(
        description="Your company's Pipedrive address, `https://<company>.pipedrive.com` "
        "(no path: the adapter adds `/api/v2/...` and `/api/v1/notes`). `http://127.0.0.1:<port>` "
        "is accepted for a local fake."
    )
    burst_per_2s: int = Field(
        20,
        ge=1,
        le=480,
        description="Requests per rolling 2 s allowed for this API token by your plan: "
        "Lite 20, Growth 40, Premium 100, Ultimate 120. Every worker shares this budget.",
    )
    properties: dict[str, str] = Field(
        default_factory=lambda: {"company.address": "address"},
        description="Canonical field -> Pipedrive field code. Contact paths have no prefix "
        "(`job_title`, `address.city`, `lead_source.campaign`, `custom_fields.<key>`), deal paths "
        "start with `deal.` (`deal.custom_fields.<key>`), company paths with `company.` "
        "(`company.domain`, `company.address`). Custom fields use their 40-character key; a "
        "built-in field its code (`job_title`, `postal_address` need Contact Sync). Names, "
        "emails, phones, organization, amount, currency, status, stage and close date are "
        "always written to their native Pipedrive fields.",
    )
    overwrite: frozenset[str] = Field(
        default=DEFAULT_OVERWRITE,
        description="Canonical fields the hub may overwrite when Pipedrive already has a value; "
        "every other field is only filled when empty. Names: `name`, `company`, `deal.title`, "
        "`deal.amount`, `deal.status`, `deal.stage`, `deal.close_date`, `deal.contact`, "
        "`deal.company`, `company.name`, or any `properties` key.",
    )
    lifecycle_field: str | None = Field(
        None,
        description="Key of a single-option (enum) person field holding the lifecycle stage; "
        "Pipedrive has no native one. The stage only moves forward.",
    )
    lifecycle_options: dict[LifecycleStage, int] = Field(
        default_factory=dict,
        description="Lifecycle stage -> option id of `lifecycle_field` (from GET /api/v2/personFields).",
    )
    pipeline_id: int | None = Field(
        None, description="Pipeline of new deals whose canonical pipeline is not in `pipelines`."
    )
    stage_id: int | None = Field(
        None,
        description="Stage of new deals whose canonical stage is not in `stages` "
        "(None: Pipedrive's first stage of the pipeline).",
    )
    pipelines: dict[str, int] = Field(
        default_factory=dict, description="Canonical `deal.pipeline` value -> Pipedrive pipeline id."
    )
    stages: dict[str, int] = Field(
        default_factory=dict,
        description="Canonical `deal.stage` value (or `<pipeline>/<stage>`) -> Pipedrive stage id; "
        "the stage decides the pipeline.",
    )
    deal_external_id_field: str | None = Field(
        None,
        description="Key of a text (varchar) deal field that stores the source's id "
        "(`shopify:1001`); deals are found by it so a retry never creates a second deal. "
        "Without it, deals are matched by title and person only.",
    )
    person_external_id_field: str | None = Field(
        None,
        description="Key of a text person field that stores the source's id; used to find "
        "contacts that have neither email nor phone.",
    )
    tag_labels: dict[str, int] = Field(
        default_factory=dict,
        description="Tag -> person label id (`label_ids` options in GET /api/v2/personFields). "
        "Labels are Pipedrive's tag mechanism for persons.",
    )
    tags_field: str | None = Field(
        None,
        description="Key of a text person field that collects tags not in `tag_labels` "
        "(comma-separated, a union). None: such tags are not written.",
    )
    activity_types: dict[str, str] = Field(
        default_factory=lambda: {"appointment_booked": "meeting"},
        description="Canonical activity kind -> Pipedrive activity type (`key_string` from "
        "GET /api/v1/activityTypes). Kinds not listed are written as notes.",
    )
    link_company_by_name: bool = Field(
        True,
        description="Find (exact name) or create the organization named in a contact's `company` "
        "and link the person to it.",
    )

    @field_validator("base_url")
    @classmethod
    def _https_origin(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        # Plain http only for a fake on this machine (tests, benchmarks); Pipedrive is https.
        local = parts.scheme == "http" and parts.hostname in _LOOPBACK
        if not (parts.scheme == "https" or local) or not parts.hostname:
            raise ValueError("must be an https URL such as https://<company>.pipedrive.com")
        if parts.path.strip("/") or parts.query or parts.fragment:
            raise ValueError("must be the bare address https://<company>.pipedrive.com, without a path")
        return f"{parts.scheme}://{parts.netloc}"

    @field_validator("properties")
    @classmethod
    def _known_paths(cls, value: dict[str, str]) -> dict[str, str]:
        bad = sorted(path for path in value if not _PROPERTY_PATHS.match(path))
        if bad:
            raise ValueError(f"unknown canonical field(s) {bad}; see the description for the accepted paths")
        empty = sorted(path for path, code in value.items() if not code.strip())
        if empty:
            raise ValueError(f"no Pipedrive field code for {empty}")
        return value

    @model_validator(mode="after")
    def _known_overwrite(self) -> PipedriveSettings:
        bad = sorted(
            name
            for name in self.overwrite
            if name not in _NATIVE_OVERWRITE and not _PROPERTY_PATHS.match(name)
        )
        if bad:
            raise ValueError(f"overwrite: unknown field(s) {bad}")
        return self
